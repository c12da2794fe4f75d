// `bitnet crossval`, `bitnet sweep`, `bitnet receipt verify` end to end against the pinned
// llama.cpp (x64 CPU variant: our logits must be bit-identical), on synthetic `bitnet`-arch
// TQ2_0 models: tiny, and the 2b4t shape with 4 layers (written once for this binary); and a
// tiny `llama`-arch one. Also:
// fault injection (a test observer scaling one op's output, run through the crossval library in
// this process) must be found at the right (position, layer, op), the
// two traces must diff cleanly with `bitnet trace-diff`, the older-API llama.cpp (b3995) must
// run through its own helper, and the HTML report must render (headless Chromium, when
// installed).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "crossval/crossval.h"
#include "crossval/multi.h"
#include "crossval/receipt.h"
#include "perturb_observer.h"
#include "synth/synth.h"
#include "test_keys.h"
#include "test_util.h"

namespace bitnet::crossval {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class CrossvalE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    tiny_ = write_model("tiny", 0, "tiny.gguf");
  }
  // The 2b4t-shape model (~700 MB) is written on first use only: ctest runs each test in its
  // own process, and only one test needs it.
  static const std::string& big() {
    if (big_.empty()) big_ = write_model("2b4t", 4, "2b4t-4l.gguf");
    return big_;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string write_model(const std::string& preset, int layers, const std::string& name,
                                 model::Arch arch = model::Arch::kBitnet) {
    synth::SynthOptions o;
    o.config = *synth::preset_config(preset, arch);
    if (layers > 0) o.config.n_layers = static_cast<uint32_t>(layers);
    o.weight_type = gguf::TensorType::TQ2_0;
    o.vocab_path = std::string(BITNET_REFERENCE_DIR) + "/models/ggml-vocab-llama-bpe.gguf";
    o.seed = 11;
    const std::string path = dir_->path(name);
    auto st = synth::write_synthetic_model(o, path);
    EXPECT_TRUE(st.ok()) << st.message();
    return path;
  }
  static json read_json(const std::string& path) {
    std::ifstream f(path);
    return json::parse(f);
  }
  // Runs bitnet with arguments (and an optional environment prefix).
  static test::CommandResult bitnet(const std::string& args, const std::string& env = "") {
    return test::run_command(env + " " + test::bitnet_binary() + " " + args);
  }

  static test::TempDir* dir_;
  static std::string tiny_, big_;
};
test::TempDir* CrossvalE2E::dir_ = nullptr;
std::string CrossvalE2E::tiny_, CrossvalE2E::big_;

void expect_clean_pass(const json& r) {
  EXPECT_TRUE(r["summary"]["passed"].get<bool>());
  EXPECT_TRUE(r["summary"]["first_divergence"].is_null());
  EXPECT_EQ(r["reference"]["cpu_variant"], "x64");
  for (const json& c : r["cases"]) {
    EXPECT_TRUE(c["token_ids"]["match"].get<bool>()) << c["prompt"];
    EXPECT_TRUE(c["generated"]["parts_at"].is_null()) << c["prompt"];
    EXPECT_EQ(c["generated"]["ours_greedy"], c["generated"]["reference"]);
    EXPECT_EQ(c["ops"]["identical"], c["ops"]["compared"]) << c["prompt"];
    EXPECT_GT(c["ops"]["compared"].get<int>(), 0);
    for (const json& p : c["positions"]) {
      EXPECT_TRUE(p["top1_match"].get<bool>()) << c["prompt"] << " position " << p["position"];
      EXPECT_EQ(p["max_abs"].get<double>(), 0.0) << "x64 reference: logits must be bit-identical";
    }
  }
}

// --head-type q8_0: the reference keeps its F16 head, so the logits metrics measure the Q8_0
// head's cost (KL above zero but small, top-1 kept on this model); everything before the head
// stays bit-identical, and the report says which head ran.
TEST_F(CrossvalE2E, Q8_0HeadCostIsReportedAsKl) {
  const std::string receipt = dir_->path("q8.json"), md = dir_->path("q8.md");
  auto r = bitnet("crossval -m " + tiny_ +
                  " -p 'Hello world' -n 3 --threads 2 --head-type q8_0 --json " + receipt +
                  " --report " + md);
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  const json j = read_json(receipt);
  EXPECT_EQ(j["settings"]["ours"]["head_type"], "q8_0");
  double max_kl = 0;
  for (const json& p : j["positions"]) {
    max_kl = std::max(max_kl, p["kl"].get<double>());
    EXPECT_GT(p["max_abs"].get<double>(), 0.0) << "a Q8_0 head cannot give the F16 head's logits";
  }
  EXPECT_GT(max_kl, 0.0);
  EXPECT_LT(max_kl, 1e-2);
  for (const json& c : j["cases"])
    EXPECT_EQ(c["ops"]["identical"].get<int>() + static_cast<int>(c["positions"].size()),
              c["ops"]["compared"].get<int>());
  std::ifstream f(md);
  const std::string text((std::istreambuf_iterator<char>(f)), {});
  EXPECT_NE(text.find("q8_0 LM head"), std::string::npos);
}

