#include "crossval/crossval.h"

#include <sys/utsname.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <tuple>

#include "core/fp16.h"
#include "core/npy.h"
#include "core/thread_pool.h"
#include "crossval/classify.h"
#include "crossval/replay.h"
#include "crossval/sha256.h"
#include "kernels/dispatch.h"
#include "kernels/matmul.h"
#include "model/context.h"
#include "model/observe/trace_observer.h"
#include "model/weights.h"
#include "tokenizer/tokenizer.h"
#include "trace/reader.h"
#include "trace/record.h"
#include "trace/writer.h"

namespace bitnet::crossval {

std::vector<Case> default_sweep_cases() {
  return {{"2+2=", 1},
          {"Hello", 2},
          {"Count: ", 4},
          {"The quick brown fox jumps over the lazy dog.", 8},
          {"In a hole in the ground there lived a hobbit. Not a nasty, dirty, wet hole.", 8},
          {"def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n", 6}};
}

namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;
using trace::Op;

namespace {

using Key = OpKey;

// Forward order: position, then embeddings, blocks in order, then final_norm / logits.
std::tuple<int, int, int> order_key(int position, int layer, Op op) {
  int group = layer;
  if (op == Op::kEmbeddings) group = -1;
  if (op == Op::kFinalNorm || op == Op::kLogits) group = 1 << 20;
  return {position, group, static_cast<int>(op)};
}

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> values;
};

// Our side: every traced tensor kept in memory, optionally also written as a trace folder.
class CollectSink final : public trace::Sink {
 public:
  explicit CollectSink(trace::Writer* writer) : writer_(writer) {}
  bool wants(const trace::Point&) const override { return true; }
  void record(const trace::Point& p, std::span<const float> values,
              std::span<const int64_t> shape) override {
    Tensor& t = tensors[{p.position, p.layer, static_cast<int>(p.op)}];
    t.shape.assign(shape.begin(), shape.end());
    t.values.assign(values.begin(), values.end());
    if (writer_ != nullptr) writer_->record(p, values, shape);
  }
  void record_codes(const trace::Point& p, trace::QuantGrouping g, std::span<const int8_t> codes,
                    std::span<const float> scales) override {
    if (writer_ != nullptr) writer_->record_codes(p, g, codes, scales);
  }
  std::map<Key, Tensor> tensors;

 private:
  trace::Writer* writer_;
};

std::string fmt_g(double v) {
  char b[32];
  std::snprintf(b, sizeof(b), "%.3g", v);
  return b;
}

ordered_json divergence_json(int position, int layer, const std::string& op,
                             const std::string& kind, const std::string& classification) {
  return {{"position", position},
          {"layer", layer},
          {"op", op},
          {"kind", kind},
          {"classification", classification}};
}

Status copy_dir(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::remove_all(to, ec);
  fs::create_directories(to.parent_path(), ec);
  fs::copy(from, to, fs::copy_options::recursive, ec);
  if (ec) return make_error("copying %s to %s: %s", from.c_str(), to.c_str(), ec.message().c_str());
  return {};
}

std::string tokenizer_hash(const tokenizer::Tokenizer& tok) {
  Sha256 h;
  const auto& spec = tok.spec();
  h.update(spec.model_name + "\n" + spec.pre_name + "\n");
  for (size_t i = 0; i < tok.n_tokens(); ++i) {
    h.update(tok.token_text(static_cast<int32_t>(i)));
    h.update("\n", 1);
  }
  for (const auto& [a, b] : spec.merges) h.update(a + " " + b + "\n");
  return h.hex();
}

}  // namespace

bool RunResult::passed() const {
  return !cases.empty() &&
         std::all_of(cases.begin(), cases.end(), [](const CaseResult& c) { return c.passed; });
}

