// Op-local replay: our implementation of one traced op, run on inputs taken from a trace (the
// reference's or our own), and the rounding bound its output must keep to.
//
// Why: references that are not bit-reproducible (llama.cpp's SIMD variants, other trees, other
// machines) sum in other orders, so their values differ from ours in the last bits from the
// first attention on, and the differences grow downstream. Comparing op outputs alone cannot
// tell a bug from that growth. Replay can: fed the reference's own inputs, our op must land
// within rounding of the reference's output; fed our inputs, it must reproduce our output bit
// for bit. crossval.cpp classifies every differing op with these two checks (see crossval.h).
//
// The inputs of each op (inputs()): the trace values of the ops that feed it at the same
// position, except attention, which reads every position 0 .. pos of K (k_rope) and V (v_proj)
// as the cache holds them (rounded to f16 with an F16 cache). The residual adds read the
// block's input (the previous block's ffn_residual, or the embeddings).
//
// The bounds. u = 2^-24 (float's unit roundoff). Two engines each approximate the same exact
// result, so a bound covers the error of both (factor 2). A sum of n rounded terms t_k is
// within lambda * sqrt(n) * u * sum |t_k| of its exact value with overwhelming probability
// (probabilistic rounding-error analysis, Higham & Mary 2019: the deterministic worst case grows
// with n instead of sqrt(n) but is never approached by real rounding errors, and would hide a
// 1e-4 change of a 2560-long sum); lambda = 8 puts the chance of a correct sum exceeding it
// below 1e-12 per element. Per op kind, element i of the output y (A_i = the sum of the
// absolute values of the terms its sum adds):
//   embeddings          2u |y_i|                  (a dequantized row: at most one product)
//   norms (RMSNorm)     |y_i| (lambda sqrt(n) u + 8u)
//                       (mean of n squares: relative error lambda sqrt(n) u per engine, halved
//                       by the square root; then sqrt, divide, two multiplies)
//   projections, TQ*    2 lambda sqrt(16 nb + 16) u A_i + 6u |y_i|, A_i = sum_j |q_j w_ij| d_act
//                       (nb 256-blocks; the integer products are exact, but an engine may convert
//                       partial sums of any grouping to float: ggml's SIMD variants convert one
//                       per vector lane (up to 16) and block, then add the lanes)
//   projections, I2_S   8u |y_i|                  (one exact integer sum, then /s and *scale)
//   projections, float  2 lambda sqrt(k) u A_i + 4u |y_i|, A_i = sum_j |w_ij x_j|
//   (a .scale multiply adds 2u |y_i|)
//   q_rope, k_rope      4u (|x0 cos| + |x1 sin|) + 2u |y_i| for each rotated pair
//   attn softmax        p_j (2 D + 2 lambda sqrt(n_kv) u + 8u), D = the largest score bound of
//                       the head, 2 lambda sqrt(hd) u scale sum_i |q_i k_ji| + 2u |s_j| (a score
//                       error moves p_j and, through the normalisation, every other p by at
//                       most the largest one; exp and the normalisation round a few times). The
//                       comparison is with the reference's f32 probabilities, before the f16
//                       rounding p.V applies, which would add a whole f16 ulp.
//   attn_out            2 lambda sqrt(n_kv) u A_i + 2u |y_i|, A_i = sum_j |p_j v_ji|
//   residual adds       2u |y_i|                  (one rounding)
//   ffn_act             ReLU^2: 6u |y_i|; SiLU: 16u |y_i| (exp within 2 ulp, a divide, a multiply)
//   logits              as a float projection over n_embd
// With an F16 cache or head, the operands are rounded to f16 first on both sides, so the
// products are exact and only the sums round.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "core/result.h"
#include "core/thread_pool.h"
#include "model/blocks.h"
#include "model/weights.h"
#include "trace/ops.h"

namespace bitnet::crossval {

inline constexpr double kRoundoff = 0x1p-24;  // u
inline constexpr double kLambda = 8.0;

// One engine's traced values, by (position, layer, op); null when not traced.
using TraceValues = std::function<const std::vector<float>*(int position, int layer, trace::Op)>;

// A traced tensor an op reads: positions [first, last] of (layer, op).
struct ReplayInput {
  int layer = -1;
  trace::Op op = trace::Op::kEmbeddings;
  bool all_positions = false;  // K and V: every position up to the op's
};

struct Replayed {
  std::vector<float> out;     // our op's output, in the trace's layout
  std::vector<double> bound;  // per element: how far another engine's output may lie
};

class Replayer {
 public:
  // tokens: the token evaluated at each position (the embeddings' input).
  Replayer(const model::Model& m, bool kv_f16, std::vector<int32_t> tokens, ThreadPool* pool);

  // Replay as an engine that multiplies F16 matrices (the head, float projections, K and V of
  // an F16 cache) with f32 activations as they are, instead of rounding them to f16 first: what
  // llama.cpp's llamafile sgemm path does where it applies (older trees take it for F16 x F32
  // products). The classification tries it when the rounding replay is beyond its bound.
  void set_f32_operands(bool on) { f32_operands_ = on; }

  // What op (layer) reads.
  std::vector<ReplayInput> inputs(int layer, trace::Op op) const;

  // Our op at (position, layer) on `in`'s values of its inputs. raw_probs: the softmax as
  // computed, before the f16 rounding an F16 cache applies (what the reference traces); else
  // as our trace records it. with_bound: fill Replayed::bound. Errors name a missing input.
  Result<Replayed> run(const TraceValues& in, int position, int layer, trace::Op op, bool raw_probs,
                       bool with_bound);

 private:
  const model::Model& m_;
  const model::ModelConfig& c_;
  model::Numerics numerics_;
  bool kv_f16_;
  bool f32_operands_ = false;
  std::vector<int32_t> tokens_;
  ThreadPool* pool_;
  model::RopeTable rope_;
};

// The bound rule of an op kind in one line (the table above), for --explain.
std::string bound_rule(trace::Op op, gguf::TensorType weight_type);

// The projection `op` (q_proj .. down_proj) of a block.
const model::Projection& projection_of(const model::LayerWeights& L, trace::Op op);

// How an op's output compares with another engine's under a bound.
struct LocalError {
  double worst = 0;    // max_i |ours_i - theirs_i| / bound_i (infinite: beyond a zero bound)
  int64_t at = -1;     // its element
  double max_abs = 0;  // max_i |ours_i - theirs_i|
  bool identical = true;
};
LocalError local_error(std::span<const float> ours, std::span<const float> theirs,
                       std::span<const double> bound);

}  // namespace bitnet::crossval