// --head-type fast: same F16 weights summed in float blocks, so against the reference's exact
// head the logits differ by float rounding only (KL tiny, top-1 kept), everything before the
// head is bit-identical, and the report says which head ran.
TEST_F(CrossvalE2E, FastHeadCostIsReported) {
  const std::string receipt = dir_->path("fast.json"), md = dir_->path("fast.md");
  auto r = bitnet("crossval -m " + tiny_ +
                  " -p 'Hello world' -n 3 --threads 2 --head-type fast --json " + receipt +
                  " --report " + md);
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  const json j = read_json(receipt);
  EXPECT_EQ(j["settings"]["ours"]["head_type"], "fast");
  double max_abs = 0, max_kl = 0;
  for (const json& p : j["positions"]) {
    max_abs = std::max(max_abs, p["max_abs"].get<double>());
    max_kl = std::max(max_kl, p["kl"].get<double>());
    EXPECT_TRUE(p["top1_match"].get<bool>()) << p["position"];
  }
  EXPECT_GT(max_abs, 0.0) << "float block sums are not the exact head's double sums";
  EXPECT_LT(max_abs, 1e-4);
  EXPECT_LT(max_kl, 1e-8);
  for (const json& c : j["cases"])
    EXPECT_EQ(c["ops"]["identical"].get<int>() + static_cast<int>(c["positions"].size()),
              c["ops"]["compared"].get<int>());
  std::ifstream f(md);
  const std::string text((std::istreambuf_iterator<char>(f)), {});
  EXPECT_NE(text.find("fast LM head"), std::string::npos);
}

TEST_F(CrossvalE2E, TinyPassesWithReceiptReportAndTraces) {
  const std::string receipt = dir_->path("tiny.json"), html = dir_->path("tiny.html"),
                    md = dir_->path("tiny.md"), traces = dir_->path("traces");
  auto r = bitnet("crossval -m " + tiny_ + " -p 'Hello world' -n 4 --threads 2 --json " + receipt +
                  " --report " + html + " --trace-dir " + traces);
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  const json j = read_json(receipt);
  expect_clean_pass(j);
  ASSERT_EQ(j["positions"].size(), 3u + 3u);  // BOS + 2 prompt tokens, 3 decode steps
  for (const char* k : {"position", "cosine", "l2", "max_abs", "kl", "top1_match"}) {
    EXPECT_TRUE(j["positions"][0].contains(k)) << k;
  }
  EXPECT_EQ(j["model"]["sha256"].get<std::string>().size(), 64u);
  EXPECT_NE(j["replay"].get<std::string>().find("bitnet crossval"), std::string::npos);

  // Receipt: verifies; an edited copy does not.
  auto v = bitnet("receipt verify --check-model " + receipt);
  EXPECT_EQ(v.exit_code, 0) << v.err;
  std::string text;
  {
    std::ifstream f(receipt);
    text.assign(std::istreambuf_iterator<char>(f), {});
  }
  const size_t at = text.find("\"passed\": true");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 14, "\"passed\": false");
  const std::string bad = dir_->path("tiny-corrupt.json");
  std::ofstream(bad) << text;
  v = bitnet("receipt verify " + bad);
  EXPECT_EQ(v.exit_code, 1);
  EXPECT_NE(v.err.find("integrity digest mismatch"), std::string::npos) << v.err;

  // The reference trace is in our format: trace-diff across engines is clean.
  auto d = bitnet("trace-diff " + traces + "/c0/ours " + traces + "/c0/reference");
  EXPECT_EQ(d.exit_code, 0) << d.out << d.err;
  EXPECT_NE(d.out.find("within tolerance"), std::string::npos) << d.out;

  // Markdown report from a second run (same result).
  r = bitnet("crossval -m " + tiny_ + " -p 'Count: ' -n 4 -q --json " + dir_->path("t2.json") +
             " --report " + md);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::ifstream mf(md);
  std::string mdtext((std::istreambuf_iterator<char>(mf)), {});
  EXPECT_NE(mdtext.find("# bitnet crossval: PASS"), std::string::npos);

  // HTML report renders in a browser, with the chart.
  std::ifstream hf(html);
  std::string htmltext((std::istreambuf_iterator<char>(hf)), {});
  EXPECT_NE(htmltext.find("<svg"), std::string::npos);
  const char* browsers[] = {"/usr/bin/chromium", "/usr/bin/chromium-browser",
                            "/usr/bin/google-chrome"};
  std::string browser;
  for (const char* b : browsers) {
    if (fs::exists(b)) browser = b;
  }
  if (browser.empty()) {
    std::printf("no Chromium: HTML screenshot check skipped (apt-get install chromium)\n");
    return;
  }
  const std::string png = dir_->path("tiny.png");
  auto s = test::run_command(
      browser +
      " --headless --no-sandbox --disable-gpu --disable-background-networking "
      "--disable-component-update --disable-sync --no-first-run --user-data-dir=" +
      dir_->path("chromium-profile") + " --window-size=1100,800 --screenshot=" + png + " file://" +
      html);
  ASSERT_TRUE(fs::exists(png)) << s.err;
  EXPECT_GT(fs::file_size(png), 10000u);  // a rendered page, not a blank one
}

