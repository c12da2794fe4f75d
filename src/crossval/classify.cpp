#include "crossval/classify.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "kernels/activations.h"
#include "kernels/matmul.h"

namespace bitnet::crossval {

using trace::Op;
using Key = OpKey;

std::string op_label(int layer, std::string_view op_name) {
  return (layer >= 0 ? "blk" + std::to_string(layer) + "/" : std::string()) + std::string(op_name);
}

namespace {

// The code-level explanation of a projection whose input differs: how many int8 activation
// codes of our input and the reference's differ, and by how much.
struct CodeFlips {
  int differ = 0, max_step = 0;
};
CodeFlips code_flips(const model::Model& m, int layer, Op op, const std::vector<float>& ours,
                     const std::vector<float>& ref) {
  CodeFlips c;
  const kernels::WeightMatrix& w = projection_of(m.layers()[static_cast<size_t>(layer)], op).w;
  if (!kernels::is_ternary(w.type) || ours.size() != ref.size() ||
      static_cast<int64_t>(ours.size()) != w.k) {
    c.differ = -1;
    return c;
  }
  const kernels::ActQuant kind = kernels::act_quant_for(w.type);
  kernels::QuantizedActivations qr, qo;
  kernels::quantize_activations_ref(kind, ref.data(), 1, w.k, &qr);
  kernels::quantize_activations_ref(kind, ours.data(), 1, w.k, &qo);
  for (size_t i = 0; i < qr.q.size(); ++i) {
    const int step = std::abs(int(qr.q[i]) - int(qo.q[i]));
    c.differ += step != 0;
    c.max_step = std::max(c.max_step, step);
  }
  return c;
}

}  // namespace

Classified classify(const model::Model& m, Replayer& rp, const TraceValues& ours,
                    const TraceValues& ref, const std::map<Key, bool>& identical,
                    const Tolerances& tol, int pos, int layer, Op op) {
  Classified c;
  c.classification = "real divergence";
  char buf[400];
  auto self = rp.run(ours, pos, layer, op, false, false);
  if (!self.ok()) {
    c.detail = "cannot replay on our inputs: " + self.message();
    return c;
  }
  const LocalError se = local_error(self->out, *ours(pos, layer, op), {});
  if (!se.identical) {
    std::snprintf(buf, sizeof(buf),
                  "our output is not our op's result on our own inputs (element %lld, |diff| "
                  "%.3g): the forward pass computed something else",
                  static_cast<long long>(se.at), se.max_abs);
    c.detail = buf;
    c.local = INFINITY;
    return c;
  }
  auto local = rp.run(ref, pos, layer, op, true, true);
  if (!local.ok()) {
    c.detail = "cannot replay on the reference's inputs: " + local.message();
    return c;
  }
  const std::vector<float>& theirs = *ref(pos, layer, op);
  LocalError le = local_error(local->out, theirs, local->bound);
  std::string numerics_note;
  if (le.worst > 1.0 && (op == Op::kAttnScoresSoftmax || op == Op::kAttnOut || op == Op::kLogits ||
                         is_projection(op))) {
    // The reference may multiply its F16 matrices with f32 activations as they are.
    rp.set_f32_operands(true);
    auto alt = rp.run(ref, pos, layer, op, true, true);
    rp.set_f32_operands(false);
    if (alt.ok()) {
      const LocalError ae = local_error(alt->out, theirs, alt->bound);
      if (ae.worst < le.worst) {
        le = ae;
        local = std::move(alt);
        numerics_note = " (with f32 operands for its F16 matrices, as llama.cpp's sgemm path)";
      }
    }
  }
  c.local = le.worst;
  if (le.worst > 1.0) {
    const auto at = static_cast<size_t>(std::max<int64_t>(le.at, 0));
    std::snprintf(
        buf, sizeof(buf),
        "our op on the reference's inputs lies %.3g times its rounding bound from the "
        "reference's output (element %lld: ours %.9g, reference %.9g, bound %.3g)",
        le.worst, static_cast<long long>(le.at), local->out.size() > at ? local->out[at] : 0.0f,
        theirs.size() > at ? theirs[at] : 0.0f, local->bound.size() > at ? local->bound[at] : 0.0);
    c.detail = buf;
    return c;
  }
  // Within rounding locally: where did the difference come from?
  bool inputs_identical = true;
  for (const ReplayInput& in : rp.inputs(layer, op)) {
    for (int p = in.all_positions ? 0 : pos; p <= pos; ++p) {
      auto it = identical.find({p, in.layer, static_cast<int>(in.op)});
      inputs_identical = inputs_identical && it != identical.end() && it->second;
    }
  }
  if (inputs_identical) {
    std::snprintf(buf, sizeof(buf),
                  "identical inputs; the op's own rounding (%.2f of its bound on the "
                  "reference's inputs)",
                  le.worst);
    c.classification = "rounding";
    c.detail = buf + numerics_note;
    return c;
  }
  if (is_projection(op)) {
    const ReplayInput in = rp.inputs(layer, op).front();
    const std::vector<float>* a = ours(pos, in.layer, in.op);
    const std::vector<float>* b = ref(pos, in.layer, in.op);
    const CodeFlips f = a && b ? code_flips(m, layer, op, *a, *b) : CodeFlips{-1, 0};
    if (f.differ > 0 && f.max_step == 1 && f.differ <= tol.flip_max_codes) {
      std::snprintf(buf, sizeof(buf),
                    "%d int8 codes of its input %s differ by one; our op on the reference's "
                    "inputs is within %.2f of its rounding bound",
                    f.differ, std::string(trace::op_name(in.op)).c_str(), le.worst);
      c.classification = "activation rounding flip";
      c.detail = buf + numerics_note;
      return c;
    }
  }
  std::snprintf(buf, sizeof(buf),
                "inputs differ upstream; our op on the reference's inputs is within %.2f of its "
                "rounding bound",
                le.worst);
  c.classification = "propagated";
  c.detail = buf + numerics_note;
  return c;
}

// --explain: one op's comparison and both replays, line by line.
std::string explain_op(const model::Model& m, Replayer& rp, const TraceValues& ours,
                       const TraceValues& ref, const std::map<Key, bool>& identical, int pos,
                       int layer, Op op, const std::string& classification,
                       const std::string& detail) {
  std::string s;
  char buf[400];
  auto line = [&](const std::string& t) { s += t + "\n"; };
  line("explain position " + std::to_string(pos) + ", " + op_label(layer, op) + ":");
  const std::vector<float>* a = ours(pos, layer, op);
  const std::vector<float>* b = ref(pos, layer, op);
  if (a == nullptr || b == nullptr) {
    line(std::string("  not traced by ") + (a ? "the reference" : "us"));
    return s;
  }
  const OpMetrics om = compare_values(*a, *b);
  std::snprintf(buf, sizeof(buf), "  ours vs reference: %s (rel %.3g, max |diff| %.3g)",
                om.identical ? "identical" : "differ", om.rel, om.max_abs);
  line(buf);
  line("  inputs:");
  for (const ReplayInput& in : rp.inputs(layer, op)) {
    const int first = in.all_positions ? 0 : pos;
    int same = 0, n = 0;
    for (int p = first; p <= pos; ++p, ++n) {
      auto it = identical.find({p, in.layer, static_cast<int>(in.op)});
      same += it != identical.end() && it->second;
    }
    std::snprintf(buf, sizeof(buf),
                  "    %s at position%s %d%s: %d of %d identical to the reference's",
                  op_label(in.layer, in.op).c_str(), n > 1 ? "s 0 .." : "", pos, "", same, n);
    line(buf);
  }
  if (op == Op::kEmbeddings) line("    the token's row of token_embd");
  line("  bound: " +
       bound_rule(op, layer >= 0 && is_projection(op)
                          ? projection_of(m.layers()[static_cast<size_t>(layer)], op).w.type
                          : gguf::TensorType::F32) +
       "; u = 2^-24, lambda = 8");
  auto self = rp.run(ours, pos, layer, op, false, false);
  if (!self.ok()) {
    line("  our op on our inputs: cannot replay (" + self.message() + ")");
  } else {
    const LocalError e = local_error(self->out, *a, {});
    std::snprintf(buf, sizeof(buf), "  our op on our inputs: %s",
                  e.identical ? "reproduces our output bit for bit" : "DIFFERS from our output");
    line(buf);
  }
  auto local = rp.run(ref, pos, layer, op, true, true);
  if (!local.ok()) {
    line("  our op on the reference's inputs: cannot replay (" + local.message() + ")");
  } else {
    const LocalError e = local_error(local->out, *b, local->bound);
    if (e.identical) {
      line("  our op on the reference's inputs: reproduces the reference's output bit for bit");
    } else {
      const auto at = static_cast<size_t>(std::max<int64_t>(e.at, 0));
      std::snprintf(buf, sizeof(buf),
                    "  our op on the reference's inputs: %.3g of its bound (worst element %lld: "
                    "ours %.9g, reference %.9g, bound %.3g; max |diff| %.3g)",
                    e.worst, static_cast<long long>(e.at), local->out[at], (*b)[at],
                    local->bound[at], e.max_abs);
      line(buf);
    }
  }
  line("  classification: " + (classification.empty() ? std::string("identical") : classification) +
       (detail.empty() ? std::string() : " (" + detail + ")"));
  return s;
}

}  // namespace bitnet::crossval
