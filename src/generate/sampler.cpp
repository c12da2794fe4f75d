#include "generate/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

namespace bitnet::generate {

int32_t argmax(std::span<const float> logits) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[best]) best = static_cast<int32_t>(i);
  }
  return best;
}

int Sampler::logits_needed() const {
  if (o_.greedy || o_.temperature <= 0.0f) return 1;
  if (o_.repeat_penalty != 1.0f && o_.repeat_last_n > 0) return 0;
  return o_.top_k > 0 ? o_.top_k : 0;
}

void Sampler::distribution(std::span<const float> logits, std::span<const int32_t> history) {
  cand_.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) cand_[i] = {logits[i], static_cast<int32_t>(i)};

  if (o_.repeat_penalty != 1.0f && o_.repeat_last_n > 0) {
    std::unordered_set<int32_t> seen;
    const size_t n = std::min(history.size(), static_cast<size_t>(o_.repeat_last_n));
    for (size_t i = history.size() - n; i < history.size(); ++i) seen.insert(history[i]);
    for (int32_t t : seen) {
      if (t < 0 || static_cast<size_t>(t) >= cand_.size()) continue;
      float& l = cand_[t].first;
      l = l > 0 ? l / o_.repeat_penalty : l * o_.repeat_penalty;
    }
  }
  // Sort by logit, descending (ties by id for determinism), keeping only what top-k allows.
  auto by_logit = [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  size_t keep = cand_.size();
  if (o_.top_k > 0 && static_cast<size_t>(o_.top_k) < keep) keep = static_cast<size_t>(o_.top_k);
  std::partial_sort(cand_.begin(), cand_.begin() + keep, cand_.end(), by_logit);
  cand_.resize(keep);

  // Softmax over the candidates (at temperature 1 for the p filters, as llama.cpp does).
  auto probs = [&](float temp) {
    std::vector<double> p(cand_.size());
    double sum = 0;
    for (size_t i = 0; i < cand_.size(); ++i) {
      p[i] = std::exp(static_cast<double>(cand_[i].first - cand_[0].first) / temp);
      sum += p[i];
    }
    for (double& x : p) x /= sum;
    return p;
  };
  if (o_.top_p < 1.0f) {
    auto p = probs(1.0f);
    double cum = 0;
    size_t n = 0;
    while (n < p.size()) {
      cum += p[n++];
      if (cum >= o_.top_p) break;
    }
    cand_.resize(std::max<size_t>(n, 1));
  }
  if (o_.min_p > 0.0f) {
    auto p = probs(1.0f);
    size_t n = 1;
    while (n < p.size() && p[n] >= o_.min_p * p[0]) ++n;
    cand_.resize(n);
  }
  probs_ = probs(o_.temperature);
}

int32_t Sampler::pick(double r, int32_t skip, double total) const {
  double cum = 0;
  int32_t last = -1;
  for (size_t i = 0; i < probs_.size(); ++i) {
    if (cand_[i].second == skip) continue;
    cum += probs_[i] / total;
    last = cand_[i].second;
    if (r < cum) return last;
  }
  return last;
}

double Sampler::uniform() { return static_cast<double>(rng_.next() >> 11) * 0x1p-53; }

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  if (o_.greedy || o_.temperature <= 0.0f) return argmax(logits);
  distribution(logits, history);
  return pick(uniform(), -1, 1.0);
}

int32_t Sampler::sample_with_draft(std::span<const float> logits, std::span<const int32_t> history,
                                   int32_t draft) {
  if (o_.greedy || o_.temperature <= 0.0f) return argmax(logits);
  distribution(logits, history);
  double p_draft = 0;
  for (size_t i = 0; i < probs_.size(); ++i) {
    if (cand_[i].second == draft) p_draft = probs_[i];
  }
  if (uniform() < p_draft) return draft;  // always when p_draft is 1: uniform() < 1
  return pick(uniform(), draft, 1.0 - p_draft);
}

}  // namespace bitnet::generate
