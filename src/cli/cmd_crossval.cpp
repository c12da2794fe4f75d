// bitnet crossval / sweep / receipt verify: cross-validation against a reference engine
// (src/crossval). Exit codes: 0 pass, 1 divergence (or a receipt that fails verification),
// 2 error (bad flags, missing files, a reference that cannot run).
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "cli/command.h"
#include "cli/model_flags.h"
#include "crossval/crossval.h"
#include "crossval/multi.h"
#include "crossval/receipt.h"
#include "crossval/report.h"

namespace bitnet::cli {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;

constexpr int kExitDivergence = 1;
constexpr int kExitError = 2;

int error(const std::string& msg) {
  std::fprintf(stderr, "bitnet: error: %s\n", msg.c_str());
  return kExitError;
}

std::string shell_quote(const std::string& s) {
  std::string o = "'";
  for (char c : s) {
    if (c == '\'')
      o += "'\\''";
    else
      o += c;
  }
  return o + "'";
}

// Where helpers built for other llama.cpp trees are kept: $BITNET_CACHE_DIR, else
// $XDG_CACHE_HOME/bitnet, else ~/.cache/bitnet; "" (the library's folder in the temporary
// directory) when none of them is set.
std::string helper_cache_dir() {
  if (std::string c = env_var("BITNET_CACHE_DIR"); !c.empty()) return c;
  if (std::string x = env_var("XDG_CACHE_HOME"); !x.empty())
    return (fs::path(x) / "bitnet").string();
  if (std::string h = env_var("HOME"); !h.empty()) {
    return (fs::path(h) / ".cache" / "bitnet").string();
  }
  return "";
}

// Flags shared by crossval and sweep.
struct XvalFlags {
  std::string model;
  std::string reference_dir;
  std::string reference_helper;
  std::string cpu_variant = "x64";
  int threads = 0;
  int ref_threads = 0;
  std::string kv_type = "f16";
  std::string head_type = "file";
  std::string kernels;
  std::string json_path;
  std::string sign_key;
  std::string report;
  std::string trace_dir;
  std::string work_dir;
  bool no_ops = false;
  bool quiet = false;
  std::string regime = "auto";
  std::vector<std::string> tol;
  std::vector<std::string> references;
  std::string explain;

  void add_to(CLI::App* app, const std::string& default_json) {
    json_path = default_json;
    app->add_option("-m,--model", model, "GGUF model file")->required();
    app->add_option("--reference-dir", reference_dir,
                    "Another llama.cpp / bitnet.cpp tree (llama.h + shared libs) as the reference "
                    "(also BITNET_CPP_DIR); a helper is built for it once")
        ->envname("BITNET_CPP_DIR");
    app->add_option("--reference-helper", reference_helper,
                    "A prebuilt bitnet-reference helper to run (also BITNET_REFERENCE_HELPER)");
    app->add_option("--reference", references,
                    "A reference to compare with (repeatable): a CPU variant of the pinned "
                    "llama.cpp (x64, best, haswell, ...); --reference-dir adds its tree as one "
                    "more. With several, each is judged on its own, the report has a column per "
                    "reference, and each case says whether a difference lies with us (every "
                    "reference shows it) or with the references that show it");
    app->add_option("--cpu-variant", cpu_variant,
                    "Reference CPU backend variant: x64 (portable, bit-exact with ours), haswell, "
                    "zen4, ... or 'best'")
        ->capture_default_str();
    app->add_option("-t,--threads", threads, "Threads for our engine (default: min(4, cores))");
    app->add_option("--ref-threads", ref_threads, "Threads for the reference (default: --threads)");
    app->add_option("--kv-type", kv_type, "KV cache type on both sides: f16 | f32")
        ->capture_default_str();
    app->add_option(
           "--head-type", head_type,
           "Our LM head: file (exact) | fast (float sums) | q8_0 (the reference keeps its exact "
           "F16 head, so the logits metrics measure what fast or q8_0 costs: KL, top-1, cosine)")
        ->capture_default_str();
    app->add_option(
        "--kernels", kernels,
        "Force our kernel variant: " + kernels::variant_names() + " (also BITNET_KERNELS)");
    app->add_option("--json", json_path, "Receipt (JSON) to write")->capture_default_str();
    app->add_option("--sign", sign_key,
                    "Sign the receipt with this Ed25519 private key (PEM, from openssl genpkey "
                    "-algorithm ed25519 -out KEY.pem); check it with bitnet receipt verify R "
                    "--key PUB.pem");
    app->add_option("--report", report,
                    "Report to write: .md (Markdown) or .html (with the divergence chart)");
    app->add_option(
        "--trace-dir", trace_dir,
        "Keep both traces: DIR/<case>/ours and DIR/<case>/reference (for bitnet trace-diff)");
    app->add_option("--work-dir", work_dir, "Keep the reference's raw files here");
    app->add_flag("--no-ops", no_ops, "Compare logits only (no per-op tracing)");
    app->add_option("--regime", regime,
                    "Verdict: exact (any differing bit fails) | tolerance (the --tol thresholds) | "
                    "auto (exact against the pinned llama.cpp's x64 variant with our exact head, "
                    "else tolerance)")
        ->capture_default_str();
    app->add_option(
        "--tol", tol,
        "Override a tolerance, e.g. op.proj.max_rel=1e-3, logits.min_cosine=0.9999, "
        "logits.max_kl=1e-4, logits.top1=0, flip.max_codes=16, flip.allow=0 (repeatable)");
    app->add_option("--explain", explain,
                    "Print the replay of one op in detail: POS/LAYER/OP (e.g. 3/1/attn_out) or "
                    "POS/OP for embeddings, final_norm, logits");
    app->add_flag("-q,--quiet", quiet, "Only the verdict line on stdout");
  }

