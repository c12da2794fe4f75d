// `bitnet perplexity` against llama-perplexity's method computed from the pinned llama.cpp's own
// logits, its KL divergence mode, and its errors through the CLI.
//
// Parity: the reference's x64 CPU variant gives the same logits as our engine bit for bit
// (tests/model/parity_llama_test.cpp), so the perplexity computed here from its logits with an
// independent implementation of llama-perplexity's formula must equal ours exactly, as doubles
// and as printed.
#include "eval/perplexity.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/random.h"
#include "model/context.h"
#include "reference/llama_reference.h"
#include "synth/synth.h"
#include "test_util.h"

namespace bitnet::eval {
namespace {

constexpr int kCtx = 64;
constexpr int kChunks = 3;

// A deterministic text of made-up words (no third-party text).
std::string corpus(int n_words) {
  static const char* const kWords[] = {"alpha", "river", "stone", "light", "seven", "blue",
                                       "runs",  "over",  "the",   "quiet", "hill",  "and"};
  SplitMix64 rng(2026);
  std::string s;
  for (int i = 0; i < n_words; ++i) {
    if (i > 0) s += (i % 11 == 0) ? ". " : " ";
    s += kWords[rng.below(12)];
  }
  return s;
}

std::string synth_model(const test::TempDir& dir, model::Arch arch, uint64_t seed,
                        const std::string& name,
                        const std::string& vocab = "ggml-vocab-llama-bpe.gguf") {
  synth::SynthOptions o;
  o.config = *synth::preset_config("tiny", arch);
  o.weight_type = gguf::TensorType::TQ2_0;
  o.vocab_path = std::string(BITNET_REFERENCE_DIR) + "/models/" + vocab;
  if (arch == model::Arch::kLlama) o.untied_head = true;
  o.seed = seed;
  const std::string path = dir.path(name);
  auto st = synth::write_synthetic_model(o, path);
  EXPECT_TRUE(st.ok()) << st.message();
  return path;
}

// llama-perplexity's scoring, written out again: float max, float exponentials summed in double
// in index order, log p = (logit - max) - log(sum).
double reference_nll(const float* row, int64_t nv, int32_t tok) {
  float mx = row[0];
  for (int64_t i = 1; i < nv; ++i) mx = row[i] > mx ? row[i] : mx;
  double sum = 0;
  for (int64_t i = 0; i < nv; ++i) sum += expf(row[i] - mx);
  return -(static_cast<double>(row[tok] - mx) - log(sum));
}

struct RefPpl {
  double ppl, err;
  std::vector<double> chunks;
};

RefPpl reference_perplexity(reference::LlamaReference& ref, const std::vector<int32_t>& tokens) {
  const int64_t nv = ref.n_vocab();
  double nll = 0, nll2 = 0;
  int64_t count = 0;
  RefPpl out{};
  for (int c = 0; c < kChunks; ++c) {
    std::vector<int32_t> chunk(tokens.begin() + c * kCtx, tokens.begin() + (c + 1) * kCtx);
    chunk[0] = tokens[0];  // BOS (the vocabulary adds it: the text's first token)
    auto logits = ref.eval_logits(chunk);
    EXPECT_TRUE(logits.ok()) << logits.message();
    for (int j = kCtx / 2; j < kCtx - 1; ++j) {
      const double v = reference_nll(logits->data() + j * nv, nv, chunk[j + 1]);
      nll += v;
      nll2 += v * v;
      ++count;
    }
    out.chunks.push_back(std::exp(nll / count));
  }
  const double mean = nll / count;
  out.ppl = std::exp(mean);
  out.err = out.ppl * std::sqrt((nll2 / count - mean * mean) / (count - 1));
  return out;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), f, v);
  return buf;
}

class PerplexityParity : public ::testing::TestWithParam<model::Arch> {};

