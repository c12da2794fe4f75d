#include "crossval/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace bitnet::crossval {

using trace::Op;

Stage stage_of(Op op) {
  switch (op) {
    case Op::kEmbeddings:
      return Stage::kEmbed;
    case Op::kAttnNorm:
    case Op::kAttnSubNorm:
    case Op::kFfnNorm:
    case Op::kFfnSubNorm:
      return Stage::kNorm;
    case Op::kQProj:
    case Op::kKProj:
    case Op::kVProj:
    case Op::kOProj:
    case Op::kGateProj:
    case Op::kUpProj:
    case Op::kDownProj:
      return Stage::kProj;
    case Op::kQRope:
    case Op::kKRope:
      return Stage::kRope;
    case Op::kAttnScoresSoftmax:
    case Op::kAttnOut:
      return Stage::kAttention;
    case Op::kAttnResidual:
    case Op::kFfnResidual:
      return Stage::kResidual;
    case Op::kFfnAct:
      return Stage::kFfnAct;
    default:
      return Stage::kHead;
  }
}

bool is_projection(Op op) { return stage_of(op) == Stage::kProj; }

namespace {
Result<double> parse_number(const std::string& key, const std::string& v) {
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  if (v.empty() || end == nullptr || *end != '\0' || !std::isfinite(x) || x < 0) {
    return make_error("tolerance %s: '%s' is not a non-negative number", key.c_str(), v.c_str());
  }
  return x;
}
}  // namespace

Status Tolerances::set(const std::string& a) {
  const size_t eq = a.find('=');
  if (eq == std::string::npos) return make_error("tolerance '%s' is not key=value", a.c_str());
  const std::string key = a.substr(0, eq), v = a.substr(eq + 1);
  BITNET_ASSIGN_OR_RETURN(double x, parse_number(key, v));
  if (key == "op.max_rel") {
    op_max_rel.fill(x);
    return {};
  }
  for (size_t s = 0; s < kStageNames.size(); ++s) {
    if (key == std::string("op.") + kStageNames[s] + ".max_rel") {
      op_max_rel[s] = x;
      return {};
    }
  }
  if (key == "logits.min_cosine") {
    logits_min_cosine = x;
  } else if (key == "logits.max_kl") {
    logits_max_kl = x;
  } else if (key == "logits.top1") {
    logits_top1 = x != 0;
  } else if (key == "flip.max_codes") {
    flip_max_codes = static_cast<int>(x);
  } else if (key == "flip.allow") {
    flip_allow = x != 0;
  } else {
    return make_error(
        "unknown tolerance '%s' (op[.<stage>].max_rel, logits.min_cosine, "
        "logits.max_kl, logits.top1, flip.max_codes, flip.allow)",
        key.c_str());
  }
  return {};
}

bool Tolerances::row_passes(const RowMetrics& m) const {
  if (m.non_finite > 0) return false;
  if (exact) return m.identical;
  return (m.top1_match || !logits_top1) && m.cosine >= logits_min_cosine && m.kl <= logits_max_kl;
}

nlohmann::ordered_json Tolerances::to_json() const {
  nlohmann::ordered_json op;
  for (size_t s = 0; s < kStageNames.size(); ++s) op[kStageNames[s]] = {{"max_rel", op_max_rel[s]}};
  return {{"regime", exact ? "exact" : "tolerance"},
          {"regime_reason", regime_reason},
          {"op", op},
          {"logits",
           {{"min_cosine", logits_min_cosine}, {"max_kl", logits_max_kl}, {"top1", logits_top1}}},
          {"flip", {{"max_codes", flip_max_codes}, {"allow", flip_allow}}}};
}

Result<Tolerances> Tolerances::from_json(const nlohmann::json& j) {
  Tolerances t;
  try {
    const std::string regime = j.value("regime", std::string("tolerance"));
    if (regime != "exact" && regime != "tolerance") {
      return make_error("thresholds: unknown regime '%s'", regime.c_str());
    }
    t.exact = regime == "exact";
    t.regime_reason = j.value("regime_reason", std::string());
    for (size_t s = 0; s < kStageNames.size(); ++s) {
      t.op_max_rel[s] = j.at("op").at(kStageNames[s]).at("max_rel").get<double>();
    }
    t.logits_min_cosine = j.at("logits").at("min_cosine").get<double>();
    t.logits_max_kl = j.at("logits").at("max_kl").get<double>();
    t.logits_top1 = j.at("logits").at("top1").get<bool>();
    t.flip_max_codes = j.at("flip").at("max_codes").get<int>();
    t.flip_allow = j.at("flip").at("allow").get<bool>();
  } catch (const std::exception& e) {
    return make_error("thresholds: %s", e.what());
  }
  return t;
}

