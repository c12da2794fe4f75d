// bitnet-reference: the reference side of `bitnet crossval`, as a separate executable.
//
// The adapter (llama_reference.cpp) is compiled against ONE llama.h and linked to that tree's
// shared libraries, so each reference tree gets its own helper binary (bitnet-reference for the
// pinned upstream llama.cpp, bitnet-reference-oldapi for the older-API pin, or one built for
// --reference-dir). `bitnet crossval` runs it as a subprocess and exchanges files:
//
//   bitnet-reference --request REQ.json --out DIR     evaluate the cases of REQ.json
//   bitnet-reference --info [--cpu-variant V]          backend identity as JSON on stdout
//   bitnet-reference --tree                            the tree it was built against
//
// REQ.json: {"model": path, "settings": {n_threads, n_ctx, n_batch, kv_f16, flash_attn,
//   cpu_variant, backend_dir}, "trace": bool, "cases": [{"id", "text", "tokens": [ids],
//   "n_gen"}]}. Each case: llama.cpp's own tokenization of `text` (for the token parity gate),
// then `tokens` evaluated from an empty cache in one batch with logits at every position,
// then n_gen greedy steps one token at a time. Written to DIR:
//   DIR/response.json        backend identity, settings, per case: reference token ids,
//                            generated ids, number of logits rows
//   DIR/<id>/logits.npy      [rows x n_vocab] f32, rows = prompt positions + n_gen - 1
//   DIR/<id>/trace/          the intermediate tensors in OUR trace format (trace.jsonl,
//                            meta.json, values/*.npy), mapped by crossval/ref_names.h
// Exit codes: 0 done, 2 error ("bitnet-reference: error: ..." on stderr).
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <vector>

#include "core/npy.h"
#include "crossval/ref_names.h"
#include "reference/llama_reference.h"
#include "trace/record.h"
#include "trace/writer.h"

#ifndef BITNET_REFERENCE_TREE
#define BITNET_REFERENCE_TREE ""
#endif

namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;