Result<Tolerances> judged_by(const Options& o) {
  Tolerances t = o.tol;
  if (o.regime == "exact") {
    t.exact = true;
    t.regime_reason = "asked for (--regime exact): any differing bit fails";
  } else if (o.regime == "tolerance") {
    t.regime_reason = "asked for (--regime tolerance)";
  } else if (o.regime != "auto") {
    return make_error("--regime '%s' is not one of auto, exact, tolerance", o.regime.c_str());
  } else if (!o.reference.reference_dir.empty()) {
    t.regime_reason =
        "the reference is another llama.cpp tree (--reference-dir), whose numerics this engine "
        "does not reproduce bit for bit";
  } else if (o.reference.cpu_variant != "x64") {
    t.regime_reason =
        "the reference's CPU variant '" +
        (o.reference.cpu_variant.empty() ? std::string("best") : o.reference.cpu_variant) +
        "' sums in other orders than its portable x64 code";
  } else if (o.head_type != "file") {
    t.regime_reason = "our --head-type " + o.head_type + " is not the exact LM head";
  } else {
    t.exact = true;
    t.regime_reason =
        "this engine reproduces the pinned llama.cpp's x64 CPU variant bit for bit: any "
        "differing bit fails";
  }
  if (t.exact && o.tol_overridden) {
    return make_error(
        "--tol does not apply: the run is judged exactly (%s); add --regime tolerance to judge it "
        "by tolerances",
        t.regime_reason.c_str());
  }
  return t;
}