  // The --sign key, read before the run so that a bad key stops it at once; nullopt without
  // --sign.
  Result<std::optional<crossval::SigningKey>> signing_key() const {
    if (sign_key.empty()) return std::optional<crossval::SigningKey>();
    auto k = crossval::SigningKey::from_pem_file(sign_key);
    if (!k.ok()) return make_error("--sign %s", k.message().c_str());
    return std::optional<crossval::SigningKey>(std::move(*k));
  }

  Result<crossval::Options> options() const {
    crossval::Options o;
    o.model = model;
    const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    if (threads < 0 || ref_threads < 0) return make_error("--threads must not be negative");
    o.n_threads = threads > 0 ? threads : std::min(4, hw);
    o.kv_type = kv_type;
    o.head_type = head_type;
    BITNET_ASSIGN_OR_RETURN(o.kernels, kernels_from_flag_or_env(kernels));
    o.hugepages = env_var("BITNET_HUGEPAGES") == "1";
    o.reference.helper =
        !reference_helper.empty() ? reference_helper : env_var("BITNET_REFERENCE_HELPER");
    o.reference.cache_dir = helper_cache_dir();
    o.reference.reference_dir = reference_dir;
    o.reference.cpu_variant = cpu_variant == "best" ? "" : cpu_variant;
    o.reference.n_threads = ref_threads > 0 ? ref_threads : o.n_threads;
    o.reference.kv_type = kv_type;
    o.trace_ops = !no_ops;
    o.trace_dir = trace_dir;
    o.work_dir = work_dir;
    for (const auto& t : tol) BITNET_TRY(o.tol.set(t));
    o.tol_overridden = !tol.empty();
    o.regime = regime;
    o.explain = explain;
    if (!explain.empty()) {
      if (auto e = crossval::parse_explain(explain); !e.ok())
        return make_error("%s", e.message().c_str());
    }
    if (!explain.empty() && no_ops) return make_error("--explain needs the per-op comparison");
    if (references.empty()) BITNET_TRY(crossval::judged_by(o));  // else checked per reference
    std::error_code ec;
    if (!fs::is_regular_file(model, ec)) return make_error("%s: no such model file", model.c_str());
    return o;
  }