// The llama family (no sub-norms, NORM RoPE, output.weight head): bit-identical logits, and
// every op of ours has its reference tensor (upstream's llama graph names the FFN product
// ffn_swiglu and the down projection ffn_out): 16 per block and the final norm and logits, at
// each position.
TEST_F(CrossvalE2E, LlamaTinyPassesWithEveryOpCompared) {
  const std::string model = write_model("tiny", 0, "llama-tiny.gguf", model::Arch::kLlama);
  const std::string receipt = dir_->path("llama.json");
  auto r = bitnet("crossval -m " + model + " -p 'Hello world' -n 4 --threads 2 --json " + receipt);
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  const json j = read_json(receipt);
  expect_clean_pass(j);
  EXPECT_EQ(j["model"]["arch"], "llama");
  const json& c = j["cases"][0];
  // 16 block ops in each of 2 layers, final_norm, logits, and the embeddings (compared with the
  // token's row of the file: llama.cpp does not report its own).
  EXPECT_EQ(c["ops"]["compared"].get<int>(),
            static_cast<int>(c["positions"].size()) * (2 * 16 + 3));
  EXPECT_EQ(c["ops"]["only_ours"], 0);
}

TEST_F(CrossvalE2E, TinySweepPasses) {
  const std::string receipt = dir_->path("sweep.json");
  const auto keys = test::write_key_pair(dir_->path("sweep-signer"));
  ASSERT_FALSE(keys.private_pem.empty());
  auto r = bitnet("sweep -m " + tiny_ + " --threads 2 -q --json " + receipt + " --report " +
                  dir_->path("sweep.html") + " --sign " + keys.private_pem);
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_EQ(bitnet("receipt verify " + receipt + " --key " + keys.public_pem).exit_code, 0);
  const json j = read_json(receipt);
  EXPECT_EQ(j["signature"]["algorithm"], "ed25519");
  EXPECT_EQ(j["kind"], "sweep");
  EXPECT_GE(j["cases"].size(), 6u);
  EXPECT_EQ(j["cases"][0]["prompt"], "2+2=");
  EXPECT_EQ(j["cases"][0]["max_tokens"], 1);
  EXPECT_EQ(j["cases"][1]["max_tokens"], 2);
  EXPECT_EQ(j["cases"][2]["max_tokens"], 4);
  expect_clean_pass(j);
  EXPECT_EQ(bitnet("receipt verify " + receipt).exit_code, 0);
}

// --sign KEY.pem: the receipt carries an Ed25519 signature, which `receipt verify --key PUB.pem`
// checks against the signer's public key (keys made here with OpenSSL, none committed).
TEST_F(CrossvalE2E, SignedReceiptVerifiesAgainstTheSignersKey) {
  const auto keys = test::write_key_pair(dir_->path("signer"));
  const auto other = test::write_key_pair(dir_->path("other"));
  ASSERT_FALSE(keys.private_pem.empty());
  ASSERT_FALSE(other.private_pem.empty());
  const std::string receipt = dir_->path("signed.json");
  auto r = bitnet("crossval -m " + tiny_ + " -p 'Hello' -n 1 --threads 2 -q --json " + receipt +
                  " --sign " + keys.private_pem);
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_NE(r.err.find("(signed by key "), std::string::npos) << r.err;
  const json j = read_json(receipt);
  expect_clean_pass(j);
  EXPECT_EQ(j["signature"]["algorithm"], "ed25519");
  EXPECT_EQ(j["signature"].size(), 3u);

  auto v = bitnet("receipt verify --check-model " + receipt + " --key " + keys.public_pem);
  EXPECT_EQ(v.exit_code, 0) << v.err << v.out;
  EXPECT_NE(v.out.find("the key given with --key"), std::string::npos) << v.out;
  v = bitnet("receipt verify " + receipt);
  EXPECT_EQ(v.exit_code, 0) << v.err << v.out;
  EXPECT_NE(v.out.find("integrity only, not who signed it"), std::string::npos) << v.out;
  v = bitnet("receipt verify " + receipt + " --key " + other.public_pem);
  EXPECT_EQ(v.exit_code, 1) << v.out;
  EXPECT_NE(v.err.find("not by the given key"), std::string::npos) << v.err;

  std::string text;
  {
    std::ifstream f(receipt);
    text.assign(std::istreambuf_iterator<char>(f), {});
  }
  const size_t at = text.find("\"passed\": true");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 14, "\"passed\": false");
  const std::string bad = dir_->path("signed-corrupt.json");
  std::ofstream(bad) << text;
  v = bitnet("receipt verify " + bad + " --key " + keys.public_pem);
  EXPECT_EQ(v.exit_code, 1);
  EXPECT_NE(v.err.find("integrity digest mismatch"), std::string::npos) << v.err;
  EXPECT_NE(v.err.find("signature does not verify"), std::string::npos) << v.err;
}