Result<RunResult> run_crossval(const Options& o) {
  if (o.cases.empty()) return make_error("crossval: no cases");
  if (!o.explain.empty()) {
    if (auto e = parse_explain(o.explain); !e.ok()) return make_error("%s", e.message().c_str());
  }
  BITNET_ASSIGN_OR_RETURN(const Tolerances tol, judged_by(o));
  for (const Case& c : o.cases) {
    if (c.max_tokens < 0) return make_error("crossval: --max-tokens must not be negative");
  }
  if (o.kv_type != "f16" && o.kv_type != "f32") {
    return make_error("--kv-type '%s' is not one of f16, f32", o.kv_type.c_str());
  }
  RunResult run;
  run.tol = tol;
  if (o.test_observer != nullptr) run.test_perturbation = o.test_observer_note;

  model::LoadOptions load_options;
  BITNET_ASSIGN_OR_RETURN(load_options.head, model::head_type_from_name(o.head_type));
  // Crossval compares every logit, which the screened head leaves to the full one anyway.
  if (load_options.head == model::HeadType::kScreened ||
      load_options.head == model::HeadType::kAuto)
    return make_error(
        "crossval: --head-type '%s' is not one of file, fast, q8_0 (crossval "
        "compares every logit; the screened head's are file's where it computes them)",
        o.head_type.c_str());
  load_options.kernels = o.kernels;
  load_options.hugepages = o.hugepages;
  BITNET_ASSIGN_OR_RETURN(auto model, model::Model::load(o.model, load_options));
  run.kernels = std::string(model->kernels().name());
  BITNET_ASSIGN_OR_RETURN(auto tok, tokenizer::Tokenizer::from_gguf(model->file()));
  const model::ModelConfig& cfg = model->config();
  BITNET_ASSIGN_OR_RETURN(std::string model_sha, sha256_file_hex(o.model));
  std::error_code ec;
  run.model = {{"path", fs::absolute(o.model, ec).string()},
               {"sha256", model_sha},
               {"size_bytes", fs::file_size(o.model, ec)},
               {"arch", std::string(model::arch_name(cfg.arch))},
               {"weight_type", std::string(gguf::tensor_type_name(model->weight_type()))},
               {"n_layers", cfg.n_layers},
               {"n_embd", cfg.n_embd},
               {"n_ff", cfg.n_ff},
               {"n_heads", cfg.n_heads},
               {"n_kv_heads", cfg.n_kv_heads},
               {"n_vocab", cfg.n_vocab}};
  const tokenizer::TokenizerInfo ti = tok.info();
  run.tokenizer = {{"source", ti.source},
                   {"source_kind", ti.source_kind},
                   {"model", ti.model},
                   {"pre_tokenizer", ti.pre_tokenizer},
                   {"pre_tokenizer_origin", ti.pre_tokenizer_origin},
                   {"n_tokens", ti.n_tokens},
                   {"vocab_sha256", tokenizer_hash(tok)}};
  run.ours = {
      {"engine", "bitnet"},
      {"n_threads", o.n_threads},
      {"kv_type", o.kv_type},
      {"head_type", o.head_type},
      {"kernels", run.kernels},
      {"batch_layout", "prompt in one batch (logits at every position), then one token per eval"},
      {"trace_ops", o.trace_ops}};
  if (!run.test_perturbation.empty()) run.ours["test_perturbation"] = run.test_perturbation;

  // Our token ids, then the reference run (all cases in one helper process).
  std::vector<std::vector<int32_t>> ids(o.cases.size());
  json req;
  req["model"] = fs::absolute(o.model, ec).string();
  req["settings"] = {{"n_threads", o.reference.n_threads},     {"n_batch", o.reference.n_batch},
                     {"kv_type", o.reference.kv_type},         {"flash_attn", false},
                     {"cpu_variant", o.reference.cpu_variant}, {"verbose", o.reference.verbose}};
  req["trace"] = o.trace_ops;
  req["cases"] = json::array();
  for (size_t i = 0; i < o.cases.size(); ++i) {
    ids[i] = tok.encode(o.cases[i].prompt, {.add_special = true});
    if (ids[i].empty()) return make_error("crossval: prompt %zu gives no tokens", i);
    req["cases"].push_back({{"id", "c" + std::to_string(i)},
                            {"text", o.cases[i].prompt},
                            {"tokens", ids[i]},
                            {"n_gen", o.cases[i].max_tokens}});
  }
  BITNET_ASSIGN_OR_RETURN(std::string helper, find_reference_helper(o.reference));
  std::string work = o.work_dir;
  bool remove_work = false;
  if (work.empty()) {
    std::string tmpl = (fs::temp_directory_path() / "bitnet-crossval-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) return make_error("cannot create a temporary folder");
    work = tmpl;
    remove_work = true;
  }
  struct Cleanup {
    std::string dir;
    bool on;
    ~Cleanup() {
      std::error_code e;
      if (on) fs::remove_all(dir, e);
    }
  } cleanup{work, remove_work};
  BITNET_ASSIGN_OR_RETURN(json resp, run_reference_helper(helper, req, work));
  {
    auto lib = sha256_file_hex(resp["backend"].value("llama_library", std::string()));
    run.reference = {{"helper", helper},
                     {"tree", resp["backend"].value("tree", std::string())},
                     {"library", resp["backend"].value("llama_library", std::string())},
                     {"library_sha256", lib.ok() ? *lib : std::string()},
                     {"api", resp["backend"].value("api", std::string())},
                     {"version", resp["backend"].value("version", std::string())},
                     {"cpu_variant", resp["backend"].value("cpu_variant", std::string())},
                     {"cpu_plugin", resp["backend"].value("cpu_plugin", std::string())},
                     {"cpu_device", resp["backend"].value("cpu_device", std::string())},
                     {"settings", resp["settings"]},
                     {"description", resp.value("description", std::string())}};
    if (o.test_reference_hook) run.reference["test_perturbation"] = o.test_reference_note;
  }
  if (resp.value("n_vocab", 0) != static_cast<int>(cfg.n_vocab)) {
    return make_error("reference n_vocab %d differs from the model's %u", resp.value("n_vocab", 0),
                      cfg.n_vocab);
  }

  ThreadPool pool(std::max(1, o.n_threads));
  const int64_t nv = cfg.n_vocab;
  for (size_t ci = 0; ci < o.cases.size(); ++ci) {
    const json& rc = resp.at("cases").at(ci);
    CaseResult cr;
    cr.id = "c" + std::to_string(ci);
    cr.c = o.cases[ci];
    cr.ids_ours = ids[ci];
    cr.ids_ref = rc.value("reference_tokens", std::vector<int32_t>{});
    cr.tokens_match = cr.ids_ours == cr.ids_ref;
    if (!cr.tokens_match) {
      const size_t n = std::min(cr.ids_ours.size(), cr.ids_ref.size());
      size_t i = 0;
      while (i < n && cr.ids_ours[i] == cr.ids_ref[i]) ++i;
      cr.first_token_mismatch = static_cast<int>(i);
      cr.verdict = "token ids differ at index " + std::to_string(i);
      cr.first_divergence =
          divergence_json(static_cast<int>(i), -1, "tokens", "tokens", "real divergence");
      run.cases.push_back(std::move(cr));
      continue;
    }
    cr.generated_ref = rc.value("generated", std::vector<int32_t>{});
    BITNET_ASSIGN_OR_RETURN(
        NpyArray ref_logits,
        read_npy_f32((fs::path(work) / rc.at("logits").get<std::string>()).string()));
    const int n_prompt = static_cast<int>(cr.ids_ours.size());
    const int n_gen = cr.c.max_tokens;
    const int n_rows = n_prompt + std::max(n_gen - 1, 0);
    if (static_cast<int64_t>(ref_logits.data.size()) != n_rows * nv) {
      return make_error("reference returned %zu logits for %d positions", ref_logits.data.size(),
                        n_rows);
    }

    // Our run: same tokens, same batch layout.
    std::unique_ptr<trace::Writer> writer;
    if (!o.trace_dir.empty() && o.trace_ops) {
      trace::WriterOptions wo;
      wo.dir = (fs::path(o.trace_dir) / cr.id / "ours").string();
      wo.values = trace::ValuesFormat::kNpy;
      BITNET_ASSIGN_OR_RETURN(writer, trace::Writer::open(wo));
    }
    CollectSink sink(writer.get());
    model::ContextOptions co;
    co.n_ctx = n_rows + 1;
    co.kv_f16 = o.kv_type == "f16";
    co.n_threads = std::max(1, o.n_threads);
    BITNET_ASSIGN_OR_RETURN(auto ctx, model::Context::create(*model, co));
    model::TraceObserver tracer(&sink);
    model::ObserverList observers;
    observers.add(o.test_observer);  // first: the trace records what it leaves
    if (o.trace_ops) observers.add(&tracer);
    ctx->set_observer(observers.get());
    std::vector<float> ours, step;
    BITNET_TRY(ctx->eval(cr.ids_ours, true, &ours));
    std::vector<int32_t> evaluated = cr.ids_ours;
    for (int k = 0; k + 1 < n_gen; ++k) {
      if (static_cast<size_t>(k) >= cr.generated_ref.size()) break;
      const int32_t t = cr.generated_ref[static_cast<size_t>(k)];
      BITNET_TRY(ctx->eval(std::span(&t, 1), false, &step));
      ours.insert(ours.end(), step.begin(), step.end());
      evaluated.push_back(t);
    }
    ctx->set_observer(nullptr);
    if (writer) {
      ordered_json meta = {{"engine", "bitnet"},
                           {"model", run.model["path"]},
                           {"token_ids", evaluated},
                           {"n_prompt", n_prompt},
                           {"settings", run.ours}};
      BITNET_TRY(writer->finish(meta));
      if (rc.contains("trace")) {
        BITNET_TRY(copy_dir(fs::path(work) / rc["trace"].get<std::string>(),
                            fs::path(o.trace_dir) / cr.id / "reference"));
      }
    }

    // Per position.
    std::optional<int> first_bad_row;
    for (int r = 0; r < n_rows; ++r) {
      PositionRow row;
      row.position = r;
      row.decode = r >= n_prompt;
      row.token = evaluated[static_cast<size_t>(r)];
      row.m = compare_logits({ours.data() + r * nv, static_cast<size_t>(nv)},
                             {ref_logits.data.data() + r * nv, static_cast<size_t>(nv)});
      row.passed = tol.row_passes(row.m);
      if (!row.passed && !first_bad_row) first_bad_row = r;
      cr.rows.push_back(row);
    }
    // Greedy choices: ours = argmax of our row n_prompt - 1 + k.
    for (int k = 0; k < n_gen && n_prompt - 1 + k < n_rows + 1; ++k) {
      const int r = n_prompt - 1 + k;
      if (r >= n_rows) break;
      cr.greedy_ours.push_back(argmax({ours.data() + r * nv, static_cast<size_t>(nv)}));
    }
    for (size_t k = 0; k < cr.greedy_ours.size() && k < cr.generated_ref.size(); ++k) {
      if (cr.greedy_ours[k] != cr.generated_ref[k]) {
        cr.greedy_parts_at = static_cast<int>(k);
        break;
      }
    }

    // Per op: compare every traced tensor, then classify the ones that differ by replay.
    if (o.trace_ops && rc.contains("trace")) {
      const std::string tdir = (fs::path(work) / rc["trace"].get<std::string>()).string();
      BITNET_ASSIGN_OR_RETURN(trace::Trace rt, trace::read_trace(tdir));
      trace::ValueStore store(tdir);
      std::map<Key, std::vector<float>> ref_values;  // as the reference traced them
      std::map<Key, bool> identical;
      std::map<std::tuple<int, int, int>, Key> differing;  // forward order -> key
      std::map<Key, OpMetrics> metrics;
      auto compare = [&](const Key& key, std::vector<float> rv) {
        auto it = sink.tensors.find(key);
        if (it == sink.tensors.end()) return;
        const auto [pos, layer, op_i] = key;
        const Op op = static_cast<Op>(op_i);
        std::vector<float> cmp = rv;
        if (op == Op::kAttnScoresSoftmax && o.kv_type == "f16") {
          // Our trace records the probabilities as p.V consumes them: rounded to f16 with an
          // F16 cache (as ggml's F16 matrix product rounds them); llama.cpp's kq_soft_max is
          // the f32 tensor before that rounding. Compare like with like.
          for (float& v : cmp) v = fp16_to_fp32(fp32_to_fp16(v));
        }
        const OpMetrics om = compare_values(it->second.values, cmp);
        ref_values[key] = std::move(rv);
        identical[key] = om.identical;
        metrics[key] = om;
        ++cr.ops_compared;
        cr.ops_identical += om.identical;
        double& cell = cr.heat[{pos, trace::is_block_op(op) ? layer : -1}];
        cell = std::max(cell, om.rel);
        if (!om.identical) differing[order_key(pos, layer, op)] = key;
        if (!tol.exact && om.rel > tol.max_rel(op)) ++cr.ops_beyond;
      };
      for (const trace::Record& rec : rt.records) {
        if (rec.kind != trace::Kind::kF32) continue;
        BITNET_ASSIGN_OR_RETURN(std::vector<float> rv, store.load(rec));
        if (o.test_reference_hook) o.test_reference_hook(rec.position, rec.layer, rec.op, rv);
        compare({rec.position, rec.layer, static_cast<int>(rec.op)}, std::move(rv));
      }
      // llama.cpp does not report its embeddings (the get_rows of token_embd) through cb_eval.
      // What it adds to the residual stream there is the token's row of the file, which every
      // engine turns into the same floats (F16 widens exactly; a quantized row dequantizes by
      // one formula): ours are compared with that row.
      for (int p = 0; p < n_rows; ++p) {
        const Key key{p, -1, static_cast<int>(Op::kEmbeddings)};
        if (ref_values.count(key) != 0 || sink.tensors.count(key) == 0) continue;
        std::vector<float> row(static_cast<size_t>(cfg.n_embd));
        model->embedding_row(evaluated[static_cast<size_t>(p)], row.data());
        compare(key, std::move(row));
      }
      for (const auto& [key, t] : sink.tensors) cr.ops_only_ours += ref_values.count(key) == 0;
      cr.ops_beyond = tol.exact ? static_cast<int>(differing.size()) : cr.ops_beyond;

      const TraceValues ours_at = [&](int p, int l, Op op) -> const std::vector<float>* {
        auto it = sink.tensors.find({p, l, static_cast<int>(op)});
        return it == sink.tensors.end() ? nullptr : &it->second.values;
      };
      const TraceValues ref_at = [&](int p, int l, Op op) -> const std::vector<float>* {
        auto it = ref_values.find({p, l, static_cast<int>(op)});
        return it == ref_values.end() ? nullptr : &it->second;
      };
      Replayer replayer(*model, o.kv_type == "f16", evaluated, &pool);
      std::optional<OpDivergence> first_beyond;
      std::map<Key, Classified> classified;  // kept for --explain
      for (const auto& [order, key] : differing) {
        const auto [pos, layer, op_i] = key;
        const Op op = static_cast<Op>(op_i);
        const OpMetrics& om = metrics[key];
        OpDivergence d;
        d.position = pos;
        d.layer = layer;
        d.op = op;
        d.rel = om.rel;
        d.max_abs = om.max_abs;
        d.cosine = om.cosine;
        d.tolerance = tol.exact ? 0.0 : tol.max_rel(op);
        // A head other than the exact one (--head-type fast / q8_0) changes the logits by design:
        // their cost is what the per-position logits metrics (KL, top-1, cosine) measure.
        if (op == Op::kLogits && o.head_type != "file") {
          d.classification = "lossy head";
          d.detail = "--head-type " + o.head_type + " changes the logits by design";
          ++cr.ops_lossy;
        } else {
          const Classified& c = classified[key] =
              classify(*model, replayer, ours_at, ref_at, identical, tol, pos, layer, op);
          d.classification = c.classification;
          d.detail = c.detail;
          d.local = c.local;
          cr.ops_real += c.classification == "real divergence";
          cr.ops_rounding += c.classification == "rounding";
          cr.ops_flip += c.classification == "activation rounding flip";
          cr.ops_propagated += c.classification == "propagated";
          if (c.classification != "real divergence" && c.local > cr.max_local) {
            cr.max_local = c.local;
            cr.max_local_at = "position " + std::to_string(pos) + ", " + op_label(layer, op);
          }
        }
        if (d.classification == "real divergence" && !cr.first_op) cr.first_op = d;
        if (!first_beyond && (tol.exact || om.rel > d.tolerance)) first_beyond = d;
        // Judged exactly, the first differing op fails the run: what follows it is not needed.
        if (tol.exact) break;
      }
      if (!cr.first_op) cr.first_op = first_beyond;
      if (!o.explain.empty()) {
        BITNET_ASSIGN_OR_RETURN(const auto e, parse_explain(o.explain));
        const auto [pos, layer, op] = e;
        std::string classification, detail;
        const Key key{pos, layer, static_cast<int>(op)};
        if (identical.count(key) && !identical[key]) {
          auto it = classified.find(key);
          if (it == classified.end()) {  // judged exactly, only the first op was classified
            it = classified
                     .emplace(key, classify(*model, replayer, ours_at, ref_at, identical, tol, pos,
                                            layer, op))
                     .first;
          }
          classification = it->second.classification;
          detail = it->second.detail;
        }
        cr.explanation = explain_op(*model, replayer, ours_at, ref_at, identical, pos, layer, op,
                                    classification, detail);
      }
    }

    // Verdict.
    // Exact: any differing op fails. Tolerance: an op whose difference replay cannot explain
    // fails (and with flip.allow=0, any op beyond its stage tolerance).
    const bool op_fail = cr.first_op && (tol.exact || cr.ops_real > 0 || !tol.flip_allow);
    cr.passed = !first_bad_row && cr.greedy_parts_at < 0 && !op_fail;
    char buf[800];
    if (cr.first_op) {
      const OpDivergence& d = *cr.first_op;
      cr.first_divergence = divergence_json(d.position, d.layer, std::string(trace::op_name(d.op)),
                                            "op", d.classification);
      cr.first_divergence["rel"] = d.rel;
      cr.first_divergence["tolerance"] = d.tolerance;
      cr.first_divergence["detail"] = d.detail;
      cr.first_divergence["local_error"] =
          std::isfinite(d.local) ? ordered_json(d.local) : ordered_json(nullptr);
      std::snprintf(buf, sizeof(buf), "first divergence at position %d, %s (rel %.3g): %s: %s",
                    d.position, op_label(d.layer, d.op).c_str(), d.rel, d.classification.c_str(),
                    d.detail.c_str());
      cr.verdict = buf;
    } else if (first_bad_row) {
      const PositionRow& row = cr.rows[static_cast<size_t>(*first_bad_row)];
      cr.first_divergence =
          divergence_json(row.position, -1, "logits", "logits", "real divergence");
      if (row.m.non_finite > 0) {
        std::snprintf(buf, sizeof(buf), "logits at position %d hold %d NaN or infinite values",
                      row.position, row.m.non_finite);
      } else if (tol.exact) {
        std::snprintf(buf, sizeof(buf),
                      "logits at position %d are not bit-identical (max |diff| %.3g, top-1 %s)",
                      row.position, row.m.max_abs, row.m.top1_match ? "agrees" : "differs");
      } else {
        std::snprintf(
            buf, sizeof(buf), "logits diverge at position %d (cosine %.6f, KL %.3g, top-1 %s)",
            row.position, row.m.cosine, row.m.kl, row.m.top1_match ? "agrees" : "differs");
      }
      cr.verdict = buf;
    } else if (cr.greedy_parts_at >= 0) {
      cr.first_divergence = divergence_json(n_prompt - 1 + cr.greedy_parts_at, -1, "greedy",
                                            "greedy", "real divergence");
      cr.verdict = "greedy choices part at generated token " + std::to_string(cr.greedy_parts_at);
    }
    if (cr.passed) {
      double min_cos = 1, max_abs = 0;
      for (const auto& row : cr.rows) {
        min_cos = std::min(min_cos, row.m.cosine);
        max_abs = std::max(max_abs, row.m.max_abs);
      }
      std::string explained;
      if (cr.ops_identical < cr.ops_compared) {
        explained = " (the others: " + std::to_string(cr.ops_rounding) + " rounding, " +
                    std::to_string(cr.ops_flip) + " activation rounding flip, " +
                    std::to_string(cr.ops_propagated) + " propagated" +
                    (cr.ops_lossy ? ", " + std::to_string(cr.ops_lossy) + " lossy head" : "") +
                    "; largest local error " + fmt_g(cr.max_local) + " of its bound, at " +
                    cr.max_local_at + ")";
      }
      std::snprintf(buf, sizeof(buf),
                    "pass (%s): %d positions, min cosine %.9f, max |diff| %.3g, %d/%d ops "
                    "bit-identical%s",
                    tol.exact ? "exact" : "within tolerances", n_rows, min_cos, max_abs,
                    cr.ops_identical, cr.ops_compared, explained.c_str());
      cr.verdict = buf;
    }
    run.cases.push_back(std::move(cr));
  }
  return run;
}

Result<std::tuple<int, int, Op>> parse_explain(const std::string& s) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t slash; (slash = s.find('/', start)) != std::string::npos; start = slash + 1)
    parts.push_back(s.substr(start, slash - start));
  parts.push_back(s.substr(start));
  auto number = [](const std::string& t, int* v) {
    if (t.empty() || t.size() > 6 || t.find_first_not_of("0123456789") != std::string::npos)
      return false;
    *v = std::atoi(t.c_str());
    return true;
  };
  int pos = 0, layer = -1;
  std::optional<Op> op;
  if (parts.size() == 2 || parts.size() == 3) op = trace::op_from_name(parts.back());
  const bool ok = op && number(parts[0], &pos) &&
                  (parts.size() == 2 ? !trace::is_block_op(*op)
                                     : trace::is_block_op(*op) && number(parts[1], &layer));
  if (!ok) {
    return make_error(
        "--explain '%s' is not POS/LAYER/OP (a block op, e.g. 3/1/attn_out) or POS/OP "
        "(embeddings, final_norm, logits)",
        s.c_str());
  }
  return std::tuple<int, int, Op>{pos, layer, *op};
}

