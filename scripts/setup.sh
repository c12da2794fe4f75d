#!/usr/bin/env bash
# One-time (and idempotent) set-up of a fresh Debian 12 machine for building and testing bitnet.
#
# 1. Debian packages: compiler, CMake, Ninja, GoogleTest, Google Benchmark, nlohmann-json, CLI11,
#    BLAKE3's C sources (librust-blake3-dev) and b3sum, OpenSSL 3's libcrypto (libssl-dev:
#    Ed25519 receipt signatures), node/npm (to fetch the reference), git, clang with libFuzzer
#    (scripts/fuzz).
# 2. The reference engine from npm, pinned by exact version AND sha512 integrity:
#      node-llama-cpp@3.22.1              -> llama.cpp source bundle (headers, vocab test files)
#      @node-llama-cpp/linux-x64@3.22.1   -> prebuilt libllama / libggml* shared libraries
#      openai@5.23.2                      -> the OpenAI JavaScript client (serve tests)
#    They are fetched with `npm pack` (no install scripts run), verified, and unpacked into
#    .deps/ (git-ignored). Nothing else is downloaded.
# 3. An older llama.cpp (node-llama-cpp@3.2.0 + @node-llama-cpp/linux-x64@3.2.0, llama.cpp
#    b3995) with the pre-2025 C API, for the crossval adapter's old-API build (.deps/reference-oldapi).
#
# Re-running is fast: each step is skipped when its stamp says it is already done.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPS="$ROOT/.deps"

APT_PACKAGES=(
  build-essential cmake ninja-build git ca-certificates pkg-config
  libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libcli11-dev
  libcpp-httplib-dev  # bitnet serve: HTTP/1.1 server (Debian-maintained, see README "Serving")
  wrk                 # bench/serve_load.sh: HTTP load generator
  librust-blake3-dev b3sum openssl libssl-dev
  clang libclang-rt-14-dev  # scripts/fuzz: libFuzzer with ASan / UBSan
  g++-aarch64-linux-gnu qemu-user  # scripts/test-aarch64: ARM64 cross build, tests under qemu
)
# The ARM64 build's target libraries: Debian's arm64 packages under multiarch (their glibc is
# also what qemu-aarch64 runs the binaries with). BITNET_SETUP_ARM64=0 skips them.
ARM64_PACKAGES=(libssl-dev:arm64 libgtest-dev:arm64 libgmock-dev:arm64 libcpp-httplib-dev:arm64)
# Headless Chromium renders the crossval HTML report in a test (tests/crossval). It is large;
# BITNET_SETUP_CHROMIUM=0 skips it (that test then says it was skipped).
if [ "${BITNET_SETUP_CHROMIUM:-1}" = "1" ]; then APT_PACKAGES+=(chromium); fi

# name|version|sha512 integrity (from the npm registry's dist.integrity)
NPM_PINS=(
  "node-llama-cpp|3.22.1|sha512-bltIipuWmc123H7tMIgDGKSsSrhmhlQYeVUC48XTjVW7XGJJiJJyCdlTMzQ/LiWoPkGDpcL4FviDpgw7qfTiDw=="
  "@node-llama-cpp/linux-x64|3.22.1|sha512-5uCCDNqWCNfaAm8aR/Uzxbo4HBpKgNF91kCHPepKhgMgV2OAmatoefbOlMihsqCiH2Od35E/eUHQCFbfRBJuOg=="
)
# The official OpenAI client for JavaScript, which tests/serve/openai_client.mjs drives `bitnet
# serve` with (no dependencies of its own; Node's fetch). Unpacked into .deps/npm/openai.
OPENAI_PIN="openai|5.23.2|sha512-MQBzmTulj+MM5O8SKEk/gL8a7s5mktS9zUtAkU257WjvobGc9nKcBuVwjyEEcb9SI8a8Y2G/mzn3vm9n1Jlleg=="
# A second, OLDER llama.cpp (tag b3995, 2024-10-31) with the pre-2025 C API that bitnet.cpp's
# fork also has (llama_load_model_from_file, llama_new_context_with_model, llama_n_vocab(model),
# llama_batch_get_one with 4 arguments, CPU backend built into libggml). It already loads `bitnet`
# arch TQ1_0/TQ2_0 models. Crossval builds its reference helper against it too
# (bitnet-reference-oldapi) to prove the adapter works with that API; unpacked into
# .deps/reference-oldapi/{include,lib,models}.
NPM_PINS_OLDAPI=(
  "node-llama-cpp|3.2.0|sha512-aiE8wIApm0pQL0i+d4hcVweC8kc3C78wx0n7N7um65Q9LfQTsOzYlNb8ANIfdDRJ2A5Z9tqlDIeyD7DmnwfoMQ=="
  "@node-llama-cpp/linux-x64|3.2.0|sha512-4p4JmcYROFRm6t4zUBdCklKWgDC8j1UH2kWDPX1Vqm7MdQxVhkdP5RGGTl8/LuspzH2w4/r7a2EiWKB3BjlcEw=="
)

