/* fixture.h — what the fixture plugins (fixture.c) and test_registry.c
 * both need to know. */
#ifndef TQ_TEST_FIXTURE_H
#define TQ_TEST_FIXTURE_H

#include <stdint.h>

/* The message the failing fixture's init reports. */
#define FX_FAIL_MESSAGE "fixture: no usable device (deliberate failure)"

/* State of a good fixture, as returned by its init. */
#define FX_MAGIC 0x7146584eu
typedef struct fx_state {
    uint32_t magic;
    const char *variant;   /* which build of the fixture this is          */
    const char *greeting;  /* [plugin.<name>] greeting, or NULL           */
} fx_state;

#endif
