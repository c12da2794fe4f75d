#!/usr/bin/env bash
# Configures (once) and builds a CMake preset: scripts/build.sh [release|debug|asan|notrace]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PRESET="${1:-release}"
cd "$ROOT"
case "$PRESET" in
  release) DIR=build ;;
  *) DIR="build-$PRESET" ;;
esac
if [ ! -f "$DIR/build.ninja" ]; then
  cmake --preset "$PRESET" >/dev/null
fi
cmake --build --preset "$PRESET" -- -j"$(nproc)" >&2