namespace bitnet::reference {
namespace {

ordered_json backend_json(const BackendInfo& b) {
  return {{"llama_library", b.llama_library}, {"api", b.api},          {"version", b.version},
          {"backend_dir", b.backend_dir},     {"cpu_plugin", b.cpu_plugin},
          {"cpu_variant", b.cpu_variant},     {"cpu_device", b.cpu_device},
          {"cpu_features", b.cpu_features},   {"devices", b.devices},
          {"tree", BITNET_REFERENCE_TREE}};
}

ordered_json settings_json(const ReferenceSettings& s) {
  return {{"n_threads", s.n_threads},   {"n_ctx", s.n_ctx},           {"n_batch", s.n_batch},
          {"kv_type", s.kv_f16 ? "f16" : "f32"}, {"flash_attn", s.flash_attn},
          {"cpu_variant", s.cpu_variant}, {"backend_dir", s.backend_dir},
          {"batch_layout", "prompt in one batch (logits at every position), then one token per "
                           "llama_decode"}};
}

Result<ReferenceSettings> parse_settings(const json& j) {
  ReferenceSettings s;
  try {
    s.n_threads = j.value("n_threads", 1);
    s.n_ctx = j.value("n_ctx", 0);
    s.n_batch = j.value("n_batch", 0);
    s.kv_f16 = j.value("kv_type", std::string("f16")) == "f16";
    s.flash_attn = j.value("flash_attn", false);
    s.cpu_variant = j.value("cpu_variant", std::string());
    s.backend_dir = j.value("backend_dir", std::string());
    s.verbose = j.value("verbose", false);
  } catch (const std::exception& e) {
    return make_error("bad settings in the request: %s", e.what());
  }
  return s;
}

// Tensors of one case, keyed by (position, layer, op); later observations replace earlier ones.
struct Collected {
  std::vector<int64_t> shape;
  std::vector<float> values;
};
using Key = std::tuple<int, int, int>;  // position, group/layer order, op

Key forward_key(int position, int layer, trace::Op op) {
  // embeddings first, blocks in order, then final_norm / logits.
  int group = layer;
  if (op == trace::Op::kEmbeddings) group = -1;
  if (op == trace::Op::kFinalNorm || op == trace::Op::kLogits) group = 1 << 20;
  return {position, group, static_cast<int>(op)};
}

Status run_case(LlamaReference& ref, const json& c, bool trace_on, const fs::path& out_dir,
                ordered_json* out) {
  const std::string id = c.at("id").get<std::string>();
  const std::string text = c.value("text", std::string());
  std::vector<int32_t> tokens = c.value("tokens", std::vector<int32_t>{});
  const int n_gen = c.value("n_gen", 0);
  ordered_json r;
  r["id"] = id;
  if (c.contains("text")) {
    BITNET_ASSIGN_OR_RETURN(auto ref_tokens, ref.tokenize(text, true, false));
    r["reference_tokens"] = ref_tokens;
    if (tokens.empty()) tokens = ref_tokens;
  }
  if (tokens.empty()) return make_error("case %s: no tokens to evaluate", id.c_str());
  const fs::path case_dir = out_dir / id;
  std::error_code ec;
  fs::create_directories(case_dir, ec);
  if (ec) return make_error("%s: %s", case_dir.c_str(), ec.message().c_str());

  std::map<Key, std::pair<std::pair<int, trace::Op>, Collected>> seen;
  int batch_pos = 0, batch_n = 0;
  std::string layout_error;
  if (trace_on) {
    ref.set_batch_observer([&](int32_t pos0, int32_t n) {
      batch_pos = pos0;
      batch_n = n;
    });
    ref.set_node_observer(
        [](const std::string& name) { return crossval::ref_name_wanted(name); },
        [&](const ObservedTensor& t) {
          const auto op = crossval::map_ref_node(t.name, t.op);
          if (!op) return;
          const int layer = crossval::split_ref_name(t.name).layer;
          auto rows = crossval::split_positions(*op, t.shape, t.data, batch_pos, batch_n);
          if (rows.empty() && layout_error.empty()) {
            layout_error = t.name + " (" + t.op + ") has an unexpected shape";
          }
          for (auto& pv : rows) {
            auto& slot = seen[forward_key(pv.position, layer, *op)];
            slot.first = {layer, *op};
            slot.second.shape = std::move(pv.shape);
            slot.second.values = std::move(pv.values);
          }
        });
  } else {
    ref.set_node_observer({}, {});
    ref.set_batch_observer({});
  }

  std::vector<float> logits;
  std::vector<int32_t> generated;
  if (n_gen > 0) {
    BITNET_ASSIGN_OR_RETURN(generated, ref.greedy(tokens, n_gen, &logits));
  } else {
    BITNET_ASSIGN_OR_RETURN(logits, ref.eval_logits(tokens));
  }
  ref.set_node_observer({}, {});
  ref.set_batch_observer({});
  const int64_t nv = ref.n_vocab();
  const int64_t rows = static_cast<int64_t>(logits.size()) / nv;
  const int64_t shape[2] = {rows, nv};
  BITNET_TRY(write_npy_f32((case_dir / "logits.npy").string(), logits, shape));
  r["tokens"] = tokens;
  r["generated"] = generated;
  r["logits"] = id + "/logits.npy";
  r["logits_rows"] = rows;
  r["n_vocab"] = nv;

  if (trace_on) {
    trace::WriterOptions wo;
    wo.dir = (case_dir / "trace").string();
    wo.values = trace::ValuesFormat::kNpy;
    BITNET_ASSIGN_OR_RETURN(auto writer, trace::Writer::open(wo));
    for (auto& [key, entry] : seen) {
      const auto& [layer_op, col] = entry;
      const int pos = std::get<0>(key);
      trace::Record rec = trace::make_record(pos, layer_op.first, layer_op.second, col.shape, col.values);
      BITNET_TRY(writer->add(std::move(rec), col.values));
    }
    std::vector<int32_t> evaluated = tokens;
    if (n_gen > 1) evaluated.insert(evaluated.end(), generated.begin(), generated.end() - 1);
    ordered_json meta;
    meta["engine"] = "llama.cpp";
    meta["reference"] = ref.description();
    meta["backend"] = backend_json(ref.backend());
    meta["settings"] = settings_json(ref.settings());
    meta["token_ids"] = evaluated;
    meta["n_prompt"] = tokens.size();
    meta["name_map"] = "crossval/ref_names.h";
    if (!layout_error.empty()) meta["layout_warning"] = layout_error;
    BITNET_TRY(writer->finish(meta));
    r["trace"] = id + "/trace";
    r["trace_records"] = seen.size();
    if (!layout_error.empty()) r["layout_warning"] = layout_error;
  }
  *out = std::move(r);
  return {};
}

Status run_request(const std::string& request_path, const std::string& out) {
  std::ifstream in(request_path);
  if (!in) return make_error("%s: cannot open the request", request_path.c_str());
  json req;
  try {
    req = json::parse(in);
  } catch (const std::exception& e) {
    return make_error("%s: not JSON: %s", request_path.c_str(), e.what());
  }
  if (!req.contains("model") || !req.contains("cases")) {
    return make_error("%s: the request needs \"model\" and \"cases\"", request_path.c_str());
  }
  BITNET_ASSIGN_OR_RETURN(ReferenceSettings s, parse_settings(req.value("settings", json::object())));
  const std::string model = req.at("model").get<std::string>();
  // Trees without CPU backend plugins (llama.cpp before 2024-11, bitnet.cpp) have one built-in
  // CPU backend: a requested variant cannot be chosen there; run the built-in one and say so.
  std::string variant_note;
  if (!s.cpu_variant.empty() && !init_backends(s).ok()) {
    ReferenceSettings builtin = s;
    builtin.cpu_variant.clear();
    auto b = init_backends(builtin);
    if (b.ok() && b->cpu_variant == "builtin") {
      variant_note = "cpu_variant '" + s.cpu_variant + "' requested, but this tree has no CPU "
                     "backend plugins: its built-in CPU backend ran";
      s.cpu_variant.clear();
    }
  }
  BITNET_ASSIGN_OR_RETURN(auto ref, LlamaReference::load(model, s));
  const bool trace_on = req.value("trace", true);
  ordered_json resp;
  resp["backend"] = backend_json(ref->backend());
  resp["settings"] = settings_json(ref->settings());
  if (!variant_note.empty()) resp["settings"]["cpu_variant_note"] = variant_note;
  resp["description"] = ref->description();
  resp["model"] = model;
  resp["n_vocab"] = ref->n_vocab();
  resp["cases"] = ordered_json::array();
  try {
    for (const json& c : req.at("cases")) {
      ordered_json r;
      BITNET_TRY(run_case(*ref, c, trace_on, out, &r));
      resp["cases"].push_back(std::move(r));
    }
  } catch (const std::exception& e) {
    return make_error("%s: bad case: %s", request_path.c_str(), e.what());
  }
  std::ofstream f(fs::path(out) / "response.json");
  f << resp.dump(2) << "\n";
  if (!f) return make_error("%s: cannot write response.json", out.c_str());
  return {};
}

int error(const std::string& msg) {
  std::fprintf(stderr, "bitnet-reference: error: %s\n", msg.c_str());
  return 2;
}

}  // namespace
}  // namespace bitnet::reference