// crossval of "Hello world" (3 greedy choices) with one op's output scaled by 1 + 1e-3.
Result<RunResult> perturbed_run(const std::string& model, int layer, trace::Op op,
                                const std::string& note) {
  test::PerturbObserver perturb(layer, op, 1.0f + 1e-3f);
  Options o;
  o.model = model;
  o.cases = {{"Hello world", 3}};
  o.test_observer = &perturb;
  o.test_observer_note = note;
  return run_crossval(o);
}

TEST_F(CrossvalE2E, PerturbedUpProjIsNamed) {
  auto r = perturbed_run(tiny_, 1, trace::Op::kUpProj, "blk1/up_proj:1e-3");
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_FALSE(r->passed());
  const json d = json::parse(r->cases[0].first_divergence.dump());
  EXPECT_EQ(d["position"], 0);
  EXPECT_EQ(d["layer"], 1);
  EXPECT_EQ(d["op"], "up_proj");
  EXPECT_EQ(d["classification"], "real divergence");
  EXPECT_EQ(r->ours["test_perturbation"], "blk1/up_proj:1e-3");  // recorded in the receipt
}

TEST_F(CrossvalE2E, PerturbedKProjIsNamed) {
  auto r = perturbed_run(tiny_, 0, trace::Op::kKProj, "blk0/k_proj:1e-3");
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_FALSE(r->passed());
  const json d = json::parse(r->cases[0].first_divergence.dump());
  EXPECT_EQ(d["position"], 0);
  EXPECT_EQ(d["layer"], 0);
  EXPECT_EQ(d["op"], "k_proj");
}

// One bit of one value of one op (the first element of blk 1's attention output at position 0):
// against the x64 variant, which our engine reproduces exactly, the run is judged exactly and
// fails, naming that op; against the reference's best SIMD variant, whose sums run in other
// orders, it is judged by the documented tolerances and passes.
Result<RunResult> one_bit_run(const std::string& model, const std::string& cpu_variant) {
  test::OneBitObserver flip(1, trace::Op::kAttnOut);
  Options o;
  o.model = model;
  o.cases = {{"Hello world", 3}};
  o.reference.cpu_variant = cpu_variant;
  o.n_threads = 2;
  o.reference.n_threads = 2;
  o.test_observer = &flip;
  o.test_observer_note = "blk1/attn_out: one bit of one value";
  return run_crossval(o);
}

TEST_F(CrossvalE2E, OneBitFailsAgainstX64) {
  auto r = one_bit_run(tiny_, "x64");
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_TRUE(r->tol.exact);
  EXPECT_FALSE(r->passed());
  const json d = json::parse(r->cases[0].first_divergence.dump());
  EXPECT_EQ(d["position"], 0);
  EXPECT_EQ(d["layer"], 1);
  EXPECT_EQ(d["op"], "attn_out");
  EXPECT_EQ(d["tolerance"], 0.0);
  // Without the fault the same run passes (so the failure above is the one bit's).
  Options o;
  o.model = tiny_;
  o.cases = {{"Hello world", 3}};
  o.n_threads = 2;
  auto clean = run_crossval(o);
  ASSERT_TRUE(clean.ok()) << clean.message();
  EXPECT_TRUE(clean->passed()) << clean->cases[0].verdict;
  EXPECT_EQ(clean->cases[0].verdict.rfind("pass (exact)", 0), 0u) << clean->cases[0].verdict;
}

