#!/usr/bin/env bash
# compare_llamacpp.sh — tqrun against llama.cpp on the same machine, same
# GGUF files, same thread count, in one run. Writes a markdown report.
#
#   PEER_BIN_DIR=/path/to/llama.cpp/build/bin bench/compare_llamacpp.sh [speed|quality|all]
#
# PEER_BIN_DIR holds llama-bench, llama-quantize and llama-perplexity built
# from source (cmake -DGGML_NATIVE=ON, Release); this script only calls them.
#
# speed:   tm30m F16 (../shared) and a generated TinyLlama-1.1B-shape model in
#          Q4_0, Q8_0 and Q4_K_M (quantized by llama-quantize from one F16
#          file; both tools run the same files): llama-bench and tqrun bench,
#          -p 512 -n 128, THREADS threads, REPS repetitions, medians of the
#          per-repetition t/s and their ratio. The Q4_0/Q8_0/Q4_K_M files
#          tqrun quantize writes from the same F16 file are compared with
#          llama-quantize's byte for byte.
# quality: tm30m quantized by both tools per type, each scored with
#          llama-perplexity (CHUNKS chunks of techdocs-eval at -c 1024; 0 = all)
#          and the relative difference of the two PPLs.
#
# Environment (defaults): TQRUN (build/cli/tqrun), TQGEN
# (build/tools/tq-gen-model), SHARED (../shared), MODELS (/tmp/tqmodels),
# THREADS (2), REPS (5), ROUNDS (1), CHUNKS (8), BACKEND (the ini's/default
# chain; e.g. "x86"), TYPES (quality types), OUT (bench/compare-<host>-<date>.md),
# SPEED_FILES (space-separated GGUF files to time instead of the four above).
#
# ROUNDS > 1 runs llama-bench and tqrun bench ROUNDS times in turn per model
# (REPS repetitions each) and reports medians over all ROUNDS x REPS
# samples with the lowest and highest per-round ratio: on a shared VM the
# speed of both moves by 10-20% from minute to minute, and alternating
# puts both tools under the same moments.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
: "${PEER_BIN_DIR:?set PEER_BIN_DIR to the build/bin directory of llama.cpp}"
TQRUN=${TQRUN:-$here/build/cli/tqrun}
TQGEN=${TQGEN:-$here/build/tools/tq-gen-model}
SHARED=${SHARED:-$here/../shared}
MODELS=${MODELS:-/tmp/tqmodels}
THREADS=${THREADS:-2}
REPS=${REPS:-5}
ROUNDS=${ROUNDS:-1}
CHUNKS=${CHUNKS:-8}
BACKEND=${BACKEND:-}
TYPES=${TYPES:-"Q8_0 Q6_K Q5_1 Q5_0 Q4_1 Q4_0 Q5_K_M Q4_K_M Q3_K_M Q2_K"}
OUT=${OUT:-$here/bench/compare-$(hostname)-$(date +%Y%m%d-%H%M).md}
what=${1:-all}

for exe in "$PEER_BIN_DIR/llama-bench" "$PEER_BIN_DIR/llama-quantize" "$PEER_BIN_DIR/llama-perplexity" "$TQRUN" "$TQGEN"; do
  [ -x "$exe" ] || { echo "compare_llamacpp.sh: missing $exe" >&2; exit 1; }
done
mkdir -p "$MODELS"
tm30m=$SHARED/models/tm30m-llama-f16.gguf
text=$SHARED/text/techdocs-eval.txt
backend_args=()
[ -n "$BACKEND" ] && backend_args=(--backend "$BACKEND")
log=$MODELS/compare.log
: > "$log"

median() { python3 -c 'import sys,statistics; v=[float(x) for x in sys.argv[1:]]; print("%.2f" % statistics.median(v))' "$@"; }