  // The references of a run with --reference: (label, options) each, from `base` (options()
  // with the cases set). Empty without --reference.
  Result<std::vector<std::pair<std::string, crossval::Options>>> reference_list(
      const crossval::Options& base) const {
    std::vector<std::pair<std::string, crossval::Options>> list;
    if (references.empty()) return list;
    if (cpu_variant != "x64")
      return make_error(
          "--cpu-variant does not combine with --reference: name each variant "
          "with --reference");
    auto add = [&](const std::string& label, crossval::Options o) -> Status {
      std::string dir_name = label;
      for (char& c : dir_name) {
        if (c == '/' || c == ':') c = '_';
      }
      if (!o.trace_dir.empty()) o.trace_dir = (fs::path(o.trace_dir) / dir_name).string();
      if (!o.work_dir.empty()) o.work_dir = (fs::path(o.work_dir) / dir_name).string();
      if (auto t = crossval::judged_by(o); !t.ok())
        return make_error("reference %s: %s", label.c_str(), t.message().c_str());
      for (const auto& [l, other] : list) {
        if (l == label) return make_error("reference %s is named twice", label.c_str());
      }
      list.emplace_back(label, std::move(o));
      return {};
    };
    for (const std::string& v : references) {
      crossval::Options o = base;
      o.reference.reference_dir.clear();
      o.reference.cpu_variant = v == "best" ? "" : v;
      BITNET_TRY(add(v, std::move(o)));
    }
    if (!reference_dir.empty()) BITNET_TRY(add("dir:" + reference_dir, base));
    return list;
  }

  // The flags of a replay command (everything but the cases).
  std::string replay_flags() const {
    std::error_code ec;
    std::string s = " --model " + shell_quote(fs::absolute(model, ec).string()) +
                    (references.empty() ? " --cpu-variant " + cpu_variant : std::string());
    for (const auto& v : references) s += " --reference " + v;
    if (!reference_dir.empty()) s += " --reference-dir " + shell_quote(reference_dir);
    if (!reference_helper.empty()) s += " --reference-helper " + shell_quote(reference_helper);
    if (threads > 0) s += " --threads " + std::to_string(threads);
    if (ref_threads > 0) s += " --ref-threads " + std::to_string(ref_threads);
    if (kv_type != "f16") s += " --kv-type " + kv_type;
    if (head_type != "file") s += " --head-type " + head_type;
    if (!kernels.empty()) s += " --kernels " + kernels;
    if (no_ops) s += " --no-ops";
    if (regime != "auto") s += " --regime " + regime;
    for (const auto& t : tol) s += " --tol " + t;
    return s;
  }
};

Status write_outputs(const XvalFlags& f, const ordered_json& receipt) {
  BITNET_TRY(crossval::write_json_file(f.json_path, receipt));
  if (!f.report.empty()) {
    const std::string ext = fs::path(f.report).extension().string();
    const std::string text = (ext == ".html" || ext == ".htm")
                                 ? crossval::html_report(json(receipt))
                                 : crossval::markdown_report(json(receipt));
    std::ofstream out(f.report);
    out << text;
    out.close();
    if (!out) return make_error("%s: cannot write", f.report.c_str());
  }
  return {};
}

// Writes the receipt (and report) of a run against one reference, or against several: then the
// receipt is the first reference's with the "multi_reference" block (receipt.h) added.
int finish(const XvalFlags& f, const std::vector<crossval::ReferenceRun>& runs,
           const std::string& kind, const std::string& replay,
           const std::optional<crossval::SigningKey>& key) {
  const crossval::RunResult& run = runs.front().run;
  crossval::ReceiptContext ctx;
  ctx.kind = kind;
  ctx.replay = replay;
  ctx.tol = run.tol;
  ordered_json receipt = crossval::make_receipt(run, ctx);
  if (runs.size() > 1) receipt["multi_reference"] = crossval::references_json(runs);
  const bool passed = crossval::all_passed(runs);
  for (const auto& r : runs) {
    for (const auto& c : r.run.cases) {
      if (c.explanation.empty()) continue;
      std::printf("%s%s %s", runs.size() > 1 ? (r.label + ": ").c_str() : "", c.id.c_str(),
                  c.explanation.c_str());
    }
  }
  // Signed first, then sealed: both cover the receipt without either block (receipt.h).
  if (key) {
    if (auto st = crossval::sign_receipt(&receipt, *key); !st.ok()) return error(st.message());
  }
  crossval::seal_receipt(&receipt);
  if (auto st = write_outputs(f, receipt); !st.ok()) return error(st.message());
  if (!f.quiet) {
    std::printf("%s", crossval::markdown_report(json(receipt)).c_str());
  } else {
    for (const auto& r : runs) {
      const std::string prefix = runs.size() > 1 ? r.label + " " : "";
      for (const auto& c : r.run.cases)
        std::printf("%s%s: %s\n", prefix.c_str(), c.id.c_str(), c.verdict.c_str());
    }
    if (runs.size() > 1) {
      for (size_t i = 0; i < run.cases.size(); ++i)
        std::printf("%s: %s\n", run.cases[i].id.c_str(), crossval::attribute(runs, i).c_str());
    }
  }
  const std::string signed_by =
      key ? " (signed by key " + crossval::key_fingerprint(key->public_key()) + ")" : "";
  std::fprintf(stderr, "bitnet: %s %s; receipt: %s%s%s%s\n", kind.c_str(),
               passed ? "passed" : "FAILED", f.json_path.c_str(), signed_by.c_str(),
               f.report.empty() ? "" : "; report: ", f.report.c_str());
  return passed ? kExitOk : kExitDivergence;
}

// Runs the cases in `o` against the reference of the flags, or each of their --reference.
Result<std::vector<crossval::ReferenceRun>> run_all(const XvalFlags& f,
                                                    const crossval::Options& o) {
  BITNET_ASSIGN_OR_RETURN(auto list, f.reference_list(o));
  if (list.empty()) {
    BITNET_ASSIGN_OR_RETURN(crossval::RunResult run, crossval::run_crossval(o));
    std::vector<crossval::ReferenceRun> runs;
    runs.push_back(
        {o.reference.cpu_variant.empty() ? "best" : o.reference.cpu_variant, std::move(run)});
    return runs;
  }
  return crossval::run_references(list);
}

// Sweep prompt files: JSON [{"prompt": "...", "max_tokens": N}, ...] or text, one prompt per
// line ("N<TAB>prompt" sets max tokens; '#' lines are comments).
Result<std::vector<crossval::Case>> read_prompts(const std::string& path, int default_max) {
  std::ifstream in(path);
  if (!in) return make_error("%s: cannot open the prompt file", path.c_str());
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  std::vector<crossval::Case> cases;
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '[') {
    try {
      for (const json& j : json::parse(text)) {
        cases.push_back({j.at("prompt").get<std::string>(), j.value("max_tokens", default_max)});
      }
    } catch (const std::exception& e) {
      return make_error("%s: %s", path.c_str(), e.what());
    }
  } else {
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty() || line[0] == '#') continue;
      crossval::Case c{line, default_max};
      const size_t tab = line.find('\t');
      if (tab != std::string::npos && tab > 0 && line.find_first_not_of("0123456789") == tab) {
        c.max_tokens = std::atoi(line.substr(0, tab).c_str());
        c.prompt = line.substr(tab + 1);
      }
      cases.push_back(c);
    }
  }
  if (cases.empty()) return make_error("%s: no prompts", path.c_str());
  return cases;
}