TEST_P(PerplexityParity, EqualsLlamaPerplexityOnTheReferenceLogits) {
  test::TempDir dir;
  const std::string path = synth_model(dir, GetParam(), 7, "m.gguf");
  reference::ReferenceSettings rs;
  rs.n_threads = 2;
  rs.cpu_variant = "x64";
  auto ref = reference::LlamaReference::load(path, rs);
  ASSERT_TRUE(ref.ok()) << ref.message();
  const std::string text = corpus(400);
  auto tokens = (*ref)->tokenize(text, true, false);
  ASSERT_TRUE(tokens.ok()) << tokens.message();
  ASSERT_GE(tokens->size(), static_cast<size_t>(kChunks * kCtx));
  const RefPpl want = reference_perplexity(**ref, *tokens);

  auto m = model::Model::load(path);
  ASSERT_TRUE(m.ok()) << m.message();
  for (int batch : {kCtx, 2 * kCtx, kCtx / 4}) {  // one chunk per pass, two side by side, split
    auto ctx = model::Context::create(
        **m, {.n_ctx = kCtx, .kv_f16 = true, .n_threads = 2, .n_seq_max = 2});
    ASSERT_TRUE(ctx.ok()) << ctx.message();
    PerplexityOptions o{.n_ctx = kCtx, .n_chunks = kChunks, .n_batch = batch, .bos = (*tokens)[0]};
    auto r = perplexity(**ctx, *tokens, o);
    ASSERT_TRUE(r.ok()) << r.message();
    EXPECT_EQ(r->sums.count, kChunks * (kCtx - 1 - kCtx / 2));
    EXPECT_EQ(r->sums.ppl(), want.ppl) << "batch " << batch;
    EXPECT_EQ(r->sums.err(), want.err) << "batch " << batch;
    EXPECT_EQ(r->chunk_ppl, want.chunks) << "batch " << batch;
    EXPECT_EQ(fmt("%.4f", r->sums.ppl()), fmt("%.4lf", want.ppl));
    EXPECT_EQ(fmt("%.5f", r->sums.err()), fmt("%.5lf", want.err));
  }

  // The CLI (our tokenizer, its own context) prints the same line.
  std::ofstream(dir.path("text.txt")) << text;
  auto cli = test::run_command(test::bitnet_binary() + " perplexity -m " + path + " -f " +
                               dir.path("text.txt") + " --ctx 64 --chunks 3 -t 2");
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  const std::string line =
      "Final estimate: PPL = " + fmt("%.4lf", want.ppl) + " +/- " + fmt("%.5lf", want.err) + "\n";
  EXPECT_NE(cli.out.find(line), std::string::npos) << cli.out << "\nwant: " << line;
  EXPECT_EQ(cli.out.rfind("[1]" + fmt("%.4lf", want.chunks[0]) + ",[2]", 0), 0u) << cli.out;
  std::printf("PPL %s +/- %s over %d chunks of %d, identical to llama-perplexity's formula\n",
              fmt("%.4f", want.ppl).c_str(), fmt("%.5f", want.err).c_str(), kChunks, kCtx);
}

INSTANTIATE_TEST_SUITE_P(Tiny, PerplexityParity,
                         ::testing::Values(model::Arch::kBitnet, model::Arch::kLlama),
                         [](const auto& arch_info) {
                           return arch_info.param == model::Arch::kBitnet ? "bitnet" : "llama";
                         });

// Every scored row's logits of a model over the chunks (as perplexity() evaluates them).
std::vector<std::vector<float>> scored_rows(const model::Model& m,
                                            const std::vector<int32_t>& tokens, bool kv_f16) {
  std::vector<std::vector<float>> rows;
  const int64_t nv = m.config().n_vocab;
  for (int c = 0; c < kChunks; ++c) {
    auto ctx = model::Context::create(m, {.n_ctx = kCtx, .kv_f16 = kv_f16, .n_threads = 2});
    std::vector<int32_t> chunk(tokens.begin() + c * kCtx, tokens.begin() + (c + 1) * kCtx);
    chunk[0] = tokens[0];
    std::vector<float> logits;
    EXPECT_TRUE((*ctx)->eval(chunk, true, &logits).ok());
    for (int j = kCtx / 2; j < kCtx - 1; ++j)
      rows.emplace_back(logits.begin() + j * nv, logits.begin() + (j + 1) * nv);
  }
  return rows;
}

