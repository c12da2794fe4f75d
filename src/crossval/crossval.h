// Cross-validation of our forward pass against a reference engine (llama.cpp through the
// bitnet-reference helper, see reference_runner.h).
//
// For each case (prompt, max_tokens):
//   1. token parity gate: our tokenizer's ids vs llama.cpp's (llama_tokenize, BOS added);
//   2. the reference evaluates the prompt in one batch (logits at every position) and then
//      max_tokens - 1 greedy steps one token at a time, tracing its graph (cb_eval) into our
//      trace format; we evaluate the SAME tokens with the same batch layout, traced in memory;
//   3. per position: logits metrics (metrics.h); per op: every traced tensor compared, and each
//      one that differs classified by op-local replay (replay.h): our op run on our own inputs
//      must reproduce our output bit for bit, and run on the reference's inputs must land within
//      the op's rounding bound of the reference's output. Either failing is a "real
//      divergence"; otherwise the op is "rounding" (its inputs were identical: the op itself
//      rounds differently), an "activation rounding flip" (a projection whose input quantizes
//      to int8 codes differing by one in a few places) or "propagated" (its inputs already
//      differed). The first real divergence is the one reported, else the first op beyond its
//      stage tolerance with its classification;
//   4. greedy: where our argmax choices part from the reference's generated ids.
// Several references at once (multi.h) run these steps against each; --explain (Options::explain)
// prints one op's replay in detail.
// Compared like with like: with an F16 KV cache our attn_scores_softmax trace holds the
// probabilities rounded to f16 (what p.V consumes), so the reference's f32 kq_soft_max is
// rounded to f16 before the comparison. The reference trace on disk keeps its own values.
// A case passes when tokens agree, every position passes, greedy choices agree, and no op fails.
// In the exact regime (metrics.h) "passes" means identical bits (the first differing op is
// classified, to say why, and fails the run); in the tolerance regime, within the logits
// tolerances and no op classified as a real divergence (with flip.allow=0, no op beyond its
// stage tolerance at all).
#pragma once

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "core/result.h"
#include "crossval/metrics.h"
#include "crossval/reference_runner.h"
#include "kernels/dispatch.h"
#include "model/observe/observer.h"
#include "trace/ops.h"

namespace bitnet::crossval {

struct Case {
  std::string prompt;
  int max_tokens = 1;  // greedy choices compared (the reference generates this many)
};

// `bitnet sweep`'s default suite: the seed's cases plus longer ones (also what the screened
// head's tests run).
std::vector<Case> default_sweep_cases();

struct Options {
  std::string model;
  std::vector<Case> cases;
  // Ours.
  int n_threads = 1;
  std::string kv_type = "f16";
  std::string head_type = "file";  // ours: LM head precision (q8_0: its cost shows as KL)
  // Our kernel variant (the CLI: --kernels / BITNET_KERNELS) and huge pages for the packed
  // weights (the CLI: BITNET_HUGEPAGES=1), as in model::LoadOptions.
  kernels::Kernels kernels = kernels::Kernels::best();
  bool hugepages = false;
  // Reference.
  ReferenceOptions reference;
  // What to compare and how.
  bool trace_ops = true;  // per-op comparison (both engines traced)
  Tolerances tol;
  // The verdict regime (metrics.h): "auto" is exact against the pinned llama.cpp's x64 CPU
  // variant when our LM head is the exact one, tolerance otherwise; "exact" / "tolerance" force
  // one. tol_overridden: the caller changed `tol` (an error when the run is judged exactly).
  std::string regime = "auto";
  bool tol_overridden = false;
  std::string work_dir;   // reference files; "" = a temporary folder removed afterwards
  std::string trace_dir;  // keep both traces: <trace_dir>/<case id>/{ours,reference}
  // TEST-ONLY: an observer attached to our forward passes beside the trace, e.g. a test's fault
  // injection, which crossval must then find; `test_observer_note` says what it does and is
  // recorded in the receipt (settings.ours.test_perturbation). Not owned.
  model::Observer* test_observer = nullptr;
  std::string test_observer_note;
  // --explain: "POS/LAYER/OP" (a block op) or "POS/OP" (embeddings, final_norm, logits): the
  // replay of that op in detail, in CaseResult::explanation.
  std::string explain;
  // TEST-ONLY: a change applied to the reference's traced values as they are read (a reference
  // with a fault of its own, for the multi-reference attribution tests); noted in the receipt
  // (reference.test_perturbation).
  std::function<void(int position, int layer, trace::Op op, std::vector<float>& values)>
      test_reference_hook;
  std::string test_reference_note;
};

struct PositionRow {
  int position = 0;
  bool decode = false;  // a greedy decode step (else a prompt position)
  int32_t token = 0;    // the token evaluated at this position
  RowMetrics m;
  bool passed = true;
};

struct OpDivergence {
  int position = 0, layer = -1;
  trace::Op op = trace::Op::kEmbeddings;
  double rel = 0, max_abs = 0, cosine = 1, tolerance = 0;
  // "real divergence", "rounding", "activation rounding flip", "propagated", or "lossy head"
  // (--head-type fast / q8_0 logits, not classified).
  std::string classification;
  std::string detail;
  double local = 0;  // replay on the reference's inputs: the error in units of its bound
};

struct CaseResult {
  std::string id;
  Case c;
  std::vector<int32_t> ids_ours, ids_ref;
  bool tokens_match = false;
  int first_token_mismatch = -1;
  std::vector<int32_t> generated_ref, greedy_ours;  // greedy choices (ours: argmax of our rows)
  int greedy_parts_at = -1;  // index into generated where they differ, -1 = identical
  std::vector<PositionRow> rows;
  int ops_compared = 0, ops_identical = 0, ops_beyond = 0, ops_only_ours = 0;
  // The differing ops by classification (exact regime: only the first is classified).
  int ops_real = 0, ops_rounding = 0, ops_flip = 0, ops_propagated = 0, ops_lossy = 0;
  // The largest local error among the ops replay explained, in units of its bound (how close
  // the closest call came), and where.
  double max_local = 0;
  std::string max_local_at;
  std::optional<OpDivergence> first_op;
  // Max relative op difference per (position, layer); layer -1 = embeddings/head.
  std::map<std::pair<int, int>, double> heat;
  bool passed = false;
  std::string verdict;      // one line
  std::string explanation;  // --explain: the op's replay, several lines
  // {position, layer, op, kind, classification} of the first divergence, or null.
  nlohmann::ordered_json first_divergence;
};

struct RunResult {
  std::vector<CaseResult> cases;
  nlohmann::ordered_json reference;  // identity: helper, tree, library, version, settings
  nlohmann::ordered_json ours;       // our settings
  nlohmann::ordered_json model;      // path, sha256, arch, dims
  nlohmann::ordered_json tokenizer;  // source, hash
  std::string kernels;               // our kernel variant, as the loaded model ran it
  std::string test_perturbation;     // Options::test_observer_note when a test observer ran
  Tolerances tol;                    // what the run was judged by (judged_by)
  bool passed() const;
};

// The tolerances a run with these options is judged by: o.tol with the regime resolved and the
// reason recorded. Errors: an unknown regime, tolerances overridden for an exact run.
Result<Tolerances> judged_by(const Options& o);

Result<RunResult> run_crossval(const Options& o);

// --explain's argument: {position, layer (-1 for a global op), op}.
Result<std::tuple<int, int, trace::Op>> parse_explain(const std::string& s);

nlohmann::ordered_json to_json(const PositionRow& r);
nlohmann::ordered_json to_json(const CaseResult& c);

}  // namespace bitnet::crossval
