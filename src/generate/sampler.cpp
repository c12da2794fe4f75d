#include "generate/sampler.h"

#include <algorithm>
#include <cmath>

namespace bitnet::generate {

int32_t argmax(std::span<const float> logits) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[best]) best = static_cast<int32_t>(i);
  }
  return best;
}

int Sampler::logits_needed() const {
  if (penalized()) return 0;
  if (is_greedy()) return 1;
  return o_.top_k > 0 ? o_.top_k : 0;
}

void Sampler::seen_tokens(std::span<const int32_t> history) {
  const size_t n = std::min(history.size(), static_cast<size_t>(o_.repeat_last_n));
  seen_.assign(history.end() - static_cast<std::ptrdiff_t>(n), history.end());
  std::sort(seen_.begin(), seen_.end());
  seen_.erase(std::unique(seen_.begin(), seen_.end()), seen_.end());
}

int32_t Sampler::greedy_pick(std::span<const float> logits, std::span<const int32_t> history) {
  if (!penalized()) return argmax(logits);
  seen_tokens(history);
  // The largest penalized logit; ties go to the lowest token id, as in argmax.
  auto seen = seen_.begin();
  int32_t best = -1;
  float best_l = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    float l = logits[i];
    while (seen != seen_.end() && *seen < static_cast<int32_t>(i)) ++seen;
    if (seen != seen_.end() && *seen == static_cast<int32_t>(i)) l = penalize(l);
    if (best < 0 || l > best_l) {
      best = static_cast<int32_t>(i);
      best_l = l;
    }
  }
  return best < 0 ? 0 : best;
}

void Sampler::distribution(std::span<const float> logits, std::span<const int32_t> history) {
  cand_.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) cand_[i] = {logits[i], static_cast<int32_t>(i)};

  if (penalized()) {
    seen_tokens(history);
    for (int32_t t : seen_) {
      if (t < 0 || static_cast<size_t>(t) >= cand_.size()) continue;
      cand_[static_cast<size_t>(t)].first = penalize(cand_[static_cast<size_t>(t)].first);
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
  if (is_greedy()) return greedy_pick(logits, history);
  distribution(logits, history);
  return pick(uniform(), -1, 1.0);
}

int32_t Sampler::sample_with_draft(std::span<const float> logits, std::span<const int32_t> history,
                                   int32_t draft) {
  if (is_greedy()) return greedy_pick(logits, history);
  distribution(logits, history);
  double p_draft = 0;
  for (size_t i = 0; i < probs_.size(); ++i) {
    if (cand_[i].second == draft) p_draft = probs_[i];
  }
  if (uniform() < p_draft) return draft;  // always when p_draft is 1: uniform() < 1
  return pick(uniform(), draft, 1.0 - p_draft);
}

}  // namespace bitnet::generate