TEST(KlDivergence, SelfIsZeroAndAnotherModelMatchesTheExactFormula) {
  test::TempDir dir;
  const std::string pa = synth_model(dir, model::Arch::kBitnet, 7, "a.gguf");
  const std::string pb = synth_model(dir, model::Arch::kBitnet, 8, "b.gguf");
  auto a = model::Model::load(pa);
  auto b = model::Model::load(pb);
  ASSERT_TRUE(a.ok() && b.ok());
  std::vector<int32_t> tokens = {128000};
  for (int i = 1; i < kChunks * kCtx + 5; ++i) tokens.push_back((i * 7919 + 13) % 128000);
  const std::string base_path = dir.path("base.kl");
  PerplexityOptions o{.n_ctx = kCtx, .n_chunks = kChunks, .n_batch = kCtx, .bos = 128000};
  {
    KlBaseHeader h{128256,
                   kCtx,
                   kChunks,
                   kChunks * kCtx,
                   hash_tokens(std::span(tokens).first(kChunks * kCtx)),
                   kCtx - 1 - kCtx / 2};
    auto w = KlBaseWriter::create(base_path, h);
    ASSERT_TRUE(w.ok()) << w.message();
    auto ctx = model::Context::create(**a, {.n_ctx = kCtx, .n_threads = 2});
    ASSERT_TRUE(perplexity(**ctx, tokens, o, w->get()).ok());
    ASSERT_TRUE((*w)->finish().ok());
  }
  auto run = [&](const model::Model& m, bool kv_f16 = true) {
    auto rd = KlBaseReader::open(base_path);
    EXPECT_TRUE(rd.ok()) << rd.message();
    auto ctx = model::Context::create(m, {.n_ctx = kCtx, .kv_f16 = kv_f16, .n_threads = 2});
    auto r = perplexity(**ctx, tokens, o, nullptr, rd->get());
    EXPECT_TRUE(r.ok()) << r.message();
    return *r;
  };
  const PerplexityResult self = run(**a);
  const int64_t n = self.kl.q.count;
  ASSERT_EQ(n, kChunks * (kCtx - 1 - kCtx / 2));
  EXPECT_EQ(self.kl.sum_kld, 0.0);
  EXPECT_EQ(self.kl.kld.back(), 0.0f);
  EXPECT_EQ(self.kl.same_top, n);
  EXPECT_EQ(self.kl.sum_p_diff2, 0.0);
  EXPECT_EQ(self.kl.q.nll, self.kl.base.nll);

  // Another model (seed 8), and the same model with an F32 KV cache (close distributions,
  // top-1 mostly shared): KL(a || q), top-1 agreement and Delta-p from both models' exact logits.
  struct Q {
    const model::Model* model;
    bool kv_f16;
    const char* name;
  };
  for (const Q& q : {Q{b->get(), true, "seed 7 vs 8"}, Q{a->get(), false, "KV F16 vs F32"}}) {
    // Another model: KL(a || b), top-1 agreement and Delta-p from the two models' exact logits.
    const PerplexityResult other = q.model == b->get() ? run(*q.model) : run(*q.model, false);
    const auto ra = scored_rows(**a, tokens, true), rb = scored_rows(*q.model, tokens, q.kv_f16);
    double kld = 0, p_diff = 0, p_diff2 = 0;
    int64_t same = 0;
    for (size_t i = 0; i < ra.size(); ++i) {
      const size_t c = i / (kCtx - 1 - kCtx / 2), j = kCtx / 2 + i % (kCtx - 1 - kCtx / 2);
      const int32_t next = tokens[c * kCtx + j + 1];
      auto log_softmax = [](const std::vector<float>& x) {
        double mx = x[0], s = 0;
        for (float v : x) mx = std::max(mx, static_cast<double>(v));
        for (float v : x) s += std::exp(v - mx);
        std::vector<double> out;
        for (float v : x) out.push_back(v - mx - std::log(s));
        return out;
      };
      const auto la = log_softmax(ra[i]), lb = log_softmax(rb[i]);
      // llama-perplexity's sum: the tokens whose base log-probability is above -16.
      for (size_t t = 0; t < la.size(); ++t)
        if (la[t] > -16) kld += std::exp(la[t]) * (la[t] - lb[t]);
      const double d = std::exp(lb[next]) - std::exp(la[next]);
      p_diff += d;
      p_diff2 += d * d;
      same += std::max_element(ra[i].begin(), ra[i].end()) - ra[i].begin() ==
              std::max_element(rb[i].begin(), rb[i].end()) - rb[i].begin();
    }
    ASSERT_EQ(other.kl.q.count, n);
    EXPECT_GT(kld / n, q.kv_f16 ? 0.01 : 0.0);
    // The codes' rounding (<= 1.3e-4 nats per log-probability on either side) bounds the
    // difference.
    EXPECT_NEAR(other.kl.sum_kld / n, kld / n, 3e-4);
    EXPECT_EQ(other.kl.same_top, same);
    EXPECT_NEAR(other.kl.sum_p_diff / n, p_diff / n, 1e-12);
    EXPECT_NEAR(std::sqrt(other.kl.sum_p_diff2 / n), std::sqrt(p_diff2 / n), 1e-12);
    std::printf("KLD self 0, top-1 100%%; %s: mean KLD %.6f (exact %.6f), top-1 %lld/%lld\n",
                q.name, other.kl.sum_kld / n, kld / n, static_cast<long long>(other.kl.same_top),
                static_cast<long long>(n));
  }
}

class PerplexityCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    model_ = synth_model(*dir_, model::Arch::kBitnet, 7, "m.gguf");
    std::ofstream(dir_->path("text.txt")) << corpus(400);
    std::ofstream(dir_->path("other.txt")) << corpus(500).substr(7);
    std::ofstream(dir_->path("short.txt")) << "alpha river stone";
    std::ofstream(dir_->path("empty.txt"));
  }
  static void TearDownTestSuite() { delete dir_; }
  static test::CommandResult ppl(const std::string& args) {
    return test::run_command(test::bitnet_binary() + " perplexity -m " + model_ + " -t 2 " + args);
  }
  // Exit code 1 and one line on stderr containing `what`.
  static void expect_error(const std::string& args, const std::string& what) {
    auto r = ppl(args);
    EXPECT_EQ(r.exit_code, 1) << args << ": " << r.err;
    EXPECT_NE(r.err.find(what), std::string::npos) << args << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << ": " << r.err;
  }
  static test::TempDir* dir_;
  static std::string model_;
};
test::TempDir* PerplexityCli::dir_ = nullptr;
std::string PerplexityCli::model_;

TEST_F(PerplexityCli, JsonAndKlRoundTrip) {
  const std::string text = " -f " + dir_->path("text.txt") + " --ctx 64 --chunks 2";
  auto r = ppl(text + " --json --kl-divergence-base " + dir_->path("base.kl"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["chunks"], 2);
  EXPECT_EQ(j["tokens_scored"], 62);
  EXPECT_EQ(j["chunk_ppl"].size(), 2u);
  EXPECT_GT(j["tok_s"].get<double>(), 0.0);
  auto k = ppl(text + " --json --kl-divergence " + dir_->path("base.kl"));
  ASSERT_EQ(k.exit_code, 0) << k.err;
  auto kj = nlohmann::json::parse(k.out);
  EXPECT_EQ(kj["kl"]["mean_kld"], 0.0);
  EXPECT_EQ(kj["kl"]["same_top"], 1.0);
  EXPECT_EQ(kj["ppl"], j["ppl"]);
  auto t =
      ppl(" -f " + dir_->path("text.txt") + " --ctx 64 --kl-divergence " + dir_->path("base.kl"));
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_NE(t.out.find("Mean    KLD:   0.000000"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("Same top p: 100.000 %"), std::string::npos) << t.out;
}

TEST_F(PerplexityCli, BadInputIsAOneLineError) {
  const std::string text = " -f " + dir_->path("text.txt");
  expect_error(" -f " + dir_->path("empty.txt"), "is empty");
  expect_error(" -f " + dir_->path("missing.txt"), "cannot read the text file");
  expect_error(" -f " + dir_->path("short.txt") + " --ctx 64", "needs at least 128");
  expect_error(text + " --ctx 0", "--ctx must be at least 4");
  expect_error(text + " --chunks -1", "--chunks must be positive");
  expect_error(text + " --ctx 64 --batch 100", "--batch 100 must be below --ctx 64");
  expect_error(text + " --ctx 1000000", "exceeds the model's context length");
  expect_error(text + " --ctx 64 --kl-divergence " + dir_->path("nothing.kl"),
               "cannot open KL base");
  expect_error(text + " --ctx 64 --kl-divergence " + dir_->path("text.txt"),
               "is not a bitnet KL base file");
  // A base of this text, then used with another text, another --ctx, another vocabulary.
  ASSERT_EQ(ppl(text + " --ctx 64 --chunks 2 --kl-divergence-base " + dir_->path("b.kl")).exit_code,
            0);
  expect_error(" -f " + dir_->path("other.txt") + " --ctx 64 --kl-divergence " + dir_->path("b.kl"),
               "another text or tokenizer");
  expect_error(text + " --ctx 32 --kl-divergence " + dir_->path("b.kl"), "written with --ctx 64");
  const std::string other_vocab =
      synth_model(*dir_, model::Arch::kBitnet, 7, "gpt2.gguf", "ggml-vocab-gpt-2.gguf");
  auto r = test::run_command(test::bitnet_binary() + " perplexity -m " + other_vocab + text +
                             " --ctx 64 -t 2 --kl-divergence " + dir_->path("b.kl"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("vocabulary of 128256 tokens"), std::string::npos) << r.err;
  // A truncated base.
  std::filesystem::resize_file(dir_->path("b.kl"), 1000);
  expect_error(text + " --ctx 64 --kl-divergence " + dir_->path("b.kl"), "truncated");
}

}  // namespace
}  // namespace bitnet::eval
