// The one table of trace points of the forward pass. Names are used in trace records
// ("t{pos}/blk{N}/{op}"), and later mapped to reference engines' tensor names by crossval.
#pragma once

#include <array>
#include <optional>
#include <string_view>

namespace bitnet::trace {

enum class Op : int {
  kEmbeddings,         // t{pos}/embeddings                  [d]
  kAttnNorm,           // rmsnorm(x) * attn_norm              [d]
  kQProj,              // Wq h (after .scale)                 [d]
  kKProj,              // Wk h                                [d_kv]
  kVProj,              // Wv h                                [d_kv]
  kQRope,              // q after RoPE                        [d]
  kKRope,              // k after RoPE                        [d_kv]
  kAttnScoresSoftmax,  // softmax(q k^T / sqrt(hd)) per head  [n_heads, n_kv]
  kAttnOut,            // attention output, heads concatenated [d]
  kAttnSubNorm,        // rmsnorm(attn_out) * attn_sub_norm   [d]
  kOProj,              // Wo . attn_sub_norm                  [d]
  kAttnResidual,       // x + o_proj                          [d]
  kFfnNorm,            // rmsnorm(.) * ffn_norm               [d]
  kGateProj,           // Wg h                                [f]
  kUpProj,             // Wu h                                [f]
  kFfnAct,             // act(gate) * up                      [f]
  kFfnSubNorm,         // rmsnorm(.) * ffn_sub_norm           [f]
  kDownProj,           // Wd . ffn_sub_norm                   [d]
  kFfnResidual,        // block output                        [d]
  kFinalNorm,          // t{pos}/final_norm                   [d]
  kLogits,             // t{pos}/logits                       [vocab]
  kCount,
};

inline constexpr std::array<std::string_view, static_cast<size_t>(Op::kCount)> kOpNames = {
    "embeddings",   "attn_norm",     "q_proj",       "k_proj",
    "v_proj",       "q_rope",        "k_rope",       "attn_scores_softmax",
    "attn_out",     "attn_sub_norm", "o_proj",       "attn_residual",
    "ffn_norm",     "gate_proj",     "up_proj",      "ffn_act",
    "ffn_sub_norm", "down_proj",     "ffn_residual", "final_norm",
    "logits"};

inline std::string_view op_name(Op op) { return kOpNames[static_cast<size_t>(op)]; }
std::optional<Op> op_from_name(std::string_view name);
// Ops recorded once per block (layer >= 0); the others are global (layer -1).
inline bool is_block_op(Op op) {
  return op != Op::kEmbeddings && op != Op::kFinalNorm && op != Op::kLogits;
}
// Ops whose output is the input of BitLinear projections: their int8 codes are recorded too
// (attn_norm -> q/k/v, attn_sub_norm -> o, ffn_norm -> gate/up, ffn_sub_norm -> down).
inline bool feeds_bitlinear(Op op) {
  return op == Op::kAttnNorm || op == Op::kAttnSubNorm || op == Op::kFfnNorm ||
         op == Op::kFfnSubNorm;
}

}  // namespace bitnet::trace
