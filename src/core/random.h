// Small deterministic PRNG (SplitMix64) and a stable string hash: synthetic weights must be the
// same on every machine, compiler and run for a given seed.
#pragma once

#include <cmath>
#include <cstdint>
#include <string_view>

namespace bitnet {

inline uint64_t fnv1a64(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform integer in [0, n) (multiply-shift; bias below 2^-32 for small n).
  uint32_t below(uint32_t n) { return static_cast<uint32_t>(((next() >> 32) * n) >> 32); }
  // Uniform in [0, 1) with 24 random bits: exact in float on every platform.
  float uniform() { return static_cast<float>(next() >> 40) * 0x1p-24f; }
  // Approximately standard normal: sum of 4 uniforms, centred and scaled (Irwin-Hall). Uses only
  // float additions and a constant multiply, so it is bit-reproducible (no libm).
  float normal() {
    float s = uniform() + uniform() + uniform() + uniform();
    return (s - 2.0f) * 1.7320508f;  // variance of the sum is 4/12
  }

 private:
  uint64_t state_;
};

}  // namespace bitnet
