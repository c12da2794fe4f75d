// Choosing the next token from logits: greedy, or sampling with repetition penalty, top-k,
// top-p, min-p and temperature (applied in that order, as llama.cpp's common sampler chain
// does), from a seeded deterministic RNG.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/random.h"

namespace bitnet::generate {

struct SamplerOptions {
  bool greedy = false;          // argmax; every other option is ignored
  float temperature = 0.8f;     // <= 0 means greedy
  int top_k = 40;               // <= 0: off
  float top_p = 0.95f;          // >= 1: off
  float min_p = 0.05f;          // <= 0: off
  float repeat_penalty = 1.0f;  // 1: off; divides positive / multiplies negative logits
  int repeat_last_n = 64;       // tokens looked back for the penalty
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplerOptions& o) : o_(o), rng_(o.seed) {}
  // `history`: tokens so far (prompt + generated), for the repetition penalty.
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history);
  const SamplerOptions& options() const { return o_; }
  // How many of the largest logits sample() depends on (for BatchRow::top): 1 for greedy, k
  // for top-k, 0 (all of them) otherwise, and with a repetition penalty, which lowers the
  // logits of seen tokens and so can let rows from below the k largest in.
  int logits_needed() const;

 private:
  SamplerOptions o_;
  SplitMix64 rng_;
  std::vector<std::pair<float, int32_t>> cand_;  // scratch
};

// Index of the largest value; ties go to the lowest index.
int32_t argmax(std::span<const float> logits);

}  // namespace bitnet::generate
