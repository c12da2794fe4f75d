#!/usr/bin/env bash
# Decode speed with tracing compiled in (but off) vs compiled out, same model, same run:
# the two `bitnet` binaries take turns (A B A B ...) so drift in machine load hits both alike;
# prints each run, the median decode tok/s of each build and the ratio in/out.
#
#   bench/trace/trace_overhead.sh [--on DIR] [--off DIR] [--model FILE] [--rounds N]
#                                 [--tokens N] [--threads N] [--layers N]
#
#   --on DIR     build with BITNET_TRACE=ON  (default: build;         cmake --preset release)
#   --off DIR    build with BITNET_TRACE=OFF (default: build-notrace; cmake --preset notrace)
#   --model F    GGUF to run (default: a synthetic 2b4t-shaped I2_S model, written once under
#                ${TMPDIR:-/tmp}/bitnet-bench-trace/; --layers N cuts its depth)
#   --rounds N   A/B pairs (default 7); --tokens N decode tokens per run (default 32);
#   --threads N  (default 2)
# Missing binaries are built (ninja -C DIR bitnet) when the folder is configured.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
on="$root/build" off="$root/build-notrace" model="" rounds=7 tokens=32 threads=2 layers=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --on) on="$2"; shift 2 ;;
    --off) off="$2"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --tokens) tokens="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --layers) layers="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "trace_overhead.sh: error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

for dir in "$on" "$off"; do
  if [[ ! -x "$dir/bin/bitnet" ]]; then
    if [[ -f "$dir/build.ninja" ]]; then
      ninja -C "$dir" bitnet >&2
    else
      echo "trace_overhead.sh: error: no $dir/bin/bitnet (configure it: cmake --preset release / notrace)" >&2
      exit 1
    fi
  fi
done
# The builds must really differ: the traced one accepts --trace-dir, the other refuses it.
compiled_out() { "$1/bin/bitnet" run --help | grep -q "compiled out of this build"; }
if compiled_out "$on"; then echo "trace_overhead.sh: error: $on has tracing compiled out" >&2; exit 1; fi
if ! compiled_out "$off"; then echo "trace_overhead.sh: error: $off has tracing compiled in" >&2; exit 1; fi

if [[ -z "$model" ]]; then
  cache="${TMPDIR:-/tmp}/bitnet-bench-trace"
  mkdir -p "$cache"
  model="$cache/2b4t${layers:+-$layers}-i2_s.gguf"
  if [[ ! -f "$model" ]]; then
    "$on/bin/bitnet" synth --preset 2b4t --weights i2_s ${layers:+--layers $layers} -o "$model.tmp" >&2
    mv "$model.tmp" "$model"
  fi
fi

decode_tok_s() {  # bitnet binary -> decode tok/s of one greedy run
  local out
  out="$(env -u BITNET_TRACE_DIR "$1" run -m "$model" -p "The quick brown fox" -n "$tokens" --greedy \
         --json -t "$threads" -c 256)"
  sed -E 's/.*"decode_tok_s":([0-9.eE+-]+).*/\1/' <<<"$out"
}
median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }

echo "model: $model  tokens: $tokens  threads: $threads  rounds: $rounds"
echo "A = tracing compiled in, off ($on)"
echo "B = tracing compiled out     ($off)"
decode_tok_s "$on/bin/bitnet" >/dev/null  # warm the page cache
a_all="" b_all="" r_all=""
for ((i = 1; i <= rounds; i++)); do
  # Alternate which build goes first, so neither always runs on a warmer machine.
  if ((i % 2)); then a=$(decode_tok_s "$on/bin/bitnet"); b=$(decode_tok_s "$off/bin/bitnet")
  else b=$(decode_tok_s "$off/bin/bitnet"); a=$(decode_tok_s "$on/bin/bitnet"); fi
  printf 'round %d: A %.2f tok/s  B %.2f tok/s\n' "$i" "$a" "$b"
  a_all+="$a"$'\n' b_all+="$b"$'\n'
  r_all+="$(awk -v a="$a" -v b="$b" 'BEGIN {print a / b}')"$'\n'
done
ma=$(printf '%s' "$a_all" | median)
mb=$(printf '%s' "$b_all" | median)
mr=$(printf '%s' "$r_all" | median)
# The median of per-round ratios pairs runs taken back to back: less sensitive to load drift.
awk -v a="$ma" -v b="$mb" -v r="$mr" 'BEGIN {
  printf "median decode: A (compiled in, off) %.3f tok/s, B (compiled out) %.3f tok/s\n", a, b
  printf "ratio A/B of medians: %.4f (%+.2f%%); median of per-round ratios: %.4f (%+.2f%%)\n",
         a / b, (a / b - 1) * 100, r, (r - 1) * 100 }'
