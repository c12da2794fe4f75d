// The reference adapter against the pinned upstream llama.cpp, on synthetic models generated
// here (bitnet::synth), never on files from elsewhere.
#include "reference/llama_reference.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/paths.h"
#include "synth/synth.h"
#include "test_util.h"

namespace bitnet::reference {
namespace {

constexpr int32_t kBos = 128000;  // <|begin_of_text|> of the Llama 3 vocabulary
constexpr const char* kCountPrompt = "Count: 1 2 3 4 5 6 7 8";

// Writes a tiny synthetic model; fails the test on error.
std::string write_model(const test::TempDir& dir, const std::string& name, model::Arch arch,
                        gguf::TensorType weights) {
  auto config = synth::preset_config("tiny", arch);
  EXPECT_TRUE(config.ok()) << config.message();
  if (!config.ok()) return "";
  synth::SynthOptions o;
  o.config = *config;
  o.weight_type = weights;
  o.embd_type = gguf::TensorType::F16;
  o.vocab_path = reference_vocab_path("ggml-vocab-llama-bpe.gguf");
  // As `bitnet synth` does: keep the vocabulary's pre-tokenizer for `bitnet`, drop it (as the
  // official 2B4T file does) for bitnet-b1.58.
  o.pre_tokenizer = arch == model::Arch::kBitnet ? "" : "none";
  o.seed = 1;
  const std::string path = dir.path(name);
  const Status st = synth::write_synthetic_model(o, path);
  EXPECT_TRUE(st.ok()) << st.message();
  return st.ok() ? path : "";
}

bool one_line(const std::string& s) { return !s.empty() && s.find('\n') == std::string::npos; }

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b, size_t offset = 0) {
  float m = 0.0f;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[offset + i]));
  return m;
}

std::vector<int32_t> row_argmaxes(const std::vector<float>& logits, int n_vocab) {
  std::vector<int32_t> out;
  for (size_t r = 0; r * n_vocab < logits.size(); ++r) {
    const float* row = logits.data() + r * n_vocab;
    out.push_back(static_cast<int32_t>(std::max_element(row, row + n_vocab) - row));
  }
  return out;
}

// One TQ2_0 `bitnet` model per test process (ctest runs each test in its own process).
class ReferenceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    model_path_ = new std::string(
        write_model(*dir_, "bitnet-tq2_0.gguf", model::Arch::kBitnet, gguf::TensorType::TQ2_0));
  }
  static void TearDownTestSuite() {
    delete model_path_;
    delete dir_;
    model_path_ = nullptr;
    dir_ = nullptr;
  }

  void SetUp() override { ASSERT_FALSE(model_path_->empty()); }

  static std::unique_ptr<LlamaReference> load(const ReferenceSettings& s = {}) {
    auto r = LlamaReference::load(*model_path_, s);
    EXPECT_TRUE(r.ok()) << r.message();
    return r.ok() ? std::move(r).value() : nullptr;
  }

  static std::vector<int32_t> tokens(LlamaReference& ref, const std::string& text) {
    auto t = ref.tokenize(text, /*add_special=*/true, /*parse_special=*/false);
    EXPECT_TRUE(t.ok()) << t.message();
    return t.ok() ? *t : std::vector<int32_t>{};
  }

  static test::TempDir* dir_;
  static std::string* model_path_;
};
test::TempDir* ReferenceTest::dir_ = nullptr;
std::string* ReferenceTest::model_path_ = nullptr;

TEST(ReferenceBackend, LoadsACpuBackendAndDescribesIt) {
  auto info = init_backends();
  ASSERT_TRUE(info.ok()) << info.message();
  EXPECT_FALSE(info->cpu_variant.empty());
  EXPECT_NE(info->llama_library.find("libllama"), std::string::npos) << info->llama_library;
  EXPECT_NE(info->version.find("llama.cpp"), std::string::npos) << info->version;
  EXPECT_FALSE(info->devices.empty());
  EXPECT_EQ(info->api, "new");
  // A second call returns the same backend; asking for another variant afterwards fails.
  auto again = init_backends();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->cpu_plugin, info->cpu_plugin);
  ReferenceSettings other;
  other.cpu_variant = info->cpu_variant == "x64" ? "sse42" : "x64";
  auto clash = init_backends(other);
  ASSERT_FALSE(clash.ok());
  EXPECT_TRUE(one_line(clash.message())) << clash.message();
}

