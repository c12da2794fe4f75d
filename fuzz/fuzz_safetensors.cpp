// Any bytes as a safetensors file: the reader accepts it or returns an error, never crashes;
// every tensor it accepts lies inside the input and reads element by element.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "convert/safetensors.h"

namespace {
volatile float g_sink;  // keeps the element reads
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto c = bitnet::convert::Checkpoint::parse({data, size}, "fuzz");
  if (!c.ok()) return 0;
  for (const auto& t : c->tensors()) {
    if (t.data.data() < data || t.data.data() + t.data.size() > data + size) {
      std::fprintf(stderr, "fuzz_safetensors: tensor %s outside the input\n", t.name.c_str());
      std::abort();
    }
    for (uint64_t i = 0; i < t.n_elements && i < 64; ++i) g_sink = g_sink + t.at(i);
  }
  return 0;
}