// Against a SIMD variant the run is judged by tolerances, yet op-local replay still finds the
// one bit: our attention output is not what our attention computes on our own inputs.
TEST_F(CrossvalE2E, OneBitIsNamedAgainstASimdVariantToo) {
  auto r = one_bit_run(tiny_, "");
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_FALSE(r->tol.exact);
  EXPECT_NE(r->tol.regime_reason.find("sums in other orders"), std::string::npos)
      << r->tol.regime_reason;
  EXPECT_FALSE(r->passed()) << r->cases[0].verdict;
  const json d = json::parse(r->cases[0].first_divergence.dump());
  EXPECT_EQ(d["position"], 0);
  EXPECT_EQ(d["layer"], 1);
  EXPECT_EQ(d["op"], "attn_out");
  EXPECT_EQ(d["classification"], "real divergence");
  EXPECT_EQ(r->cases[0].ops_real, 1) << r->cases[0].verdict;
}

// The reference's CPU variants (libggml-cpu-<name>.so beside its libraries), x64 excluded.
std::vector<std::string> simd_variants() {
  std::vector<std::string> v;
  for (const auto& e : fs::directory_iterator(std::string(BITNET_REFERENCE_DIR) + "/lib")) {
    const std::string name = e.path().filename().string();
    const std::string prefix = "libggml-cpu-", suffix = ".so";
    if (name.rfind(prefix, 0) != 0 || name.size() <= prefix.size() + suffix.size() ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    const std::string variant = name.substr(prefix.size(), name.size() - prefix.size() - 3);
    if (variant != "x64") v.push_back(variant);
  }
  std::sort(v.begin(), v.end());
  return v;
}

// A variant this CPU cannot run is refused by the loader (its instructions are missing, or
// ggml's scoring picks another); any other error is a failure.
bool cannot_run_here(const std::string& message) {
  return message.find("needs instructions this CPU lacks") != std::string::npos ||
         message.find("must be chosen by the first load") != std::string::npos;
}

// Every SIMD variant this CPU can run sums in its own orders: differences reach the logits, and
// op-local replay explains every one of them (rounding, flips or propagation; none real).
void expect_every_variant_explained(const std::string& model, const std::string& prompt,
                                    int max_tokens, int min_variants) {
  int ran = 0;
  std::string skipped;
  for (const std::string& v : simd_variants()) {
    Options o;
    o.model = model;
    o.cases = {{prompt, max_tokens}};
    o.reference.cpu_variant = v;
    o.n_threads = 2;
    o.reference.n_threads = 2;
    auto r = run_crossval(o);
    if (!r.ok() && cannot_run_here(r.message())) {
      skipped += " " + v;
      continue;
    }
    ASSERT_TRUE(r.ok()) << v << ": " << r.message();
    ++ran;
    EXPECT_EQ(r->reference["cpu_variant"], v);
    const CaseResult& c = r->cases[0];
    EXPECT_TRUE(r->passed()) << v << ": " << c.verdict;
    EXPECT_EQ(c.ops_real, 0) << v << ": " << c.verdict;
    EXPECT_LT(c.ops_identical, c.ops_compared) << v << ": no op differs, the bounds did no work";
    double max_abs = 0;
    for (const PositionRow& row : c.rows) max_abs = std::max(max_abs, row.m.max_abs);
    EXPECT_GT(max_abs, 0.0) << v << ": the logits are identical, the bounds did no work";
    EXPECT_LE(c.max_local, 1.0) << v;
  }
  EXPECT_GE(ran, min_variants) << "variants this CPU could not run:" << skipped;
}

TEST_F(CrossvalE2E, EverySimdVariantIsExplainedOnTiny) {
  expect_every_variant_explained(tiny_, "The quick brown fox jumps over the lazy dog.", 4, 3);
  expect_every_variant_explained(
      write_model("tiny", 0, "tiny-llama-variants.gguf", model::Arch::kLlama),
      "The quick brown fox jumps over the lazy dog.", 4, 3);
}

TEST_F(CrossvalE2E, EverySimdVariantIsExplainedOn2b4tShape) {
  expect_every_variant_explained(big(), "Hello", 2, 3);
}

// `op`'s output scaled by 1 + 1e-4 at position 1 (layer 1 for a block op) of "Hello world" must
// fail the run as a real divergence at exactly that place; `o` holds the model and reference.
void expect_mutation_named(Options o, trace::Op op, const std::string& where) {
  const int layer = trace::is_block_op(op) ? 1 : -1;
  test::ScaleAtObserver scale(1, layer, op, 1.0f + 1e-4f);
  o.cases = {{"Hello world", 2}};
  o.n_threads = 2;
  o.reference.n_threads = 2;
  o.test_observer = &scale;
  o.test_observer_note = "position 1 " + std::string(trace::op_name(op)) + " * (1 + 1e-4)";
  auto r = run_crossval(o);
  ASSERT_TRUE(r.ok()) << where << ": " << r.message();
  EXPECT_FALSE(r->passed()) << where;
  const json d = json::parse(r->cases[0].first_divergence.dump());
  EXPECT_EQ(d["position"], 1) << where << ": " << r->cases[0].verdict;
  EXPECT_EQ(d["layer"], layer) << where << ": " << r->cases[0].verdict;
  EXPECT_EQ(d["op"], std::string(trace::op_name(op))) << where << ": " << r->cases[0].verdict;
  EXPECT_EQ(d["classification"], "real divergence") << where;
}

// Mutation over every op kind: one op's output scaled by 1 + 1e-4 at one layer and one
// position must be the first real divergence, at exactly that (position, layer, op), against
// the x64 variant (judged exactly) and against the best SIMD variant (judged by tolerances,
// where every other difference is explained by replay).
TEST_F(CrossvalE2E, MutationOfEveryOpKindIsNamedAtItsPlace) {
  for (int i = 0; i < static_cast<int>(trace::Op::kCount); ++i) {
    const auto op = static_cast<trace::Op>(i);
    for (const std::string variant : {"x64", ""}) {
      Options o;
      o.model = tiny_;
      o.reference.cpu_variant = variant;
      expect_mutation_named(
          o, op,
          std::string(trace::op_name(op)) + " against " + (variant.empty() ? "best" : variant));
    }
  }
}

// Several references in one run: a fault of one reference (its traced attention output changed
// by a test hook) is attributed to it, since the other agrees with us; a fault of ours shows
// against both and is attributed to us.
TEST_F(CrossvalE2E, MultiReferenceAttributesADifferenceToWhereItLies) {
  auto options = [&](const std::string& variant) {
    Options o;
    o.model = tiny_;
    o.cases = {{"Hello world", 2}};
    o.reference.cpu_variant = variant;
    o.n_threads = 2;
    o.reference.n_threads = 2;
    return o;
  };
  Options bad_reference = options("");
  bad_reference.test_reference_hook = [](int pos, int layer, trace::Op op, std::vector<float>& v) {
    if (pos == 1 && layer == 1 && op == trace::Op::kAttnOut) {
      for (float& x : v) x *= 1.0f + 1e-4f;
    }
  };
  bad_reference.test_reference_note = "blk1/attn_out at position 1 * (1 + 1e-4)";
  auto runs = run_references({{"x64", options("x64")}, {"best", bad_reference}});
  ASSERT_TRUE(runs.ok()) << runs.message();
  ASSERT_EQ(runs->size(), 2u);
  EXPECT_TRUE((*runs)[0].run.passed()) << (*runs)[0].run.cases[0].verdict;
  EXPECT_FALSE((*runs)[1].run.passed());
  EXPECT_FALSE(all_passed(*runs));
  const std::string a = attribute(*runs, 0);
  EXPECT_NE(a.find("fails only against best"), std::string::npos) << a;
  EXPECT_NE(a.find("position 1, blk1/attn_out (real divergence)"), std::string::npos) << a;
  EXPECT_NE(a.find("lies with the reference"), std::string::npos) << a;
  const json block = json::parse(references_json(*runs).dump());
  EXPECT_FALSE(block["passed"].get<bool>());
  EXPECT_EQ(block["references"][1]["reference"]["test_perturbation"],
            "blk1/attn_out at position 1 * (1 + 1e-4)");

  test::ScaleAtObserver ours(1, 1, trace::Op::kAttnOut, 1.0f + 1e-4f);
  Options x64 = options("x64"), best = options("");
  x64.test_observer = best.test_observer = &ours;
  x64.test_observer_note = best.test_observer_note = "ours: blk1/attn_out * (1 + 1e-4)";
  runs = run_references({{"x64", x64}, {"best", best}});
  ASSERT_TRUE(runs.ok()) << runs.message();
  const std::string b = attribute(*runs, 0);
  EXPECT_NE(b.find("fails against every reference at position 1, blk1/attn_out (real "
                   "divergence): the difference lies with us"),
            std::string::npos)
      << b;
}

// Through the CLI: one column per reference in the report, a receipt that verifies, and a
// receipt whose overall verdict was edited that does not.
TEST_F(CrossvalE2E, MultiReferenceReceiptAndReport) {
  const std::string receipt = dir_->path("multi.json"), md = dir_->path("multi.md");
  auto r = bitnet("crossval -m " + tiny_ +
                  " -p 'Hello' -n 2 --threads 2 --reference x64 --reference best --json " +
                  receipt + " --report " + md);
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  std::ifstream f(md);
  const std::string text((std::istreambuf_iterator<char>(f)), {});
  EXPECT_NE(text.find("| case | x64 | best |"), std::string::npos) << text;
  EXPECT_NE(text.find("passes against every reference (x64, best)"), std::string::npos) << text;
  json j = read_json(receipt);
  EXPECT_TRUE(j["multi_reference"]["passed"].get<bool>());
  EXPECT_EQ(j["multi_reference"]["references"][1]["regime"], "tolerance");
  EXPECT_NE(j["replay"].get<std::string>().find("--reference x64 --reference best"),
            std::string::npos);
  EXPECT_EQ(bitnet("receipt verify " + receipt).exit_code, 0);
  j["multi_reference"]["passed"] = false;
  j["integrity"]["digest"] = integrity_digest(j);
  const std::string edited = dir_->path("multi-edited.json");
  std::ofstream(edited) << j.dump(2);
  r = bitnet("receipt verify " + edited);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("multi_reference.passed disagrees"), std::string::npos) << r.err;
  // --cpu-variant and --reference do not mix; a reference named twice is an error.
  r = bitnet("crossval -m " + tiny_ + " -p 'Hello' --reference x64 --cpu-variant zen4 -q");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("does not combine"), std::string::npos) << r.err;
  r = bitnet("crossval -m " + tiny_ + " -p 'Hello' --reference best --reference best -q");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("named twice"), std::string::npos) << r.err;
}