// bitnet receipt verify FILE [--check-model] [--key PUB.pem].
int verify_command(const std::string& file, bool check_model, const std::string& key_file) {
  crossval::VerifyOptions options;
  options.check_files = check_model;
  if (!key_file.empty()) {
    auto k = crossval::read_public_key_pem(key_file);
    if (!k.ok()) return error("--key " + k.message());
    options.expected_key = *k;
  }
  std::ifstream in(file);
  if (!in) return error(file + ": cannot open");
  json r;
  try {
    r = json::parse(in);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bitnet: receipt %s: INVALID: not JSON (%s)\n", file.c_str(), e.what());
    return kExitDivergence;
  }
  const auto v = crossval::verify_receipt(r, options);
  for (const auto& n : v.notes) std::fprintf(stderr, "bitnet: note: %s\n", n.c_str());
  if (!v.ok) {
    for (const auto& p : v.problems)
      std::fprintf(stderr, "bitnet: receipt %s: %s\n", file.c_str(), p.c_str());
    std::printf("INVALID %s (%zu problem%s)\n", file.c_str(), v.problems.size(),
                v.problems.size() == 1 ? "" : "s");
    return kExitDivergence;
  }
  std::printf("OK %s (%s, %s, passed=%s)\n", file.c_str(), r.value("kind", std::string()).c_str(),
              r.value("created_at", std::string()).c_str(),
              r["summary"].value("passed", false) ? "true" : "false");
  if (v.signer_checked) {
    std::printf("signed by key %s, the key given with --key\n", v.signed_by.c_str());
  } else if (!v.signed_by.empty()) {
    std::printf(
        "signed by key %s, the key inside the receipt: this proves integrity only, not who "
        "signed it (check the signer with --key PUB.pem)\n",
        v.signed_by.c_str());
  } else {
    std::printf("unsigned: its SHA-256 checksum detects accidental edits, not forgery\n");
  }
  return kExitOk;
}

}  // namespace