TEST_F(ReferenceTest, LoadsAndTokenizes) {
  auto ref = load();
  ASSERT_TRUE(ref);
  EXPECT_EQ(ref->n_vocab(), 128256);
  const std::string desc = ref->description();
  EXPECT_TRUE(one_line(desc)) << desc;
  EXPECT_NE(desc.find(ref->backend().cpu_variant), std::string::npos) << desc;
  EXPECT_NE(desc.find(*model_path_), std::string::npos) << desc;

  auto a = ref->tokenize("Hello", true, false);
  auto b = ref->tokenize("Hello", true, false);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_GE(a->size(), 2u);
  EXPECT_EQ((*a)[0], kBos);
  EXPECT_EQ(*a, *b);
  auto no_bos = ref->tokenize("Hello", false, false);
  ASSERT_TRUE(no_bos.ok());
  EXPECT_EQ(std::vector<int32_t>(a->begin() + 1, a->end()), *no_bos);
  // Special tokens are only parsed when asked.
  auto special = ref->tokenize("<|eot_id|>", false, true);
  ASSERT_TRUE(special.ok());
  EXPECT_EQ(*special, std::vector<int32_t>{128009});
  auto plain = ref->tokenize("<|eot_id|>", false, false);
  ASSERT_TRUE(plain.ok());
  EXPECT_GT(plain->size(), 1u);
  // Long input (more tokens than the first buffer guess) and empty input.
  auto empty = ref->tokenize("", false, false);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST_F(ReferenceTest, LogitsAtEveryPositionAreSane) {
  auto ref = load();
  ASSERT_TRUE(ref);
  const auto prompt = tokens(*ref, kCountPrompt);
  ASSERT_GE(prompt.size(), 10u);
  const int nv = ref->n_vocab();
  auto logits = ref->eval_logits(prompt);
  ASSERT_TRUE(logits.ok()) << logits.message();
  ASSERT_EQ(logits->size(), prompt.size() * nv);
  for (size_t r = 0; r < prompt.size(); ++r) {
    const float* row = logits->data() + r * nv;
    double sum = 0, sum2 = 0;
    for (int i = 0; i < nv; ++i) {
      ASSERT_TRUE(std::isfinite(row[i])) << "row " << r << " col " << i;
      sum += row[i];
      sum2 += static_cast<double>(row[i]) * row[i];
    }
    const double mean = sum / nv, sd = std::sqrt(std::max(0.0, sum2 / nv - mean * mean));
    EXPECT_GT(sd, 0.5) << "row " << r << " is (nearly) constant";
  }
  const auto am = row_argmaxes(*logits, nv);
  EXPECT_GE(std::set<int32_t>(am.begin(), am.end()).size(), 3u) << "argmax barely varies";
  // Rows differ from each other (the positions really see different inputs).
  EXPECT_GT(max_abs_diff(std::vector<float>(logits->begin(), logits->begin() + nv), *logits,
                         static_cast<size_t>(nv)),
            0.1f);
}

TEST_F(ReferenceTest, GreedyPrefillEqualsEvalLogits) {
  auto ref = load();
  ASSERT_TRUE(ref);
  const auto prompt = tokens(*ref, kCountPrompt);
  const int nv = ref->n_vocab();
  auto full = ref->eval_logits(prompt);
  ASSERT_TRUE(full.ok()) << full.message();

  std::vector<float> seen;
  auto gen = ref->greedy(prompt, 8, &seen);
  ASSERT_TRUE(gen.ok()) << gen.message();
  ASSERT_EQ(gen->size(), 8u);
  ASSERT_EQ(seen.size(), (prompt.size() + 7) * nv);
  for (int32_t t : *gen) EXPECT_TRUE(t >= 0 && t < nv);
  // The prompt rows are the same computation as eval_logits: bitwise equal.
  EXPECT_EQ(std::memcmp(seen.data(), full->data(), full->size() * sizeof(float)), 0)
      << "max diff " << max_abs_diff(*full, seen);
  // Each generated id is the argmax of the row before it.
  const auto am = row_argmaxes(seen, nv);
  for (size_t k = 0; k < gen->size(); ++k) EXPECT_EQ((*gen)[k], am[prompt.size() - 1 + k]) << k;

  // Without logits_out: the same ids.
  auto gen2 = ref->greedy(prompt, 8, nullptr);
  ASSERT_TRUE(gen2.ok()) << gen2.message();
  EXPECT_EQ(*gen2, *gen);
  // n_new = 0 evaluates the prompt only.
  std::vector<float> only_prompt;
  auto none = ref->greedy(prompt, 0, &only_prompt);
  ASSERT_TRUE(none.ok()) << none.message();
  EXPECT_TRUE(none->empty());
  EXPECT_EQ(only_prompt, *full);

  // The whole sequence in one batch agrees with token-by-token decoding up to rounding
  // (different batch shapes may round differently), and on every argmax.
  std::vector<int32_t> seq = prompt;
  seq.insert(seq.end(), gen->begin(), gen->end() - 1);
  auto batch = ref->eval_logits(seq);
  ASSERT_TRUE(batch.ok()) << batch.message();
  ASSERT_EQ(batch->size(), seen.size());
  EXPECT_LT(max_abs_diff(*batch, seen), 1e-3f);
  EXPECT_EQ(row_argmaxes(*batch, nv), am);
}

// Asking for the last position's logits only (what a fair prompt benchmark asks of both engines)
// gives that row of eval_logits, also when the prompt spans several micro-batches: up to
// rounding, since the SIMD variants' head takes another code path for one row than for many.
TEST_F(ReferenceTest, LastLogitsAreTheLastRow) {
  for (int n_batch : {0, 4}) {
    ReferenceSettings s;
    s.n_batch = n_batch;
    auto ref = load(s);
    ASSERT_TRUE(ref);
    const auto prompt = tokens(*ref, kCountPrompt);
    const int nv = ref->n_vocab();
    auto full = ref->eval_logits(prompt);
    ASSERT_TRUE(full.ok()) << full.message();
    auto last = ref->eval_last_logits(prompt);
    ASSERT_TRUE(last.ok()) << last.message();
    ASSERT_EQ(last->size(), static_cast<size_t>(nv));
    const std::vector<float> want(full->end() - nv, full->end());
    EXPECT_LT(max_abs_diff(want, *last), 1e-4f) << "n_batch " << n_batch;
    EXPECT_EQ(row_argmaxes(*last, nv), row_argmaxes(want, nv));
  }
  auto ref = load();
  ASSERT_TRUE(ref);
  EXPECT_FALSE(ref->eval_last_logits({}).ok());
}

TEST_F(ReferenceTest, RunsAreReproducible) {
  std::vector<float> logits[2];
  std::vector<int32_t> ids[2];
  for (int run = 0; run < 2; ++run) {
    auto ref = load();
    ASSERT_TRUE(ref);
    const auto prompt = tokens(*ref, kCountPrompt);
    auto l = ref->eval_logits(prompt);
    ASSERT_TRUE(l.ok()) << l.message();
    logits[run] = *l;
    auto g = ref->greedy(prompt, 8);
    ASSERT_TRUE(g.ok()) << g.message();
    ids[run] = *g;
    // And within one instance, a repeated call gives the same bits.
    auto l2 = ref->eval_logits(prompt);
    ASSERT_TRUE(l2.ok());
    EXPECT_EQ(*l2, *l);
  }
  EXPECT_EQ(logits[0], logits[1]);
  EXPECT_EQ(ids[0], ids[1]);
}

TEST_F(ReferenceTest, SmallBatchesAndFixedContext) {
  auto whole = load();
  ASSERT_TRUE(whole);
  const auto prompt = tokens(*whole, kCountPrompt);
  auto a = whole->eval_logits(prompt);
  ASSERT_TRUE(a.ok()) << a.message();

  ReferenceSettings s;
  s.n_batch = 4;
  s.n_ctx = 32;
  auto split = load(s);
  ASSERT_TRUE(split);
  auto b = split->eval_logits(prompt);
  ASSERT_TRUE(b.ok()) << b.message();
  ASSERT_EQ(b->size(), a->size());
  EXPECT_LT(max_abs_diff(*a, *b), 1e-3f);
  EXPECT_EQ(row_argmaxes(*a, whole->n_vocab()), row_argmaxes(*b, split->n_vocab()));

  // More positions than n_ctx: a clear error, and the instance stays usable.
  std::vector<int32_t> too_long(40, prompt[1]);
  auto err = split->eval_logits(too_long);
  ASSERT_FALSE(err.ok());
  EXPECT_NE(err.message().find("context too small"), std::string::npos) << err.message();
  auto gen_err = split->greedy(prompt, 32);
  ASSERT_FALSE(gen_err.ok());
  EXPECT_NE(gen_err.message().find("context too small"), std::string::npos);
  auto again = split->eval_logits(prompt);
  ASSERT_TRUE(again.ok()) << again.message();
  EXPECT_EQ(*again, *b);
}

TEST_F(ReferenceTest, TensorObserverSeesIntermediatesWithoutChangingLogits) {
  auto ref = load();
  ASSERT_TRUE(ref);
  const auto prompt = tokens(*ref, kCountPrompt);
  const int64_t n = static_cast<int64_t>(prompt.size());
  auto plain = ref->eval_logits(prompt);
  ASSERT_TRUE(plain.ok());

  std::map<std::string, std::vector<int64_t>> shapes;
  std::map<std::string, std::vector<float>> data;
  std::set<std::string> asked;
  const std::set<std::string> wanted = {"attn_norm-0", "Qcur-0",      "kq_soft_max-1",
                                        "l_out-1",     "result_norm", "result_output"};
  ref->set_tensor_observer(
      [&](const std::string& name) {
        asked.insert(name);
        return wanted.count(name) > 0;
      },
      [&](const std::string& name, const std::vector<int64_t>& shape, const std::vector<float>& d) {
        shapes[name] = shape;
        data[name] = d;
      });
  auto observed = ref->eval_logits(prompt);
  ASSERT_TRUE(observed.ok()) << observed.message();
  EXPECT_EQ(*observed, *plain) << "observing changed the logits, max diff "
                               << max_abs_diff(*observed, *plain);
  for (const auto& w : wanted) EXPECT_TRUE(data.count(w)) << w << " not delivered";
  EXPECT_GT(asked.size(), wanted.size());

  const int64_t nv = ref->n_vocab();
  EXPECT_EQ(shapes["result_output"], (std::vector<int64_t>{nv, n}));
  EXPECT_EQ(data["result_output"], *plain);
  EXPECT_EQ(shapes["attn_norm-0"], (std::vector<int64_t>{256, n}));
  EXPECT_EQ(shapes["result_norm"], (std::vector<int64_t>{256, n}));
  EXPECT_EQ(shapes["l_out-1"], (std::vector<int64_t>{256, n}));
  // Q after RoPE: {head_dim 64, 4 heads, n tokens}.
  EXPECT_EQ(shapes["Qcur-0"], (std::vector<int64_t>{64, 4, n}));
  // Softmax rows sum to 1 over the keys (causal: the kv length is padded, masked ones are 0).
  const auto& ks = shapes["kq_soft_max-1"];
  ASSERT_GE(ks.size(), 2u);
  const auto& kd = data["kq_soft_max-1"];
  for (int64_t r = 0; r < static_cast<int64_t>(kd.size()) / ks[0]; ++r) {
    double s = 0;
    for (int64_t c = 0; c < ks[0]; ++c) s += kd[r * ks[0] + c];
    ASSERT_NEAR(s, 1.0, 1e-3) << "softmax row " << r;
  }

  // Removing the observer: no more calls, same logits.
  ref->set_tensor_observer(nullptr, nullptr);
  data.clear();
  auto after = ref->eval_logits(prompt);
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(data.empty());
  EXPECT_EQ(*after, *plain);

  // An observer that throws turns into an error, not a crash.
  ref->set_tensor_observer([](const std::string& name) { return name == "l_out-0"; },
                           [](const std::string&, const std::vector<int64_t>&,
                              const std::vector<float>&) { throw std::runtime_error("boom"); });
  auto thrown = ref->eval_logits(prompt);
  ASSERT_FALSE(thrown.ok());
  EXPECT_NE(thrown.message().find("boom"), std::string::npos) << thrown.message();
  ref->set_tensor_observer(nullptr, nullptr);
  auto recovered = ref->eval_logits(prompt);
  ASSERT_TRUE(recovered.ok()) << recovered.message();
  EXPECT_EQ(*recovered, *plain);
}

TEST_F(ReferenceTest, BadRequestsAreErrors) {
  auto ref = load();
  ASSERT_TRUE(ref);
  auto empty = ref->eval_logits({});
  ASSERT_FALSE(empty.ok());
  EXPECT_TRUE(one_line(empty.message()));
  auto bad_id = ref->eval_logits({kBos, ref->n_vocab()});
  ASSERT_FALSE(bad_id.ok());
  EXPECT_NE(bad_id.message().find("outside the vocabulary"), std::string::npos);
  auto negative = ref->greedy({kBos, -1}, 2);
  ASSERT_FALSE(negative.ok());
  auto bad_n = ref->greedy({kBos}, -1);
  ASSERT_FALSE(bad_n.ok());
  auto fine = ref->greedy({kBos}, 1);
  ASSERT_TRUE(fine.ok()) << fine.message();

  ReferenceSettings s;
  s.n_threads = 0;
  auto bad_settings = LlamaReference::load(*model_path_, s);
  ASSERT_FALSE(bad_settings.ok());
  EXPECT_NE(bad_settings.message().find("n_threads"), std::string::npos);
}

TEST(ReferenceFiles, MissingAndNonGgufFilesAreErrors) {
  test::TempDir dir;
  auto missing = LlamaReference::load(dir.path("nope.gguf"));
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(one_line(missing.message())) << missing.message();
  EXPECT_NE(missing.message().find("nope.gguf"), std::string::npos);

  const std::string junk = dir.path("junk.gguf");
  {
    std::ofstream f(junk);
    f << "this is not a GGUF file, just some text that is long enough to be read\n";
  }
  auto not_gguf = LlamaReference::load(junk);
  ASSERT_FALSE(not_gguf.ok());
  EXPECT_TRUE(one_line(not_gguf.message())) << not_gguf.message();
  EXPECT_NE(not_gguf.message().find("llama.cpp"), std::string::npos) << not_gguf.message();

  const std::string truncated = dir.path("truncated.gguf");
  {
    std::ofstream f(truncated, std::ios::binary);
    f.write("GGUF\x03\x00\x00\x00", 8);
  }
  auto trunc = LlamaReference::load(truncated);
  ASSERT_FALSE(trunc.ok());
  EXPECT_TRUE(one_line(trunc.message())) << trunc.message();

  auto is_dir = LlamaReference::load(dir.dir().string());
  ASSERT_FALSE(is_dir.ok());
  std::printf("missing:   %s\nnot gguf:  %s\ntruncated: %s\n", missing.message().c_str(),
              not_gguf.message().c_str(), trunc.message().c_str());
}

// Upstream llama.cpp has no `bitnet-b1.58` architecture and no I2_S type (it reuses id 36):
// the official-format file must be refused with a clear message, not crash.
TEST(ReferenceFiles, UpstreamRefusesI2sBitnetB158) {
  test::TempDir dir;
  const std::string path =
      write_model(dir, "b158-i2_s.gguf", model::Arch::kBitnetB158, gguf::TensorType::I2_S);
  ASSERT_FALSE(path.empty());
  auto r = LlamaReference::load(path);
  ASSERT_FALSE(r.ok()) << "upstream llama.cpp unexpectedly loaded an I2_S bitnet-b1.58 file";
  EXPECT_TRUE(one_line(r.message())) << r.message();
  EXPECT_NE(r.message().find("llama.cpp refused"), std::string::npos) << r.message();
  std::printf("I2_S bitnet-b1.58: %s\n", r.message().c_str());
}

}  // namespace
}  // namespace bitnet::reference
