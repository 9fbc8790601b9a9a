#!/usr/bin/env bash
# kv_depth.sh — the kv-turbo speed table (issue 5): tq4/tq4 KV against f16
# KV at growing depth, on a random-weight Llama-3-8B-shaped model (8 layers,
# dim 4096, 32 heads / 8 KV heads, head_dim 128, ffn 14336, vocab 32000,
# Q4_0), in one sitting. Writes a markdown report.
#
#   bench/kv_depth.sh            # BUILD=build, everything below at defaults
#
# 1. attention alone: build/bench/kv_attn_bench — one layer's decode
#    attention through the plugin interfaces (f16 cache view + the x86
#    backend's ATTENTION, against the turbo plugin's own attention), f16 and
#    tq4 calls interleaved; wall and process-CPU time per layer;
# 2. decode: tqrun bench -p 0 -n NGEN -d D --fill synthetic (the cache filled
#    through the KV plugin's append with the same random K/V for both), one
#    repetition per run, f16 and tq4 runs alternating, REPS runs each, the
#    median t/s;
# 3. prompt processing: tqrun bench -p 512 -n 0 (depth 0), same alternation;
# 4. llama.cpp's llama-bench on the same file, -p 0 -n NGEN -d 4096,8192
#    (f16 KV; it fills the depth by a real prefill), when PEER_BIN_DIR has it.
# The load average is printed before each part: other jobs on the machine
# move these numbers.
#
# Environment (defaults): BUILD (build; its cli/tqrun, tools/tq-gen-model,
# bench/kv_attn_bench), MODELS (/tmp/tqmodels), MODEL ($MODELS/8b-attn-q4_0.gguf,
# generated when missing), DEPTHS ("4096 8192 16384 32768 65536"), ATT_DEPTHS
# ($DEPTHS), REPS (5), ATT_REPS (5), THREADS (2), NGEN (32), PP (512),
# PEER_BIN_DIR (/work/peer/llama.cpp/build/bin; empty = skip llama.cpp),
# PEER_REPS (3), PEER_DEPTHS ("4096 8192"), OUT (bench/kv-depth-<host>-<date>.md).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$here/build}
case $BUILD in /*) ;; *) BUILD=$here/$BUILD ;; esac
TQRUN=$BUILD/cli/tqrun
TQGEN=$BUILD/tools/tq-gen-model
ATT=$BUILD/bench/kv_attn_bench
MODELS=${MODELS:-/tmp/tqmodels}
MODEL=${MODEL:-$MODELS/8b-attn-q4_0.gguf}
DEPTHS=${DEPTHS:-"4096 8192 16384 32768 65536"}
ATT_DEPTHS=${ATT_DEPTHS:-$DEPTHS}
REPS=${REPS:-5}
ATT_REPS=${ATT_REPS:-5}
THREADS=${THREADS:-2}
NGEN=${NGEN:-32}
PP=${PP:-512}
PEER_BIN_DIR=${PEER_BIN_DIR-/work/peer/llama.cpp/build/bin}
PEER_REPS=${PEER_REPS:-3}
PEER_DEPTHS=${PEER_DEPTHS:-"4096 8192"}
OUT=${OUT:-$here/bench/kv-depth-$(hostname)-$(date +%Y%m%d-%H%M).md}

for exe in "$TQRUN" "$TQGEN" "$ATT"; do
  [ -x "$exe" ] || { echo "kv_depth.sh: missing $exe (ninja -C $BUILD)" >&2; exit 1; }
done
mkdir -p "$MODELS"
log=$MODELS/kv_depth.log
: > "$log"
[ -f "$MODEL" ] || "$TQGEN" --preset 8b-attn --type Q4_0 --ctx 131072 -t "$THREADS" -o "$MODEL" >>"$log"

load() { sed 's/.*load average: //' < <(uptime); }
median() { python3 -c 'import sys,statistics; v=[float(x) for x in sys.argv[1:]]; print("%.2f" % statistics.median(v))' "$@"; }
ratio() { python3 -c "print('%.2f' % ($1 / $2))"; }

# One tqrun bench run (one repetition): prints its t/s.
tq_ts() { # kv(f16|tq4) pp ng depth
  local kv=() fill=()
  [ "$1" = tq4 ] && kv=(--kv turbo -ctk tq4 -ctv tq4)
  [ "$4" != 0 ] && fill=(--fill synthetic)
  "$TQRUN" bench -m "$MODEL" -p "$2" -n "$3" -d "$4" "${fill[@]}" -r 1 -t "$THREADS" -o csv \
    "${kv[@]}" 2>>"$log" | python3 -c 'import csv,sys; print(next(csv.DictReader(sys.stdin))["ts_median"])'
}

{
  echo "# kv-turbo speed at depth — $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "- machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores online; threads: $THREADS"
  echo "- model: $MODEL ($(du -h "$MODEL" | cut -f1)): tq-gen-model --preset 8b-attn --type Q4_0"
  echo "- tqrun: $TQRUN ($("$TQRUN" --version))"
  echo "- command: BUILD=$BUILD DEPTHS=\"$DEPTHS\" REPS=$REPS NGEN=$NGEN bench/kv_depth.sh"
  echo
  echo "## 1. Attention alone (one layer, decode), tq4/tq4 vs f16"
  echo
  echo "load average before: $(load)"
  echo
  echo '```'
  echo "$ATT -t $THREADS -r $ATT_REPS -d $(echo $ATT_DEPTHS | tr ' ' ',')"
  echo '```'
  echo
} > "$OUT"
"$ATT" -t "$THREADS" -r "$ATT_REPS" -d "$(echo $ATT_DEPTHS | tr ' ' ',')" 2>>"$log" | grep -v '^#' >> "$OUT"

{
  echo
  echo "## 2. Decode, tg$NGEN at depth (cache filled with --fill synthetic)"
  echo
  echo "load average before: $(load)"
  echo
  echo "| depth | f16 KV t/s | tq4/tq4 t/s | tq4 / f16 | target | f16 runs | tq4 runs |"
  echo "|---:|---:|---:|---:|---|---|---|"
} >> "$OUT"
declare -A F16 TQ4
for d in $DEPTHS; do
  f=() t=()
  for r in $(seq "$REPS"); do
    f+=("$(tq_ts f16 0 "$NGEN" "$d")")
    t+=("$(tq_ts tq4 0 "$NGEN" "$d")")
  done
  mf=$(median "${f[@]}") mt=$(median "${t[@]}")
  F16[$d]=$mf TQ4[$d]=$mt
  target=">= 1.0"
  [ "$d" -ge 32768 ] && target=">= 1.25"
  echo "| $d | $mf | $mt | $(ratio "$mt" "$mf") | $target | ${f[*]} | ${t[*]} |" >> "$OUT"
done

{
  echo
  echo "## 3. Prompt processing, pp$PP (depth 0)"
  echo
  echo "load average before: $(load)"
  echo
  echo "| test | f16 KV t/s | tq4/tq4 t/s | tq4 / f16 | target | f16 runs | tq4 runs |"
  echo "|---|---:|---:|---:|---|---|---|"
} >> "$OUT"
f=() t=()
for r in $(seq "$REPS"); do
  f+=("$(tq_ts f16 "$PP" 0 0)")
  t+=("$(tq_ts tq4 "$PP" 0 0)")
done
mf=$(median "${f[@]}") mt=$(median "${t[@]}")
echo "| pp$PP | $mf | $mt | $(ratio "$mt" "$mf") | >= 0.95 | ${f[*]} | ${t[*]} |" >> "$OUT"

if [ -n "$PEER_BIN_DIR" ] && [ -x "$PEER_BIN_DIR/llama-bench" ]; then
  {
    echo
    echo "## 4. f16 KV decode against llama.cpp (same file, tg$NGEN)"
    echo
    echo "load average before: $(load)"
    echo
    echo '```'
    echo "$PEER_BIN_DIR/llama-bench -m $MODEL -p 0 -n $NGEN -d $(echo $PEER_DEPTHS | tr ' ' ',') -t $THREADS -r $PEER_REPS"
    echo '```'
    echo
    echo "llama.cpp fills the depth with a real prefill; tqrun's f16 numbers are the"
    echo "medians of part 2. llama.cpp t/s: median of its samples."
    echo
    echo "| depth | llama.cpp f16 KV t/s | tqrun f16 KV t/s | tqrun tq4/tq4 t/s | tqrun f16 / llama.cpp | llama.cpp runs |"
    echo "|---:|---:|---:|---:|---:|---|"
  } >> "$OUT"
  "$PEER_BIN_DIR/llama-bench" -m "$MODEL" -p 0 -n "$NGEN" -d "$(echo $PEER_DEPTHS | tr ' ' ',')" \
    -t "$THREADS" -r "$PEER_REPS" -o json 2>>"$log" |
    python3 -c '
import json, statistics, sys
for r in json.load(sys.stdin):
    print(r["n_depth"], "%.2f" % statistics.median(r["samples_ts"]), " ".join("%.3f" % x for x in r["samples_ts"]))' > "$MODELS/kv_depth_peer.txt"
  while read -r d v runs; do
    tf=${F16[$d]:-} tt=${TQ4[$d]:-}
    rr=-
    [ -n "$tf" ] && rr=$(ratio "$tf" "$v")
    echo "| $d | $v | ${tf:--} | ${tt:--} | $rr | $runs |" >> "$OUT"
  done < "$MODELS/kv_depth_peer.txt"
fi
echo >> "$OUT"
echo "load average after: $(load)" >> "$OUT"
echo "wrote $OUT (log: $log)"