std::vector<Command> register_crossval(CLI::App& app) {
  std::vector<Command> cmds;

  // crossval
  {
    auto* sub = app.add_subcommand(
        "crossval", "Compare our logits and intermediate tensors with a reference llama.cpp");
    auto f = std::make_shared<XvalFlags>();
    auto prompt = std::make_shared<std::string>();
    auto max_tokens = std::make_shared<int>(4);
    f->add_to(sub, "crossval-receipt.json");
    sub->add_option("-p,--prompt", *prompt, "Prompt text")->required();
    sub->add_option("-n,--max-tokens", *max_tokens, "Greedy tokens to compare")
        ->capture_default_str();
    cmds.push_back({sub, [f, prompt, max_tokens]() {
                      auto o = f->options();
                      if (!o.ok()) return error(o.message());
                      auto key = f->signing_key();
                      if (!key.ok()) return error(key.message());
                      o->cases = {{*prompt, *max_tokens}};
                      auto run = run_all(*f, *o);
                      if (!run.ok()) return error(run.message());
                      const std::string replay = "bitnet crossval" + f->replay_flags() +
                                                 " --prompt " + shell_quote(*prompt) +
                                                 " --max-tokens " + std::to_string(*max_tokens);
                      return finish(*f, *run, "crossval", replay, *key);
                    }});
  }

  // sweep
  {
    auto* sub = app.add_subcommand(
        "sweep", "Run crossval over a prompt suite (deterministic settings) and aggregate");
    auto f = std::make_shared<XvalFlags>();
    auto prompts = std::make_shared<std::string>();
    auto max_tokens = std::make_shared<int>(4);
    f->add_to(sub, "sweep-receipt.json");
    sub->add_option("--prompts", *prompts,
                    "Prompt suite: JSON [{prompt, max_tokens}] or text lines ('N<TAB>prompt'); "
                    "default: built-in suite");
    sub->add_option("-n,--max-tokens", *max_tokens, "Greedy tokens for prompts that do not say")
        ->capture_default_str();
    cmds.push_back({sub, [f, prompts, max_tokens]() {
                      auto o = f->options();
                      if (!o.ok()) return error(o.message());
                      auto key = f->signing_key();
                      if (!key.ok()) return error(key.message());
                      if (f->kv_type != "f16")
                        return error(
                            "sweep enforces deterministic settings: --kv-type must be f16");
                      if (prompts->empty()) {
                        o->cases = crossval::default_sweep_cases();
                      } else {
                        auto cases = read_prompts(*prompts, *max_tokens);
                        if (!cases.ok()) return error(cases.message());
                        o->cases = *cases;
                      }
                      auto run = run_all(*f, *o);
                      if (!run.ok()) return error(run.message());
                      std::string replay = "bitnet sweep" + f->replay_flags();
                      if (!prompts->empty()) {
                        std::error_code ec;
                        replay += " --prompts " + shell_quote(fs::absolute(*prompts, ec).string()) +
                                  " --max-tokens " + std::to_string(*max_tokens);
                      }
                      return finish(*f, *run, "sweep", replay, *key);
                    }});
  }

  // receipt verify
  {
    auto* sub = app.add_subcommand("receipt", "Receipts of crossval / sweep runs");
    sub->require_subcommand(1);
    auto* verify = sub->add_subcommand(
        "verify",
        "Check a receipt: schema, consistency, its SHA-256 checksum and, when it is signed, its "
        "Ed25519 signature. The checksum detects accidental or careless edits, not forgery: "
        "anyone can recompute it. A signature checked against the key inside the receipt shows "
        "only that the receipt is unchanged since it was signed; --key PUB.pem shows who signed "
        "it.");
    auto file = std::make_shared<std::string>();
    auto check_model = std::make_shared<bool>(false);
    auto key_file = std::make_shared<std::string>();
    verify->add_option("file", *file, "Receipt JSON")->required();
    verify->add_flag("--check-model", *check_model, "Also re-hash the model file when it exists");
    verify->add_option("--key", *key_file,
                       "The signer's Ed25519 public key (PEM, from openssl pkey -in KEY.pem "
                       "-pubout): the receipt must carry a valid signature by this key");
    cmds.push_back({sub, [file, check_model, key_file]() {
                      return verify_command(*file, *check_model, *key_file);
                    }});
  }
  return cmds;
}

}  // namespace bitnet::cli
