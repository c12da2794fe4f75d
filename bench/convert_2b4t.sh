#!/usr/bin/env bash
# Converting the 2B4T-shaped checkpoint: writes it with `bitnet synth --format hf` (packed
# weights, or masters with --hf-weights masters) and the same model as GGUF, converts the
# checkpoint, prints convert's wall time and peak RSS and checks the result is the GGUF byte
# for byte.
#   bench/convert_2b4t.sh BITNET [packed|masters] [work dir, default a temporary one]
set -euo pipefail
[ $# -ge 1 ] || { sed -n 2,6p "$0"; exit 2; }
BIN="$1" WEIGHTS="${2:-packed}" DIR="${3:-$(mktemp -d)}"
[ $# -ge 3 ] || trap 'rm -rf "$DIR"' EXIT
mkdir -p "$DIR"
"$BIN" synth --preset 2b4t --weights i2_s -o "$DIR/want.gguf" -q
"$BIN" synth --preset 2b4t --format hf --hf-weights "$WEIGHTS" -o "$DIR/hf" -q
du -sh "$DIR/hf"
"$BIN" convert "$DIR/hf" -o "$DIR/got.gguf" --type i2_s
cmp "$DIR/want.gguf" "$DIR/got.gguf" && echo "convert_2b4t: identical to synth's GGUF"
