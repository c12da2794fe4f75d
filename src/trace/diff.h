// Comparing two traces (trace-diff): records aligned by (position, layer, op, kind), each pair
// judged exactly (same shape and BLAKE3) and by tolerance:
//  - with values on both sides: cosine similarity >= min_cosine and
//    max|a - b| / max(absmax_a, absmax_b) <= max_rel_diff;
//  - without: |rms_a - rms_b| / max(rms_a, rms_b) <= max_rel_rms.
// A different shape or NaN/Inf count is always beyond tolerance. Hashes never match across
// engines, so cross-engine comparisons rely on the tolerance metrics alone.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/result.h"
#include "trace/reader.h"

namespace bitnet::trace {

struct Tolerance {
  double min_cosine = 0.999;
  double max_rel_diff = 0.05;
  double max_rel_rms = 0.01;
};

struct Comparison {
  Record a, b;  // values not included
  bool identical = false;
  bool with_values = false;
  double cosine = 0, max_abs_diff = 0, rel_max_diff = 0;  // with_values only
  double rel_rms = 0;
  bool beyond = false;
  std::string reason;  // why it is beyond tolerance
};

struct LayerSummary {
  std::string label;  // "embd", "blk0", ..., "head" (final_norm and logits)
  int compared = 0, identical = 0, beyond = 0;
  double min_cosine = 1, max_rel_diff = 0, max_rel_rms = 0;
  bool any_values = false;
  std::string first_differing, first_beyond;  // record names, "" when none
};

struct DiffReport {
  std::string dir_a, dir_b;
  Tolerance tol;
  std::vector<Comparison> comparisons;  // forward order
  int only_a = 0, only_b = 0;
  std::optional<size_t> first_differing;      // first pair not bit-identical (any kind)
  std::optional<size_t> first_differing_f32;  // the same among op outputs (q8 records skipped)
  std::optional<size_t> first_beyond;         // first pair beyond tolerance
  std::vector<LayerSummary> layers;
  // From meta.json: the first position whose token ids differ (points from there on compare
  // different inputs, e.g. after greedy generation took another token).
  std::optional<int> token_mismatch;
  bool differs() const { return first_beyond.has_value(); }
};

// use_values: load stored values for the cosine / max-diff metrics when both sides have them.
Result<DiffReport> diff_traces(const Trace& a, const Trace& b, const Tolerance& tol,
                               bool use_values = true);

nlohmann::ordered_json to_json(const DiffReport& r);
std::string to_text(const DiffReport& r);

}  // namespace bitnet::trace
