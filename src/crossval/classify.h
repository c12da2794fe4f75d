// How crossval classifies one op whose output differs from the reference's (crossval.h): the
// two replays of replay.h, then where the difference came from; and --explain's account of one
// op.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <tuple>

#include "crossval/metrics.h"
#include "crossval/replay.h"
#include "model/weights.h"
#include "trace/ops.h"

namespace bitnet::crossval {

using OpKey = std::tuple<int, int, int>;  // position, layer, op

// "blk3/attn_out", or "logits" for a global op (layer -1); the name may also be one of the
// case-level points a first divergence names ("tokens", "greedy").
std::string op_label(int layer, std::string_view op_name);
inline std::string op_label(int layer, trace::Op op) { return op_label(layer, trace::op_name(op)); }

struct Classified {
  // "real divergence", "rounding", "activation rounding flip" or "propagated".
  std::string classification, detail;
  double local = 0;  // the local error in units of its bound (replay on the reference's inputs)
};

// Our op on our own inputs must give our output bit for bit, and on the reference's inputs land
// within its rounding bound of the reference's output (trying the f32-operand numerics of
// llama.cpp's sgemm path for products with F16 matrices); failing either is a real divergence.
// Otherwise the op is the op's own rounding (identical inputs), an activation rounding flip (a
// projection whose input codes differ by one in at most tol.flip_max_codes places) or a
// difference propagated from upstream. `identical`: which traced tensors were bit-identical.
Classified classify(const model::Model& m, Replayer& rp, const TraceValues& ours,
                    const TraceValues& ref, const std::map<OpKey, bool>& identical,
                    const Tolerances& tol, int pos, int layer, trace::Op op);

// --explain: one op's comparison, its inputs, its bound rule and both replays, line by line.
std::string explain_op(const model::Model& m, Replayer& rp, const TraceValues& ours,
                       const TraceValues& ref, const std::map<OpKey, bool>& identical, int pos,
                       int layer, trace::Op op, const std::string& classification,
                       const std::string& detail);

}  // namespace bitnet::crossval