// The regime is chosen, recorded and explained; --tol cannot loosen an exact run silently.
TEST_F(CrossvalE2E, RegimeIsRecordedAndTolNeedsTheToleranceRegime) {
  const std::string receipt = dir_->path("regime.json"), md = dir_->path("regime.md");
  auto r = bitnet("crossval -m " + tiny_ + " -p 'Hello' -n 2 --threads 2 -q --json " + receipt +
                  " --report " + md);
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  json j = read_json(receipt);
  EXPECT_EQ(j["thresholds"]["regime"], "exact");
  for (const json& p : j["positions"]) {
    EXPECT_TRUE(p["identical"].get<bool>());
    EXPECT_EQ(p["non_finite"], 0);
  }
  std::ifstream f(md);
  const std::string text((std::istreambuf_iterator<char>(f)), {});
  EXPECT_NE(text.find("verdict regime: exact"), std::string::npos) << text;
  EXPECT_EQ(bitnet("receipt verify " + receipt).exit_code, 0);

  r = bitnet("crossval -m " + tiny_ + " -p 'Hello' -n 2 -q --tol logits.top1=0 --json " + receipt);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--tol does not apply"), std::string::npos) << r.err;
  r = bitnet("crossval -m " + tiny_ +
             " -p 'Hello' -n 2 --threads 2 -q --regime tolerance --tol logits.top1=0 --json " +
             receipt);
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  j = read_json(receipt);
  EXPECT_EQ(j["thresholds"]["regime"], "tolerance");
  EXPECT_NE(j["replay"].get<std::string>().find("--regime tolerance"), std::string::npos);
  r = bitnet("crossval -m " + tiny_ + " -p 'Hello' -q --regime loose --json " + receipt);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--regime 'loose'"), std::string::npos) << r.err;
}

