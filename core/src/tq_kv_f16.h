/* tq_kv_f16.h — the built-in KV cache: plain f16 (or f32) rows, the baseline
 * every other KV format is measured against. Registered as the kv plugin
 * named "f16"; it serves the formats "f16" and "f32". */
#ifndef TQ_KV_F16_H
#define TQ_KV_F16_H

#include <tqrun/tq_plugin.h>

extern const tq_plugin_entry tq_kv_f16_entry;

#endif
