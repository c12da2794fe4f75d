#include "crossval/ref_names.h"

#include <charconv>

namespace bitnet::crossval {

using trace::Op;

namespace {
// ggml ops that only re-view data: never mapped (their values repeat the node they view).
bool is_view_op(std::string_view op) {
  return op == "RESHAPE" || op == "VIEW" || op == "PERMUTE" || op == "TRANSPOSE" || op == "NONE";
}

bool op_listed(std::string_view list, std::string_view op) {
  while (!list.empty()) {
    const size_t comma = list.find(',');
    if (list.substr(0, comma) == op) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}
}  // namespace

const std::vector<RefNameRule>& ref_name_table() {
  // Projections accept MUL_MAT and the MUL / ADD of a .scale tensor or bias applied after it.
  static const std::vector<RefNameRule> table = {
      {"inp_embd", "", Op::kEmbeddings},
      {"attn_norm", "", Op::kAttnNorm},
      {"Qcur", "MUL_MAT,MUL,ADD", Op::kQProj},
      {"Kcur", "MUL_MAT,MUL,ADD", Op::kKProj},
      {"Vcur", "MUL_MAT,MUL,ADD", Op::kVProj},
      {"Qcur", "ROPE", Op::kQRope},
      {"Kcur", "ROPE", Op::kKRope},
      {"kq_soft_max", "SOFT_MAX", Op::kAttnScoresSoftmax},
      {"kq_soft_max_ext", "SOFT_MAX", Op::kAttnScoresSoftmax},
      // llama.cpp 2024's llama graph applies wo inside its attention helper and names that
      // product kqv_out; its attention output is kqv_merged_cont.
      {"kqv_out", "MUL_MAT", Op::kOProj},
      {"kqv_merged_cont", "", Op::kAttnOut},
      {"kqv_out", "", Op::kAttnOut},
      {"attn_sub_norm", "", Op::kAttnSubNorm},
      {"attn_out", "", Op::kOProj},    // upstream 2025+
      {"attn_o_out", "", Op::kOProj},  // llama.cpp 2024, bitnet.cpp
      {"ffn_inp", "", Op::kAttnResidual},
      {"ffn_norm", "", Op::kFfnNorm},
      {"ffn_gate", "", Op::kGateProj},
      {"ffn_gate_s", "", Op::kGateProj},
      {"ffn_up", "", Op::kUpProj},
      {"ffn_up_s", "", Op::kUpProj},
      {"ffn_sub_out", "", Op::kFfnAct},
      {"ffn_swiglu", "GLU", Op::kFfnAct},    // llama (no sub-norm renames it)
      {"ffn_gate_par", "MUL", Op::kFfnAct},  // llama.cpp 2024's llama graph: silu(gate) * up
      {"ffn_sub_norm", "", Op::kFfnSubNorm},
      {"ffn_down", "", Op::kDownProj},
      {"ffn_down_s", "", Op::kDownProj},
      {"ffn_out", "MUL_MAT", Op::kDownProj},  // llama: the down product (its ADD is l_out)
      {"l_out", "", Op::kFfnResidual},
      {"result_norm", "", Op::kFinalNorm},
      {"result_output", "", Op::kLogits},
  };
  return table;
}

RefName split_ref_name(std::string_view name) {
  RefName r;
  const size_t dash = name.rfind('-');
  if (dash != std::string_view::npos && dash + 1 < name.size()) {
    int layer = 0;
    const char* b = name.data() + dash + 1;
    const char* e = name.data() + name.size();
    auto [p, ec] = std::from_chars(b, e, layer);
    if (ec == std::errc() && p == e && layer >= 0) {
      r.base = std::string(name.substr(0, dash));
      r.layer = layer;
      return r;
    }
  }
  r.base = std::string(name);
  return r;
}

bool ref_name_wanted(std::string_view name) {
  const RefName r = split_ref_name(name);
  for (const RefNameRule& rule : ref_name_table()) {
    if (rule.ref_name == r.base) return true;
  }
  return false;
}

std::optional<Op> map_ref_node(std::string_view name, std::string_view ggml_op) {
  if (is_view_op(ggml_op)) return std::nullopt;
  const RefName r = split_ref_name(name);
  for (const RefNameRule& rule : ref_name_table()) {
    if (rule.ref_name != r.base) continue;
    if (!rule.ggml_ops.empty() && !op_listed(rule.ggml_ops, ggml_op)) continue;
    // Block ops need a layer, global ops must not have one.
    if (trace::is_block_op(rule.op) != (r.layer >= 0)) continue;
    return rule.op;
  }
  return std::nullopt;
}

std::vector<PositionValues> split_positions(Op op, const std::vector<int64_t>& shape,
                                            const std::vector<float>& data, int first_pos,
                                            int n_tokens) {
  std::vector<PositionValues> out;
  if (n_tokens <= 0 || data.empty()) return out;
  if (op == Op::kAttnScoresSoftmax) {
    const int64_t ne0 = shape.size() > 0 ? shape[0] : 1;
    const int64_t ne1 = shape.size() > 1 ? shape[1] : 1;
    const int64_t ne2 = shape.size() > 2 ? shape[2] : 1;
    if (ne1 != n_tokens || static_cast<size_t>(ne0 * ne1 * ne2) != data.size()) return out;
    for (int t = 0; t < n_tokens; ++t) {
      const int pos = first_pos + t;
      const int64_t n_kv = pos + 1;
      if (n_kv > ne0) return {};
      PositionValues pv;
      pv.position = pos;
      pv.shape = {ne2, n_kv};
      pv.values.resize(static_cast<size_t>(ne2 * n_kv));
      for (int64_t h = 0; h < ne2; ++h) {
        const float* src = data.data() + (h * ne1 + t) * ne0;
        std::copy(src, src + n_kv, pv.values.begin() + h * n_kv);
      }
      out.push_back(std::move(pv));
    }
    return out;
  }
  if (data.size() % static_cast<size_t>(n_tokens) != 0) return out;
  const int64_t row = static_cast<int64_t>(data.size()) / n_tokens;
  for (int t = 0; t < n_tokens; ++t) {
    PositionValues pv;
    pv.position = first_pos + t;
    pv.shape = {row};
    pv.values.assign(data.begin() + t * row, data.begin() + (t + 1) * row);
    out.push_back(std::move(pv));
  }
  return out;
}

}  // namespace bitnet::crossval
