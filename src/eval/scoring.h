// What llama-perplexity computes from one row of logits, in its arithmetic, so our numbers are
// the ones it would print for the same logits: the negative log-likelihood of the next token
// (log-sum-exp with the row's maximum subtracted, exponentials in float summed in double), and
// for KL divergence the row's log-probabilities as 16-bit codes (a scale and offset per row,
// the largest 16 nats of the row, as llama.cpp stores its base log-probabilities).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace bitnet::eval {

// -log softmax(logits)[token].
double token_nll(std::span<const float> logits, int32_t token);

// The first index of the largest logit.
int32_t row_argmax(std::span<const float> logits);

// A row's log-probabilities as codes: log p[i] ~= min_log_prob + scale * code[i] for the tokens
// within 16 nats of the most likely one; code 0 (the row's lowest value) for the rest.
struct QuantizedRow {
  float scale = 0;
  float min_log_prob = 0;
  float log_norm = 0;  // the row's max + log(sum exp(logit - max)): log p[i] = logit[i] - log_norm
  std::vector<uint16_t> codes;
};
void quantize_log_probs(std::span<const float> logits, QuantizedRow* out);

// KL(base || q) of one position, summed over the tokens whose base log-probability is above -16
// (the rest weigh less than 1e-7 each), as llama-perplexity does. q's log-probabilities are taken
// through the same codes as the base's (`q`, from `q_logits`), so identical rows give exactly 0;
// where q's code is clipped (more than 16 nats below q's most likely token), its exact value.
double row_kld(const QuantizedRow& base, const QuantizedRow& q, std::span<const float> q_logits);

}  // namespace bitnet::eval