int main(int argc, char** argv) {
  using namespace bitnet::reference;
  std::string request, out, variant;
  bool info = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&](std::string* v) {
      if (i + 1 >= argc) return false;
      *v = argv[++i];
      return true;
    };
    if (a == "--request") {
      if (!next(&request)) return error("--request needs a file");
    } else if (a == "--out") {
      if (!next(&out)) return error("--out needs a folder");
    } else if (a == "--cpu-variant") {
      if (!next(&variant)) return error("--cpu-variant needs a name");
    } else if (a == "--info") {
      info = true;
    } else if (a == "--tree") {
      // The llama.cpp tree this helper was built against (no library is initialised).
      std::printf("%s\n", BITNET_REFERENCE_TREE);
      return 0;
    } else if (a == "--help" || a == "-h") {
      std::printf("usage: bitnet-reference --request REQ.json --out DIR | --info [--cpu-variant V]\n");
      return 0;
    } else {
      return error("unknown argument '" + a + "'");
    }
  }
  try {
    if (info) {
      ReferenceSettings s;
      s.cpu_variant = variant;
      auto b = init_backends(s);
      if (!b.ok()) return error(b.message());
      std::printf("%s\n", backend_json(*b).dump(2).c_str());
      return 0;
    }
    if (request.empty() || out.empty()) return error("usage: bitnet-reference --request REQ.json --out DIR");
    std::error_code ec;
    fs::create_directories(out, ec);
    if (ec) return error(out + ": " + ec.message());
    auto st = run_request(request, out);
    if (!st.ok()) return error(st.message());
    return 0;
  } catch (const std::exception& e) {
    return error(std::string("unexpected: ") + e.what());
  }
}