log() { printf 'setup: %s\n' "$*" >&2; }

install_debian_packages() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  # npm may come from Debian (nodejs + npm) or from another node distribution already present.
  if ! command -v npm >/dev/null 2>&1; then missing+=(nodejs npm); fi
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  log "installing Debian packages: ${missing[*]}"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}

install_arm64_target_packages() {
  [ "${BITNET_SETUP_ARM64:-1}" = "1" ] || return 0
  local missing=()
  for p in "${ARM64_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  log "installing Debian arm64 packages (multiarch): ${missing[*]}"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  dpkg --print-foreign-architectures | grep -qx arm64 || $sudo dpkg --add-architecture arm64
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# Fetches one pinned npm tarball, checks its sha512 integrity, unpacks it into $2.
fetch_npm_pinned() {
  local name="$1" version="$2" integrity="$3" dest="$4"
  local stamp="$dest/.pinned"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$name@$version $integrity" ]; then
    return 0
  fi
  log "fetching $name@$version from npm"
  local tmp
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent --ignore-scripts "$name@$version" >/dev/null)
  local tgz
  tgz="$(ls "$tmp"/*.tgz)"
  local got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
  if [ "$got" != "$integrity" ]; then
    log "integrity mismatch for $name@$version: expected $integrity, got $got"
    rm -rf "$tmp"
    exit 1
  fi
  rm -rf "$dest"
  mkdir -p "$dest"
  tar -xzf "$tgz" -C "$dest" --strip-components=1
  rm -rf "$tmp"
  echo "$name@$version $integrity" >"$stamp"
}

# Installs one pinned llama.cpp reference: the two npm tarballs named by the pin array $1, the
# source tree from its git bundle (headers, vocab GGUF files with .inp/.out test vectors), and
# stable paths for CMake and the tests: $DEPS/$2/{include,lib,models}.
install_reference_tree() {
  local -n pins="$1"
  local name="$2" suffix="${3:-}"
  mkdir -p "$DEPS"
  IFS='|' read -r n1 v1 i1 <<<"${pins[0]}"
  IFS='|' read -r n2 v2 i2 <<<"${pins[1]}"
  local npm="$DEPS/npm$suffix"
  fetch_npm_pinned "$n1" "$v1" "$i1" "$npm/node-llama-cpp"
  fetch_npm_pinned "$n2" "$v2" "$i2" "$npm/linux-x64"

  local src="$DEPS/llama.cpp$suffix"
  local bundle="$npm/node-llama-cpp/llama/gitRelease.bundle"
  local head
  head="$(git bundle list-heads "$bundle" | awk '/HEAD/{print $1}')"
  if [ ! -f "$src/.bundle-head" ] || [ "$(cat "$src/.bundle-head")" != "$head" ]; then
    log "unpacking llama.cpp source $n1@$v1 ($head)"
    rm -rf "$src"
    git -c advice.detachedHead=false clone -q "$bundle" "$src"
    echo "$head" >"$src/.bundle-head"
  fi

  local ref="$DEPS/$name"
  mkdir -p "$ref/include"
  ln -sfn "$npm/linux-x64/bins/linux-x64" "$ref/lib"
  ln -sfn "$src/models" "$ref/models"
  for h in "$src"/include/llama.h "$src"/ggml/include/*.h; do
    ln -sfn "$h" "$ref/include/$(basename "$h")"
  done
}

install_reference() {
  install_reference_tree NPM_PINS reference
  # The current prebuilt libraries carry versioned sonames; give the linker plain names too.
  local lib="$DEPS/npm/linux-x64/bins/linux-x64"
  [ -e "$lib/libllama.so" ] || ln -s libllama.v0.5.0.so "$lib/libllama.so"
  [ -e "$lib/libggml.so" ] || ln -s libggml.v0.5.0.so "$lib/libggml.so"
}

install_debian_packages
install_arm64_target_packages
install_reference
IFS='|' read -r n v i <<<"$OPENAI_PIN"
fetch_npm_pinned "$n" "$v" "$i" "$DEPS/npm/openai"
# The older-API reference (see NPM_PINS_OLDAPI): same steps, its own folders.
install_reference_tree NPM_PINS_OLDAPI reference-oldapi -oldapi
log "ok (reference: $DEPS/reference; older API: $DEPS/reference-oldapi)"
