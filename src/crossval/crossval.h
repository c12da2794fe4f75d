// Cross-validation of our forward pass against a reference engine (llama.cpp through the
// bitnet-reference helper, see reference_runner.h).
//
// For each case (prompt, max_tokens):
//   1. token parity gate: our tokenizer's ids vs llama.cpp's (llama_tokenize, BOS added);
//   2. the reference evaluates the prompt in one batch (logits at every position) and then
//      max_tokens - 1 greedy steps one token at a time, tracing its graph (cb_eval) into our
//      trace format; we evaluate the SAME tokens with the same batch layout, traced in memory;
//   3. per position: logits metrics (metrics.h); per op: the first (position, layer, op) beyond
//      its stage tolerance, classified as an "activation rounding flip" when our projection fed
//      the reference's input reproduces the reference's output and the two inputs quantize to
//      int8 codes differing by one in a few places, else as a "real divergence";
//   4. greedy: where our argmax choices part from the reference's generated ids.
// Compared like with like: with an F16 KV cache our attn_scores_softmax trace holds the
// probabilities rounded to f16 (what p.V consumes), so the reference's f32 kq_soft_max is
// rounded to f16 before the comparison. The reference trace on disk keeps its own values.
// A case passes when tokens agree, every position passes, greedy choices agree, and there is no
// op divergence. In the exact regime (metrics.h) "passes" means identical bits; in the
// tolerance regime, within the logits tolerances, and a first op divergence classified as a
// rounding flip is allowed (flip.allow).
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
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
  std::string classification;  // "activation rounding flip" / "real divergence"
  std::string detail;
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
  std::optional<OpDivergence> first_op;
  // Max relative op difference per (position, layer); layer -1 = embeddings/head.
  std::map<std::pair<int, int>, double> heat;
  bool passed = false;
  std::string verdict;  // one line
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

nlohmann::ordered_json to_json(const PositionRow& r);
nlohmann::ordered_json to_json(const CaseResult& c);

}  // namespace bitnet::crossval