# llama-bench -o json, one round: "L round test sample..." per test
lb() {
  "$PEER_BIN_DIR/llama-bench" -m "$1" -p 512 -n 128 -t "$THREADS" -r "$REPS" -o json 2>>"$log" |
    python3 -c '
import json, sys
for r in json.load(sys.stdin):
    t = "pp%d" % r["n_prompt"] if r["n_prompt"] else "tg%d" % r["n_gen"]
    print("L", sys.argv[1], t, *("%.3f" % x for x in r["samples_ts"]))' "$2"
}
# tqrun bench -o csv, one round: "T round test load_ms backend GB/s-at-median
# median sample..." (GB/s: weights read per generated token x t/s; 0 for
# prompt tests)
tb() {
  "$TQRUN" bench -m "$1" -p 512 -n 128 -t "$THREADS" -r "$REPS" -o csv "${backend_args[@]}" 2>>"$log" |
    python3 -c '
import csv, sys
for r in csv.DictReader(sys.stdin):
    print("T", sys.argv[1], r["test"], r["load_ms"], r["backend"].replace(" ", ""), r["gbps"], r["ts_median"], r["samples_ts"])' "$2"
}
# Rows of the speed table from the lb/tb lines of one model on stdin.
summarize() {
  python3 -c '
import statistics, sys
name, bw = sys.argv[1], float(sys.argv[2])
L, T, meta = {}, {}, {}
for line in sys.stdin:
    f = line.split()
    if f[0] == "L":
        L.setdefault(f[2], {})[f[1]] = [float(x) for x in f[3:]]
    else:
        T.setdefault(f[2], {})[f[1]] = [float(x) for x in f[7:]]
        meta[f[2]] = (f[3], f[4], float(f[5]) / float(f[6]) if float(f[6]) > 0 else 0.0)
for t in T:
    lv = [x for r in L[t].values() for x in r]; tv = [x for r in T[t].values() for x in r]
    lm, tm = statistics.median(lv), statistics.median(tv)
    per = sorted(statistics.median(T[t][k]) / statistics.median(L[t][k]) for k in T[t] if k in L[t])
    rng = " (rounds %.2f-%.2f)" % (per[0], per[-1]) if len(per) > 1 else ""
    load, be, bpt = meta[t]  # bytes per token in GB: GB/s / t/s
    if bpt > 0:
        lg, tg = lm * bpt, tm * bpt
        bwc = "| %.2f / %.2f | %.0f%% / %.0f%%" % (lg, tg, 100 * lg / bw, 100 * tg / bw)
    else:
        bwc = "| |"
    print("| %s | %s | %.2f | %.2f | %.3f%s | %s | %s %s |" % (name, t, lm, tm, tm / lm, rng, be, load, bwc))
' "$1" "$2"
}

# The machine's read bandwidth with THREADS threads (bench/membw.c), GB/s.
membw=$MODELS/membw
cc -O2 -mavx2 -pthread "$here/bench/membw.c" -o "$membw"
bw=$("$membw" "$THREADS" 1024 9 | sed -n 's/.*median \([0-9.]*\) GB\/s.*/\1/p')

{
  echo "# tqrun vs llama.cpp — $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "- machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores online; threads used: $THREADS"
  echo "- llama.cpp: $PEER_BIN_DIR (source commit $(git -C "$PEER_BIN_DIR/../.." log -1 --format=%h 2>/dev/null || echo unknown))"
  echo "- tqrun: $TQRUN ($("$TQRUN" --version)); backend chain: ${BACKEND:-default}"
  echo "- repetitions: $REPS per round, $ROUNDS round(s), the two tools in turn; t/s = median over all repetitions"
  echo "- read bandwidth ($THREADS threads, bench/membw.c, median of 9 passes over 1 GiB): $bw GB/s"
  echo
} > "$OUT"