int32_t argmax(std::span<const float> x) {
  int32_t best = 0;
  for (size_t i = 1; i < x.size(); ++i) {
    if (x[i] > x[static_cast<size_t>(best)]) best = static_cast<int32_t>(i);
  }
  return best;
}

namespace {
std::vector<int32_t> top_k(std::span<const float> x, int k) {
  std::vector<int32_t> idx;
  for (size_t i = 0; i < x.size(); ++i) {
    idx.push_back(static_cast<int32_t>(i));
    std::push_heap(idx.begin(), idx.end(), [&](int32_t a, int32_t b) {
      return x[a] > x[b] || (x[a] == x[b] && a < b);  // min-heap by value
    });
    if (idx.size() > static_cast<size_t>(k)) {
      std::pop_heap(idx.begin(), idx.end(),
                    [&](int32_t a, int32_t b) { return x[a] > x[b] || (x[a] == x[b] && a < b); });
      idx.pop_back();
    }
  }
  return idx;
}

// log-sum-exp in double, over the finite values.
double log_sum_exp(std::span<const float> x) {
  double mx = -INFINITY;
  for (float v : x) {
    if (std::isfinite(v)) mx = std::max(mx, static_cast<double>(v));
  }
  double s = 0;
  for (float v : x) {
    if (std::isfinite(v)) s += std::exp(static_cast<double>(v) - mx);
  }
  return mx + std::log(s);
}
}  // namespace

// NaN and infinite values are counted (non_finite fails a row in every regime) and left out of
// the other metrics, which stay finite numbers a JSON receipt can hold.
RowMetrics compare_logits(std::span<const float> ours, std::span<const float> ref) {
  RowMetrics m;
  const size_t n = std::min(ours.size(), ref.size());
  double dot = 0, na = 0, nb = 0, ss = 0, mx = 0;
  for (size_t i = 0; i < n; ++i) {
    const double a = ours[i], b = ref[i], d = a - b;
    if (!std::isfinite(a) || !std::isfinite(b)) {
      m.non_finite += static_cast<int>(!std::isfinite(a)) + static_cast<int>(!std::isfinite(b));
      continue;
    }
    dot += a * b;
    na += a * a;
    nb += b * b;
    ss += d * d;
    mx = std::max(mx, std::fabs(d));
  }
  m.identical =
      ours.size() == ref.size() && std::memcmp(ours.data(), ref.data(), n * sizeof(float)) == 0;
  m.cosine = (na > 0 && nb > 0) ? dot / std::sqrt(na * nb) : (na == nb ? 1.0 : 0.0);
  m.l2 = std::sqrt(ss);
  m.max_abs = mx;
  m.mse = n > 0 ? ss / static_cast<double>(n) : 0;
  const double lse_a = log_sum_exp(ours.first(n)), lse_b = log_sum_exp(ref.first(n));
  double kl = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(ours[i]) || !std::isfinite(ref[i])) continue;
    const double lb = ref[i] - lse_b, la = ours[i] - lse_a;
    kl += std::exp(lb) * (lb - la);
  }
  m.kl = std::isfinite(kl) ? std::max(0.0, kl) : 0.0;
  m.top1_ours = argmax(ours.first(n));
  m.top1_ref = argmax(ref.first(n));
  m.top1_match = m.top1_ours == m.top1_ref;
  const auto ta = top_k(ours.first(n), 5), tb = top_k(ref.first(n), 5);
  for (int32_t a : ta) m.top5_overlap += std::count(tb.begin(), tb.end(), a) > 0 ? 1 : 0;
  return m;
}

OpMetrics compare_values(std::span<const float> ours, std::span<const float> ref) {
  OpMetrics m;
  if (ours.size() != ref.size()) {
    m.rel = INFINITY;
    m.max_abs = INFINITY;
    m.cosine = 0;
    return m;
  }
  m.identical = std::memcmp(ours.data(), ref.data(), ours.size() * sizeof(float)) == 0;
  double dot = 0, na = 0, nb = 0, mx = 0, amax = 0;
  for (size_t i = 0; i < ours.size(); ++i) {
    const double a = ours[i], b = ref[i];
    dot += a * b;
    na += a * a;
    nb += b * b;
    const double d = std::fabs(a - b);
    mx = std::isnan(d) ? INFINITY : std::max(mx, d);
    amax = std::max(amax, std::fabs(b));
  }
  m.max_abs = mx;
  m.rel = m.identical ? 0.0 : mx / std::max(amax, 1e-30);
  m.cosine = (na > 0 && nb > 0) ? dot / std::sqrt(na * nb) : (na == nb ? 1.0 : 0.0);
  return m;
}

}  // namespace bitnet::crossval
