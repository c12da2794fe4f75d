#include "eval/scoring.h"

#include <algorithm>
#include <cmath>

namespace bitnet::eval {

namespace {

// The tokens a KL row keeps: those within this many nats of the most likely one.
constexpr float kLogProbRange = 16.0f;

float row_max(std::span<const float> logits) {
  float mx = logits[0];
  for (float v : logits) mx = std::max(mx, v);
  return mx;
}

// Float exponentials summed in double, in index order: llama-perplexity's sum, so a row gives
// the same bits here and there.
double sum_exp(std::span<const float> logits, float mx) {
  double s = 0.0;
  for (float v : logits) s += std::exp(v - mx);
  return s;
}

}  // namespace

double token_nll(std::span<const float> logits, int32_t token) {
  const float mx = row_max(logits);
  const double log_p =
      static_cast<double>(logits[static_cast<size_t>(token)] - mx) - std::log(sum_exp(logits, mx));
  return -log_p;
}

int32_t row_argmax(std::span<const float> logits) {
  size_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[best]) best = i;
  }
  return static_cast<int32_t>(best);
}

void quantize_log_probs(std::span<const float> logits, QuantizedRow* out) {
  float mx = logits[0];
  float mn = logits[0];
  for (float v : logits) {
    mx = std::max(mx, v);
    mn = std::min(mn, v);
  }
  mn = std::max(mn, mx - kLogProbRange);
  const float log_sum_exp = static_cast<float>(std::log(sum_exp(logits, mx)));
  out->min_log_prob = mn - mx - log_sum_exp;
  out->log_norm = mx + log_sum_exp;
  out->scale = (mx - mn) / 65535.0f;
  out->codes.assign(logits.size(), 0);
  if (out->scale == 0.0f) return;  // every logit equal: all codes 0
  const float inv_scale = 1.0f / out->scale;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (logits[i] > mn) {
      const long c = std::lrint(inv_scale * (logits[i] - mn));
      out->codes[i] = static_cast<uint16_t>(std::clamp(c, 0L, 65535L));
    }
  }
}

double row_kld(const QuantizedRow& base, const QuantizedRow& q, std::span<const float> q_logits) {
  double sum = 0.0;
  for (size_t i = 0; i < base.codes.size(); ++i) {
    const float lb = base.scale * base.codes[i] + base.min_log_prob;
    if (lb <= -kLogProbRange) continue;
    float lq = q.scale * q.codes[i] + q.min_log_prob;
    // A clipped code stands for "16 nats below the top or less": use the exact value there
    // (with identical rows the base's value is then at most -16 and the token was skipped).
    if (q.codes[i] == 0) lq = std::min(lq, q_logits[i] - q.log_norm);
    sum += static_cast<double>(std::exp(lb)) * (static_cast<double>(lb) - lq);
  }
  return sum;
}

}  // namespace bitnet::eval
