#!/usr/bin/env bash
# Speed side by side with the pinned llama.cpp on a synthetic TQ2_0 model of a published shape
# (issue: performance):
#   bench/vs_llama.sh [reps=5] [threads=1,2] [head-type=auto|file|screened|fast|q8_0] [preset=2b4t]
# preset: any `bitnet synth --preset` name; 2b4t is written as upstream's `bitnet` arch (which
# llama.cpp reads), the Llama-shaped presets as `llama`. Builds (release preset), writes the
# model once into models/, runs bench_vs_llama.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PRESET="${4:-2b4t}"
case "$PRESET" in
  2b4t | bitnet-large | bitnet-3b | tiny) ARCH=bitnet ;;
  *) ARCH=llama ;;
esac
scripts/setup.sh
scripts/build.sh release
MODEL="models/bench-$PRESET-tq2_0.gguf"
mkdir -p models
[ -f "$MODEL" ] || build/bin/bitnet synth --preset "$PRESET" --arch "$ARCH" --weights tq2_0 -o "$MODEL"
exec build/bin/bench_vs_llama "$MODEL" "${1:-5}" "${2:-1,2}" "${3:-auto}"