TEST_F(CrossvalE2E, Shape2b4tFourLayers) {
  const std::string receipt = dir_->path("big.json");
  auto r = bitnet("crossval -m " + big() + " -p 'Hello' -n 2 --threads 2 -q --json " + receipt);
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  expect_clean_pass(read_json(receipt));
  // Sweep over the seed's cases.
  const std::string prompts = dir_->path("seed-prompts.txt");
  std::ofstream(prompts) << "# seed cases\n1\t2+2=\n2\tHello\n4\tCount: \n";
  const std::string sweep = dir_->path("big-sweep.json");
  r = bitnet("sweep -m " + big() + " --prompts " + prompts + " --threads 2 -q --json " + sweep);
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  const json j = read_json(sweep);
  EXPECT_EQ(j["cases"].size(), 3u);
  expect_clean_pass(j);
}

// Our kernel variant comes from --kernels or BITNET_KERNELS (read by the CLI), and the receipt
// names the one the run used; every variant is bit-exact, so the scalar one passes cleanly too.
TEST_F(CrossvalE2E, ReceiptNamesTheKernelsUsed) {
  const std::string receipt = dir_->path("scalar.json");
  auto r =
      bitnet("crossval -m " + tiny_ + " -p 'Hello world' -n 2 --threads 2 -q --json " + receipt,
             "BITNET_KERNELS=scalar");
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  json j = read_json(receipt);
  EXPECT_EQ(j["host"]["kernel_variant"], "scalar");
  EXPECT_EQ(j["settings"]["ours"]["kernels"], "scalar");
  expect_clean_pass(j);
  r = bitnet(
      "crossval -m " + tiny_ + " -p 'Hello' -n 1 --threads 2 -q --kernels scalar --json " + receipt,
      "BITNET_KERNELS=avx9000");
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  j = read_json(receipt);
  EXPECT_EQ(j["host"]["kernel_variant"], "scalar") << "the flag wins over the variable";
  EXPECT_EQ(j["settings"]["ours"]["kernels"], "scalar");
}

