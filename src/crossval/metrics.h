// What crossval measures, and the tolerances it judges by.
//
// Per position (logits row of ours vs the reference's):
//   cosine   dot(a, b) / (|a| |b|)                      (in double)
//   l2       sqrt(sum (a_i - b_i)^2)
//   max_abs  max |a_i - b_i|
//   mse      sum (a_i - b_i)^2 / n_vocab
//   kl       KL(P_ref || P_ours) in nats, P = softmax(logits) (in double)
//   top1     argmax equal (ties: lowest id); top5_overlap = |top5(ours) ∩ top5(ref)|
// Per op (one traced tensor of one position): rel = max|ours - ref| / max(max|ref|, 1e-30),
//   compared with the tolerance of the op's stage.
//
// Two verdict regimes (Tolerances::exact):
//   exact      against a reference our engine reproduces bit for bit (the pinned llama.cpp's x64
//              CPU variant, with an exact LM head on our side): every compared op and every
//              logit must have identical bits, and a NaN or infinity anywhere fails. The
//              thresholds below are not used.
//   tolerance  against references that are not bit-reproducible (SIMD variants, other trees,
//              an approximate LM head): the thresholds below. A NaN or infinity in a logits
//              row fails there too.
//
// Default tolerances (see Tolerances; override with --tol key=value):
//   op.<stage>.max_rel  1e-4 for every stage (embed, norm, proj, rope, attention, residual,
//                       ffn_act, head). Against the x64 reference variant everything is
//                       bit-identical (rel = 0); against SIMD variants float reordering gives
//                       ~1e-7..1e-6 until an int8 activation code flips, which moves a
//                       projection by ~1e-3 relative. Ops beyond it are counted and reported
//                       first when nothing is a real divergence; whether a differing op fails is
//                       decided by op-local replay (replay.h), not by this threshold.
//   logits.min_cosine   0.999
//   logits.max_kl       1e-3 nats
//   logits.top1         1 (top-1 must agree at every position; 0 to only report)
//   flip.max_codes      64  (at most this many int8 activation codes differing, each by 1, for
//                       a propagated difference at a projection to count as an "activation
//                       rounding flip")
//   flip.allow          1   (ops replay explains do not fail the run; 0 makes any op beyond its
//                       stage tolerance a failure)
#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <span>
#include <string>

#include "core/result.h"
#include "trace/ops.h"

namespace bitnet::crossval {

enum class Stage { kEmbed, kNorm, kProj, kRope, kAttention, kResidual, kFfnAct, kHead, kCount };
inline constexpr std::array<const char*, static_cast<size_t>(Stage::kCount)> kStageNames = {
    "embed", "norm", "proj", "rope", "attention", "residual", "ffn_act", "head"};
Stage stage_of(trace::Op op);
inline const char* stage_name(Stage s) { return kStageNames[static_cast<size_t>(s)]; }

// The projection ops (BitLinear or float matrices: q, k, v, o, gate, up, down).
bool is_projection(trace::Op op);

struct RowMetrics {
  double cosine = 0, l2 = 0, max_abs = 0, mse = 0, kl = 0;
  int32_t top1_ours = -1, top1_ref = -1;
  bool top1_match = false;
  int top5_overlap = 0;
  bool identical = false;  // same bits at every index (and the same length)
  int non_finite = 0;      // NaN or infinite values, in ours and the reference together
};

struct Tolerances {
  std::array<double, static_cast<size_t>(Stage::kCount)> op_max_rel{};
  double logits_min_cosine = 0.999;
  double logits_max_kl = 1e-3;
  bool logits_top1 = true;
  int flip_max_codes = 64;
  bool flip_allow = true;
  // The regime (see above) and, in one line, why it applies to this run (for the report).
  bool exact = false;
  std::string regime_reason;

  Tolerances() { op_max_rel.fill(1e-4); }
  double max_rel(trace::Op op) const { return op_max_rel[static_cast<size_t>(stage_of(op))]; }
  // "op.proj.max_rel=1e-3", "op.max_rel=1e-3" (every stage), "logits.min_cosine=0.9999",
  // "logits.max_kl=1e-4", "logits.top1=0", "flip.max_codes=16", "flip.allow=0".
  Status set(const std::string& assignment);
  // Whether a logits row passes under these tolerances (or, exact, is identical and finite).
  bool row_passes(const RowMetrics& m) const;
  nlohmann::ordered_json to_json() const;
  // Receipts written before the regimes existed have no "regime": they were judged by
  // tolerances.
  static Result<Tolerances> from_json(const nlohmann::json& j);
};

RowMetrics compare_logits(std::span<const float> ours, std::span<const float> ref);

struct OpMetrics {
  double rel = 0, max_abs = 0, cosine = 1;
  bool identical = false;
};
OpMetrics compare_values(std::span<const float> ours, std::span<const float> ref);

// Index of the largest value (ties: the lowest index).
int32_t argmax(std::span<const float> x);

}  // namespace bitnet::crossval
