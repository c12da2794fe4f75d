// The one table mapping reference-engine tensor names (llama.cpp / bitnet.cpp graph names seen
// through cb_eval, "attn_norm-0", "Qcur-0", ...) to our trace ops (trace/ops.h), plus how each
// tensor's values are laid out per token position.
//
// llama.cpp gives several graph nodes the same name: "Qcur-N" is the projection output, its
// reshape (a view) and the RoPE output; "ffn_up-N" is followed by "ffn_up_s-N" when a scalar
// .scale tensor multiplies it. The ggml op of the node tells them apart (views are skipped), and
// when several nodes of one graph evaluation map to the same (position, layer, op), the LAST one
// wins (e.g. ffn_up_s after ffn_up: our up_proj includes the scale).
//
// Name differences between trees are handled by aliases: upstream 2025 names the o projection
// "attn_out", llama.cpp b3995 "attn_o_out"; the softmax is "kq_soft_max" or "kq_soft_max_ext";
// the FFN product is "ffn_sub_out" in every BitNet graph (bitnet.cpp and upstream), and
// "ffn_swiglu" in upstream's llama graph, whose down projection is "ffn_out" (a MUL_MAT; the
// residual ADD after it ends up named "l_out"). The sub-norm ops do not occur for llama.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "trace/ops.h"

namespace bitnet::crossval {

struct RefNameRule {
  std::string_view ref_name;  // without the "-<layer>" suffix
  std::string_view ggml_ops;  // comma-separated ggml ops accepted; "" = any computing op
  trace::Op op;               // our op
};

// The table, in forward order.
const std::vector<RefNameRule>& ref_name_table();

struct RefName {
  std::string base;  // "Qcur"
  int layer = -1;    // 3 for "Qcur-3"; -1 for "result_norm"
};
// "Qcur-3" -> {"Qcur", 3}; "result_output" -> {"result_output", -1}.
RefName split_ref_name(std::string_view name);

// Whether the observer should copy this tensor (its base name is in the table).
bool ref_name_wanted(std::string_view name);

// Our op for a node, or nullopt (unknown name, or a view / an op the rule does not accept).
std::optional<trace::Op> map_ref_node(std::string_view name, std::string_view ggml_op);

// One position's values of a reference tensor observed for a micro-batch.
struct PositionValues {
  int position = 0;
  std::vector<int64_t> shape;  // our logical shape (trace/ops.h)
  std::vector<float> values;
};
// Splits a tensor of a micro-batch (first position first_pos, n_tokens tokens; shape in ggml
// order, ne0 first, dense) into per-position values in our layout: rows [row_len] for most ops;
// for attn_scores_softmax ([n_kv, n_tokens, n_heads] in ggml) [n_heads, position + 1] (the KV
// cells beyond the position are masked or padding). Empty if the shape does not fit.
std::vector<PositionValues> split_positions(trace::Op op, const std::vector<int64_t>& shape,
                                            const std::vector<float>& data, int first_pos,
                                            int n_tokens);

}  // namespace bitnet::crossval