ordered_json to_json(const PositionRow& r) {
  return {{"position", r.position},
          {"decode", r.decode},
          {"token", r.token},
          {"cosine", r.m.cosine},
          {"l2", r.m.l2},
          {"max_abs", r.m.max_abs},
          {"mse", r.m.mse},
          {"kl", r.m.kl},
          {"top1_match", r.m.top1_match},
          {"top1_ours", r.m.top1_ours},
          {"top1_ref", r.m.top1_ref},
          {"top5_overlap", r.m.top5_overlap},
          {"identical", r.m.identical},
          {"non_finite", r.m.non_finite},
          {"passed", r.passed}};
}

ordered_json to_json(const CaseResult& c) {
  ordered_json j;
  j["id"] = c.id;
  j["prompt"] = c.c.prompt;
  j["max_tokens"] = c.c.max_tokens;
  j["token_ids"] = {{"ours", c.ids_ours}, {"reference", c.ids_ref}, {"match", c.tokens_match}};
  j["generated"] = {{"reference", c.generated_ref},
                    {"ours_greedy", c.greedy_ours},
                    {"parts_at", c.greedy_parts_at < 0 ? ordered_json(nullptr)
                                                       : ordered_json(c.greedy_parts_at)}};
  j["positions"] = ordered_json::array();
  for (const auto& r : c.rows) j["positions"].push_back(to_json(r));
  j["ops"] = {{"compared", c.ops_compared},
              {"identical", c.ops_identical},
              {"beyond", c.ops_beyond},
              {"only_ours", c.ops_only_ours},
              {"classified",
               {{"real_divergence", c.ops_real},
                {"rounding", c.ops_rounding},
                {"activation_rounding_flip", c.ops_flip},
                {"propagated", c.ops_propagated},
                {"lossy_head", c.ops_lossy}}},
              {"max_local_error", c.max_local},
              {"max_local_error_at", c.max_local_at}};
  ordered_json heat = ordered_json::array();
  for (const auto& [k, v] : c.heat)
    heat.push_back({{"position", k.first}, {"layer", k.second}, {"max_rel", v}});
  j["op_heat"] = heat;
  j["first_divergence"] = c.first_divergence.is_null() ? ordered_json(nullptr) : c.first_divergence;
  j["passed"] = c.passed;
  j["verdict"] = c.verdict;
  return j;
}

}  // namespace bitnet::crossval
