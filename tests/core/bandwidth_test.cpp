// The roofline's reader (core/bandwidth.h) must read every byte it is given: a reader that skipped
// a stream's remainder or the bytes past its last whole step would report a bandwidth for bytes it
// never loaded.
#include "core/bandwidth.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "core/random.h"

namespace bitnet {
namespace {

uint64_t xor_of_words(const uint8_t* p, size_t n) {
  uint64_t acc = 0;
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = 0;
    std::memcpy(&v, p + i, n - i < 8 ? n - i : 8);
    acc ^= v;
  }
  return acc;
}

TEST(ReadBytes, ReturnsTheXorOfEveryWordForAnyLength) {
  std::vector<uint8_t> buf(3 * 4096 + 1000);
  SplitMix64 rng(7);
  for (uint8_t& b : buf) b = static_cast<uint8_t>(rng.next());
  for (size_t n : {size_t{0}, size_t{5}, size_t{64}, size_t{255}, size_t{256}, size_t{3 * 256},
                   size_t{3 * 256 + 8}, size_t{7 * 256 + 77}, size_t{4096}, buf.size()}) {
    for (bool prefetch : {false, true}) {
      EXPECT_EQ(read_bytes(buf.data(), n, prefetch), xor_of_words(buf.data(), n))
          << n << " bytes, prefetch " << prefetch;
    }
  }
}

TEST(ReadBytes, EveryByteChangesTheResult) {
  std::vector<uint8_t> buf(5 * 256 + 40, 0);
  const uint64_t zero = read_bytes(buf.data(), buf.size(), true);
  for (size_t i = 0; i < buf.size(); ++i) {
    buf[i] = 1;
    EXPECT_NE(read_bytes(buf.data(), buf.size(), true), zero) << "byte " << i;
    buf[i] = 0;
  }
}

}  // namespace
}  // namespace bitnet
