// Tracing from the command line: the --trace-* flags of `bitnet run` (TraceFlags), and the
// commands reading trace folders back: `bitnet trace-diff` and `bitnet trace-show`.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>

#include "cli/command.h"
#include "cli/model_flags.h"
#include "trace/diff.h"
#include "trace/reader.h"

namespace bitnet::cli {

void TraceFlags::add_to(CLI::App* app) {
  app->add_option(
      "--trace-dir", dir,
      std::string("Record every op at every position into this folder (also BITNET_TRACE_DIR)") +
          (trace::kTraceCompiled ? "" : " [compiled out of this build]"));
  app->add_option("--trace-filter", filter,
                  "Only points whose name matches one of these comma-separated globs "
                  "(names: t{pos}/embeddings, t{pos}/blk{N}/{op}, t{pos}/blk{N}/{op}/q8, "
                  "t{pos}/final_norm, t{pos}/logits)");
  app->add_option("--trace-positions", positions,
                  "Only these token positions: all, or a list of N, A-B, A- (e.g. 0,4-6,10-)");
  app->add_flag("--trace-values", values, "Also store the raw f32 values of the traced points");
  app->add_option("--trace-values-format", values_format,
                  "npy (one file per point) | safetensors (one file)")
      ->capture_default_str();
  app->add_flag(
      "--trace-seed-layout", seed_layout,
      "Also write one <t0_blk0_attn_norm>.trace JSON file per point (older scripts' layout)");
}

std::string TraceFlags::folder() const {
  if (!dir.empty()) return dir;
  const char* env = std::getenv("BITNET_TRACE_DIR");
  return env != nullptr ? env : "";
}

Result<std::unique_ptr<trace::Writer>> TraceFlags::start(LoadedModel& lm) const {
  const std::string folder = this->folder();
  const bool from_env = dir.empty();
  if (folder.empty()) {
    if (!filter.empty() || !positions.empty() || values || seed_layout) {
      return make_error(
          "--trace-filter, --trace-positions, --trace-values and --trace-seed-layout need "
          "--trace-dir "
          "(or BITNET_TRACE_DIR)");
    }
    return std::unique_ptr<trace::Writer>();
  }
  if constexpr (!trace::kTraceCompiled) {
    if (from_env) {
      std::fprintf(
          stderr,
          "bitnet: warning: BITNET_TRACE_DIR ignored: tracing is compiled out of this build\n");
      return std::unique_ptr<trace::Writer>();
    }
    return make_error(
        "--trace-dir: tracing is compiled out of this build (configure with -DBITNET_TRACE=ON)");
  }
  trace::WriterOptions o;
  o.dir = folder;
  BITNET_ASSIGN_OR_RETURN(o.selection, trace::Selection::parse(filter, positions));
  if (values) {
    auto f = trace::values_format_from_name(values_format);
    if (!f) return make_error("--trace-values-format: %s", f.message().c_str());
    o.values = *f;
  }
  o.seed_layout = seed_layout;
  BITNET_ASSIGN_OR_RETURN(auto w, trace::Writer::open(o));
  lm.set_trace(w.get());
  return w;
}

Status TraceFlags::finish(trace::Writer* w, LoadedModel& lm, const ModelFlags& mf,
                          std::span<const int32_t> ids, int n_prompt, int first_position) const {
  lm.set_trace(nullptr);
  const auto& c = lm.model->config();
  nlohmann::ordered_json meta;
  meta["engine"] = "bitnet";
  meta["engine_version"] = "0.1.0";
  nlohmann::ordered_json model;
  model["path"] = mf.model;
  auto hash = trace::blake3_file_hex(mf.model);
  model["blake3"] = hash ? nlohmann::ordered_json(*hash) : nlohmann::ordered_json(nullptr);
  model["architecture"] = lm.model->file().architecture();
  model["weight_type"] = gguf::tensor_type_name(lm.model->weight_type());
  model["n_layers"] = c.n_layers;
  model["n_embd"] = c.n_embd;
  model["n_embd_kv"] = c.n_embd_kv();
  model["n_ff"] = c.n_ff;
  model["n_heads"] = c.n_heads;
  model["n_vocab"] = c.n_vocab;
  meta["model"] = model;
  meta["token_ids"] = std::vector<int32_t>(ids.begin(), ids.end());
  meta["n_prompt"] = n_prompt;
  meta["first_position"] = first_position;
  meta["settings"] = {{"filter", filter},
                      {"positions", positions.empty() ? "all" : positions},
                      {"kernels", kernels_name(lm)},
                      {"threads", lm.context->n_threads()},
                      {"kv_type", mf.kv_type},
                      {"n_ctx", lm.context->n_ctx()}};
  return w->finish(meta);
}

namespace {

struct DiffFlags {
  std::string a, b;
  bool json = false;
  bool no_values = false;
  bool strict = false;
  trace::Tolerance tol;
};

int run_diff(const DiffFlags& f) {
  if (!(f.tol.min_cosine >= -1 && f.tol.min_cosine <= 1))
    return fail("--min-cosine must be in [-1, 1]");
  if (!(f.tol.max_rel_diff >= 0) || !(f.tol.max_rel_rms >= 0)) {
    return fail("--max-rel-diff and --max-rel-rms must not be negative");
  }
  auto ta = trace::read_trace(f.a);
  if (!ta) return fail(ta.error());
  auto tb = trace::read_trace(f.b);
  if (!tb) return fail(tb.error());
  auto rep = trace::diff_traces(*ta, *tb, f.tol, !f.no_values);
  if (!rep) return fail(rep.error());
  const bool unmatched = f.strict && (rep->only_a > 0 || rep->only_b > 0);
  if (f.json) {
    auto j = trace::to_json(*rep);
    j["strict"] = f.strict;
    std::puts(j.dump(2).c_str());
  } else {
    std::fputs(trace::to_text(*rep).c_str(), stdout);
    if (unmatched) std::puts("result: some points are in one trace only (--strict)");
  }
  return rep->differs() || unmatched ? kExitFailure : kExitOk;
}

struct ShowFlags {
  std::string dir;
  std::string filter, positions;
  bool q8 = false;
  bool json = false;
};

int run_show(const ShowFlags& f) {
  auto t = trace::read_trace(f.dir);
  if (!t) return fail(t.error());
  auto sel = trace::Selection::parse(f.filter, f.positions);
  if (!sel) return fail(sel.error());
  // Rows (layer, op, kind) in forward order; columns positions; cells the rms.
  std::vector<const trace::Record*> recs;
  for (const auto& r : t->records) {
    if ((f.q8 || r.kind == trace::Kind::kF32) && sel->selected(r.position, r.layer, r.op, r.kind))
      recs.push_back(&r);
  }
  std::set<int> positions;
  using RowKey = std::tuple<int, int, int, int>;  // stage, layer, op, kind
  std::map<RowKey, std::map<int, const trace::Record*>> rows;
  for (const auto* r : recs) {
    positions.insert(r->position);
    const int stage = r->op == trace::Op::kEmbeddings ? 0 : trace::is_block_op(r->op) ? 1 : 2;
    rows[{stage, r->layer, static_cast<int>(r->op), static_cast<int>(r->kind)}][r->position] = r;
  }
  auto label = [](int layer, int stage) {
    return stage == 0   ? std::string("embd")
           : stage == 2 ? std::string("head")
                        : "blk" + std::to_string(layer);
  };
  auto op_label = [](int op, int kind) {
    return std::string(trace::op_name(static_cast<trace::Op>(op))) + (kind ? "/q8" : "");
  };
  if (f.json) {
    nlohmann::ordered_json j;
    j["dir"] = f.dir;
    j["meta"] = t->meta;
    j["positions"] = positions;
    auto& out = j["rows"] = nlohmann::ordered_json::array();
    for (const auto& [k, cells] : rows) {
      const auto& [stage, layer, op, kind] = k;
      nlohmann::ordered_json row = {{"layer", label(layer, stage)}, {"op", op_label(op, kind)}};
      auto& rms = row["rms"] = nlohmann::ordered_json::array();
      for (int p : positions) {
        const auto it = cells.find(p);
        rms.push_back(it == cells.end() ? nlohmann::ordered_json(nullptr)
                                        : nlohmann::ordered_json(it->second->stats.rms));
      }
      out.push_back(row);
    }
    std::puts(j.dump(2).c_str());
    return kExitOk;
  }
  std::printf("trace: %s (%zu records", f.dir.c_str(), t->records.size());
  if (t->meta.contains("model") && t->meta["model"].contains("path")) {
    std::printf("; model %s, %s", t->meta["model"]["path"].get<std::string>().c_str(),
                t->meta["model"].value("weight_type", "").c_str());
  }
  if (t->meta.contains("token_ids"))
    std::printf("; tokens %s", t->meta["token_ids"].dump().c_str());
  std::printf(")\nrms per op and position (! marks NaN/Inf present)\n%-6s %-22s", "layer", "op");
  for (int p : positions) std::printf(" %10s", ("t" + std::to_string(p)).c_str());
  std::printf("\n");
  std::string last_layer;
  for (const auto& [k, cells] : rows) {
    const auto& [stage, layer, op, kind] = k;
    const std::string l = label(layer, stage);
    std::printf("%-6s %-22s", l == last_layer ? "" : l.c_str(), op_label(op, kind).c_str());
    last_layer = l;
    for (int p : positions) {
      const auto it = cells.find(p);
      if (it == cells.end()) {
        std::printf(" %10s", "-");
        continue;
      }
      const auto& s = it->second->stats;
      char cell[32];
      std::snprintf(cell, sizeof cell, "%.4g%s", s.rms, s.nan_count + s.inf_count > 0 ? "!" : "");
      std::printf(" %10s", cell);
    }
    std::printf("\n");
  }
  if (rows.empty()) std::printf("(no record selected)\n");
  return kExitOk;
}

}  // namespace

std::vector<Command> register_trace(CLI::App& app) {
  auto* diff = app.add_subcommand(
      "trace-diff", "Compare two trace folders and name the first point that differs");
  auto d = std::make_shared<DiffFlags>();
  diff->add_option("DIR_A", d->a, "First trace folder")->required();
  diff->add_option("DIR_B", d->b, "Second trace folder")->required();
  diff->add_flag("--json", d->json, "Print one JSON object");
  diff->add_option("--min-cosine", d->tol.min_cosine,
                   "With values: smallest cosine similarity within tolerance")
      ->capture_default_str();
  diff->add_option("--max-rel-diff", d->tol.max_rel_diff,
                   "With values: largest max|a-b| / max(absmax) within tolerance")
      ->capture_default_str();
  diff->add_option("--max-rel-rms", d->tol.max_rel_rms,
                   "Without values: largest |rms_a - rms_b| / max(rms) within tolerance")
      ->capture_default_str();
  diff->add_flag("--no-values", d->no_values, "Ignore stored values (compare by statistics only)");
  diff->add_flag("--strict", d->strict,
                 "Points present in one trace only also count as a difference");

  auto* show =
      app.add_subcommand("trace-show", "Summarize a trace folder: rms per op, layer and position");
  auto s = std::make_shared<ShowFlags>();
  show->add_option("DIR", s->dir, "Trace folder")->required();
  show->add_option("--filter", s->filter,
                   "Only records whose name matches these comma-separated globs");
  show->add_option("--positions", s->positions, "Only these positions (all, N, A-B, A-)");
  show->add_flag("--q8", s->q8,
                 "Also show the quantized BitLinear inputs (rms of the dequantized codes)");
  show->add_flag("--json", s->json, "Print one JSON object");
  return {Command{diff, [d] { return run_diff(*d); }}, Command{show, [s] { return run_show(*s); }}};
}

}  // namespace bitnet::cli