if [ "$what" = speed ] || [ "$what" = all ]; then
  f16=$MODELS/tinyllama-1.1b-f16.gguf
  [ -f "$f16" ] || "$TQGEN" --preset tinyllama-1.1b --type F16 -t "$THREADS" -o "$f16" >>"$log"
  {
    echo "## Quantizer output, tqrun quantize vs llama-quantize (from $(basename "$f16"))"
    echo
    echo "| type | files | differing bytes |"
    echo "| --- | --- | ---: |"
  } >> "$OUT"
  files=("$tm30m")
  for t in Q4_0 Q8_0 Q4_K_M; do
    lc=$MODELS/tinyllama-1.1b-$t.lc.gguf tq=$MODELS/tinyllama-1.1b-$t.tq.gguf
    [ -f "$lc" ] || "$PEER_BIN_DIR/llama-quantize" "$f16" "$lc" "$t" "$THREADS" >>"$log" 2>&1
    [ -f "$tq" ] || "$TQRUN" quantize "$f16" "$tq" "$t" "$THREADS" >>"$log" 2>&1
    if cmp -s "$lc" "$tq"; then d=0; same=identical; else d=$(cmp -l "$lc" "$tq" 2>/dev/null | wc -l); same=differ; fi
    echo "| $t | $same | $d |" >> "$OUT"
    files+=("$lc")
  done
  {
    echo
    echo "## Speed: $THREADS threads, -p 512 / -n 128, same files"
    echo
    echo "Decode rows: GB/s = bytes of weights one token reads x t/s, and that as a"
    echo "fraction of the measured read bandwidth ($bw GB/s), for both tools."
    echo
    echo "| model | test | llama.cpp t/s | tqrun t/s | tqrun / llama.cpp | tqrun backend | tqrun load ms | decode GB/s llama.cpp / tqrun | of bandwidth llama.cpp / tqrun |"
    echo "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |"
  } >> "$OUT"
  [ -n "${SPEED_FILES:-}" ] && read -r -a files <<< "$SPEED_FILES"
  for f in "${files[@]}"; do
    for round in $(seq "$ROUNDS"); do lb "$f" "$round"; tb "$f" "$round"; done | summarize "$(basename "$f")" "$bw" >> "$OUT"
  done
  echo >> "$OUT"
fi

if [ "$what" = quality ] || [ "$what" = all ]; then
  chunk_args=()
  [ "$CHUNKS" != 0 ] && chunk_args=(--chunks "$CHUNKS")
  ppl() {
    "$PEER_BIN_DIR/llama-perplexity" -m "$1" -f "$text" -c 1024 -t "$THREADS" "${chunk_args[@]}" 2>&1 |
      tee -a "$log" | sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p'
  }
  base=$(ppl "$tm30m")
  {
    echo "## Quantizer quality: tm30m, llama-perplexity on techdocs-eval, -c 1024, chunks: ${CHUNKS/#0/all}"
    echo
    echo "F16 (unquantized): PPL $base"
    echo
    echo "| type | llama-quantize PPL | tqrun quantize PPL | relative difference | files |"
    echo "| --- | ---: | ---: | ---: | --- |"
  } >> "$OUT"
  for t in $TYPES; do
    lc=$MODELS/tm30m-$t.lc.gguf tq=$MODELS/tm30m-$t.tq.gguf
    "$PEER_BIN_DIR/llama-quantize" "$tm30m" "$lc" "$t" "$THREADS" >>"$log" 2>&1
    "$TQRUN" quantize "$tm30m" "$tq" "$t" "$THREADS" >>"$log" 2>&1
    if cmp -s "$lc" "$tq"; then same=identical; else same=differ; fi
    a=$(ppl "$lc")
    if [ "$same" = identical ]; then b=$a; else b=$(ppl "$tq"); fi
    rel=$(python3 -c "print('%+.3f%%' % (100 * ($b - $a) / $a))")
    echo "| $t | $a | $b | $rel | $same |" >> "$OUT"
  done
  echo >> "$OUT"
fi
echo "wrote $OUT (log: $log)"