TEST_F(CrossvalE2E, ErrorsExitTwo) {
  auto r = bitnet("crossval -m " + dir_->path("missing.gguf") + " -p x");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err.rfind("bitnet: error: ", 0), 0u) << r.err;
  r = bitnet("crossval -m " + tiny_ + " -p x --tol bogus=1 --json " + dir_->path("e.json"));
  EXPECT_EQ(r.exit_code, 2);
  r = bitnet("crossval -m " + tiny_ + " -p x --cpu-variant nosuchcpu --json " +
             dir_->path("e.json"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("nosuchcpu"), std::string::npos) << r.err;
  // Variables the CLI reads and passes down.
  r = bitnet("crossval -m " + tiny_ + " -p x --json " + dir_->path("e.json"),
             "BITNET_KERNELS=avx9000");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("BITNET_KERNELS: unknown kernel variant 'avx9000'"), std::string::npos)
      << r.err;
  r = bitnet("crossval -m " + tiny_ + " -p x --json " + dir_->path("e.json"),
             "BITNET_REFERENCE_HELPER=/nonexistent-helper");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("reference helper /nonexistent-helper is not an executable"),
            std::string::npos)
      << r.err;
  // --explain: a point that is not one, or without the per-op comparison it explains.
  for (const std::string bad :
       {"1/attn_out", "1/0/logits", "x/0/q_proj", "1/0/nosuchop", "1/2/3/q_proj", "-1/0/q_proj"}) {
    r = bitnet("crossval -m " + tiny_ + " -p x -q --explain '" + bad + "' --json " +
               dir_->path("e.json"));
    EXPECT_EQ(r.exit_code, 2) << bad;
    EXPECT_NE(r.err.find("--explain '" + bad + "' is not POS/LAYER/OP"), std::string::npos)
        << r.err;
  }
  r = bitnet("crossval -m " + tiny_ + " -p x -q --explain 1/0/q_proj --no-ops --json " +
             dir_->path("e.json"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--explain needs the per-op comparison"), std::string::npos) << r.err;
}

#ifdef BITNET_HAVE_OLDAPI_REFERENCE
// The older C API (llama.cpp b3995, its own helper): its graphs name some tensors differently
// (kqv_out is the o projection in its llama graph) and it multiplies F16 matrices with f32
// activations (llamafile sgemm), so values differ; replay explains every difference (the logits
// are judged by looser tolerances: a few dozen activation flips move this random model's
// distribution by a KL of ~3e-3), and a mutation of every op kind is still named.
TEST_F(CrossvalE2E, OlderApiReference) {
  const std::string llama = write_model("tiny", 0, "tiny-llama-oldapi.gguf", model::Arch::kLlama);
  for (const std::string& m : {tiny_, llama}) {
    const std::string receipt = dir_->path("old.json");
    auto r = bitnet(
        "crossval -m " + m + " -p 'The quick brown fox jumps over the lazy dog.' -n 4 " +
        "--threads 2 -q --json " + receipt + " --reference-dir " + BITNET_REFERENCE_OLDAPI_DIR +
        " --tol logits.min_cosine=0.999 --tol logits.max_kl=0.01 --tol logits.top1=0");
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    const json j = read_json(receipt);
    EXPECT_EQ(j["reference"]["api"], "old");
    EXPECT_NE(j["reference"]["helper"].get<std::string>().find("bitnet-reference-oldapi"),
              std::string::npos);
    EXPECT_GE(j["summary"]["min_cosine"].get<double>(), 0.999);
    const json& ops = j["cases"][0]["ops"];
    EXPECT_EQ(ops["only_ours"], 0) << m << ": every op of ours has the reference's to compare";
    EXPECT_EQ(ops["classified"]["real_divergence"], 0) << m;
    EXPECT_LT(ops["identical"].get<int>(), ops["compared"].get<int>()) << m;
  }
  for (int i = 0; i < static_cast<int>(trace::Op::kCount); ++i) {
    const auto op = static_cast<trace::Op>(i);
    if (op == trace::Op::kAttnSubNorm || op == trace::Op::kFfnSubNorm) continue;  // not in llama
    Options o;
    o.model = llama;
    o.reference.reference_dir = BITNET_REFERENCE_OLDAPI_DIR;
    expect_mutation_named(o, op, std::string(trace::op_name(op)) + " against b3995");
  }
}
#endif

}  // namespace
}  // namespace bitnet::crossval
