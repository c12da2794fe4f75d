// tokenizer.json files are untrusted input: any bytes must load or give an error, never crash.
// The loader reads a path, so each input is written to one temporary file.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "tokenizer/tokenizer.h"

namespace {
std::string g_path;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_path = "/tmp/bitnet-fuzz-tokenizer-" + std::to_string(getpid()) + ".json";
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FILE* f = std::fopen(g_path.c_str(), "wb");
  if (f == nullptr) __builtin_trap();
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  auto tok = bitnet::tokenizer::Tokenizer::from_hf_json(g_path);
  if (tok.ok()) (void)tok->encode("Hello world! 123 éà", {.add_special = true});
  return 0;
}
