#!/usr/bin/env bash
# Speed side by side with the pinned llama.cpp on a 2B4T-shaped TQ2_0 model (issue: performance):
#   bench/vs_llama.sh [reps=5] [threads=1,2] [head-type=auto|file|screened|fast|q8_0]
# Builds (release preset), writes the model once into models/, runs bench_vs_llama.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh
scripts/build.sh release
MODEL=models/bench-2b4t-tq2_0.gguf
mkdir -p models
[ -f "$MODEL" ] || build/bin/bitnet synth --preset 2b4t --arch bitnet --weights tq2_0 -o "$MODEL"
exec build/bin/bench_vs_llama "$MODEL" "${1:-5}" "${2:-1,2}" "${3:-auto}"
