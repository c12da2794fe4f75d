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
  bool greedy = false;          // argmax after the repetition penalty (as llama.cpp's chain)
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
  // Speculative decoding's check of a proposed token (a draft whose proposal is certain, as an
  // n-gram lookup's is): greedy takes the argmax; sampling takes `draft` with its probability
  // p(draft) under the distribution sample() draws from, else draws from that distribution
  // without `draft`, renormalized. The token taken is distributed exactly as sample()'s
  // (the standard rejection scheme with a one-point draft distribution).
  int32_t sample_with_draft(std::span<const float> logits, std::span<const int32_t> history,
                            int32_t draft);
  const SamplerOptions& options() const { return o_; }
  // How many of the largest logits sample() depends on (for BatchRow::top): 1 for greedy, k
  // for top-k, 0 (all of them) otherwise, and with a repetition penalty (greedy included),
  // which lowers the logits of seen tokens and so can let rows from below the k largest in.
  int logits_needed() const;

 private:
  bool penalized() const { return o_.repeat_penalty != 1.0f && o_.repeat_last_n > 0; }
  bool is_greedy() const { return o_.greedy || o_.temperature <= 0.0f; }
  // The tokens of the last repeat_last_n of `history` (each once): the ones penalized.
  void seen_tokens(std::span<const int32_t> history);
  // llama.cpp's penalty of one logit: divided by the penalty if positive, else multiplied.
  float penalize(float l) const { return l > 0 ? l / o_.repeat_penalty : l * o_.repeat_penalty; }
  // Greedy's pick: the argmax of the logits after the repetition penalty.
  int32_t greedy_pick(std::span<const float> logits, std::span<const int32_t> history);
  // cand_ / probs_: the candidates left by the chain and their probabilities.
  void distribution(std::span<const float> logits, std::span<const int32_t> history);
  // The candidate where the cumulative probability (divided by total) passes r, skipping one.
  int32_t pick(double r, int32_t skip, double total) const;
  double uniform();

  SamplerOptions o_;
  SplitMix64 rng_;
  std::vector<std::pair<float, int32_t>> cand_;  // scratch
  std::vector<double> probs_;
  std::vector<int32_t> seen_;  // scratch of seen_tokens
};

// Index of the largest value; ties go to the lowest index.
int32_t argmax(std::span<const float> logits);

}  // namespace bitnet::generate
