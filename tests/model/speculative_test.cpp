// Speculative decoding (generate/generator.h: DraftOptions, ngram_draft;
// Sampler::sample_with_draft):
//  - the n-gram proposal: the longest recent match, continued periodically past the end;
//  - greedy generation with drafts gives the tokens plain decoding gives, on the sweep prompts,
//    and leaves the KV cache as plain decoding does (a second turn continues identically);
//  - where the output repeats itself, steps take several tokens;
//  - sampling with drafts keeps the distribution: sample_with_draft's tokens over many draws
//    match the probabilities sample() draws from (chi-square), whatever the proposal.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "crossval/crossval.h"
#include "generate/generator.h"
#include "generate/sampler.h"
#include "model/context.h"
#include "synth/synth.h"
#include "test_util.h"

namespace bitnet::generate {
namespace {

TEST(NgramDraft, LongestRecentMatchContinuedPeriodically) {
  DraftOptions o{.max = 5, .ngram_min = 2, .ngram_max = 3};
  // "1 2 3 9 1 2 3 7 | 1 2 3": the 3-gram last occurred before 7.
  EXPECT_EQ(ngram_draft(std::vector<int32_t>{1, 2, 3, 9, 1, 2, 3, 7, 8, 1, 2, 3}, o),
            (std::vector<int32_t>{7, 8, 1, 2, 3}));
  // A repeated token: the copy runs into the end and goes on from its own proposal.
  EXPECT_EQ(ngram_draft(std::vector<int32_t>{4, 5, 5, 5}, o),
            (std::vector<int32_t>{5, 5, 5, 5, 5}));
  // A cycle of two.
  EXPECT_EQ(ngram_draft(std::vector<int32_t>{1, 2, 1, 2}, o),
            (std::vector<int32_t>{1, 2, 1, 2, 1}));
  // No earlier occurrence, or drafting off.
  EXPECT_TRUE(ngram_draft(std::vector<int32_t>{1, 2, 3, 4}, o).empty());
  EXPECT_TRUE(ngram_draft(std::vector<int32_t>{5, 5, 5}, {.max = 0}).empty());
  EXPECT_TRUE(ngram_draft(std::vector<int32_t>{}, o).empty());
}

class SpeculativeModel : public ::testing::Test {
 protected:
  void SetUp() override {
    synth::SynthOptions o;
    o.config = *synth::preset_config("tiny", model::Arch::kBitnetB158);
    o.config.n_ctx_train = 1024;
    o.vocab_path = std::string(BITNET_REFERENCE_DIR) + "/models/ggml-vocab-llama-bpe.gguf";
    o.seed = 3;
    path_ = dir_.path("tiny.gguf");
    ASSERT_TRUE(synth::write_synthetic_model(o, path_).ok());
    auto m = model::Model::load(path_);
    ASSERT_TRUE(m.ok()) << m.message();
    model_ = std::move(*m);
    auto meta = gguf::File::open(path_);
    ASSERT_TRUE(meta.ok());
    auto t = tokenizer::Tokenizer::from_gguf(*meta);
    ASSERT_TRUE(t.ok());
    tok_ = std::make_unique<tokenizer::Tokenizer>(std::move(*t));
  }
  std::unique_ptr<model::Context> context() {
    auto c = model::Context::create(*model_, {.n_ctx = 512, .kv_f16 = true, .n_threads = 2});
    EXPECT_TRUE(c.ok());
    return std::move(*c);
  }
  bitnet::test::TempDir dir_;
  std::string path_;
  std::unique_ptr<model::Model> model_;
  std::unique_ptr<tokenizer::Tokenizer> tok_;
};

TEST_F(SpeculativeModel, GreedyOutputAndCacheAreThoseOfPlainDecoding) {
  auto plain_ctx = context(), draft_ctx = context();
  int drafted = 0;
  for (const crossval::Case& c : crossval::default_sweep_cases()) {
    SCOPED_TRACE(c.prompt);
    GenerateOptions plain;
    plain.sampler.greedy = true;
    plain.stop_at_eog = false;
    plain.max_tokens = 48;
    GenerateOptions drafts = plain;
    drafts.draft.max = 6;
    plain_ctx->kv_cache().clear();
    draft_ctx->kv_cache().clear();
    const std::vector<int32_t> prompt = tok_->encode(c.prompt, {.add_special = true});
    auto a = generate(*plain_ctx, *tok_, prompt, plain);
    auto b = generate(*draft_ctx, *tok_, prompt, drafts);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->generated, b->generated);
    EXPECT_EQ(a->text, b->text);
    EXPECT_EQ(plain_ctx->n_past(), draft_ctx->n_past());
    drafted += b->timings.n_drafted;
    // A second turn on top of what each cache holds continues identically.
    const std::vector<int32_t> more = tok_->encode(" and then", {.add_special = false});
    auto a2 = generate(*plain_ctx, *tok_, more, plain);
    auto b2 = generate(*draft_ctx, *tok_, more, drafts);
    ASSERT_TRUE(a2.ok() && b2.ok());
    EXPECT_EQ(a2->generated, b2->generated);
  }
  EXPECT_GT(drafted, 0);
}

TEST_F(SpeculativeModel, RepeatingTextIsMostlyAccepted) {
  // The tiny model's greedy output soon repeats itself: with drafts, the same 200 tokens come
  // out in fewer steps than tokens.
  auto ctx = context();
  GenerateOptions plain;
  plain.sampler.greedy = true;
  plain.stop_at_eog = false;
  plain.max_tokens = 200;
  const std::vector<int32_t> prompt = tok_->encode("Count: ", {.add_special = true});
  auto a = generate(*ctx, *tok_, prompt, plain);
  ASSERT_TRUE(a.ok());
  ctx->kv_cache().clear();
  GenerateOptions drafts = plain;
  drafts.draft.max = 8;
  auto b = generate(*ctx, *tok_, prompt, drafts);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(a->generated, b->generated);
  std::printf("tiny model, 200 greedy tokens: %d of %d proposals kept, %d steps\n",
              b->timings.n_accepted, b->timings.n_drafted, b->timings.n_steps);
  EXPECT_LT(b->timings.n_steps, 199);  // some steps took more than one token
}

TEST(SampleWithDraft, KeepsTheDistribution) {
  // Logits over 6 tokens; top-k 5, temperature 0.9: the distribution sample() draws from.
  const std::vector<float> logits = {1.0f, 2.5f, 0.3f, 2.0f, -1.0f, 1.7f};
  SamplerOptions o;
  o.temperature = 0.9f;
  o.top_k = 5;
  o.top_p = 1.0f;
  o.min_p = 0.0f;
  std::vector<double> p(6, 0.0);
  {
    double sum = 0;
    for (int i = 0; i < 6; ++i) {
      if (i == 4) continue;  // dropped by top-k
      p[static_cast<size_t>(i)] = std::exp((logits[static_cast<size_t>(i)] - 2.5) / 0.9);
      sum += p[static_cast<size_t>(i)];
    }
    for (double& x : p) x /= sum;
  }
  constexpr int kDraws = 60000;
  for (const int32_t draft : {1, 3, 4, 0}) {  // likely, less likely, impossible, unlikely
    o.seed = 100 + static_cast<uint64_t>(draft);
    Sampler s(o);
    std::vector<int> count(6, 0);
    for (int i = 0; i < kDraws; ++i)
      ++count[static_cast<size_t>(s.sample_with_draft(logits, {}, draft))];
    double chi2 = 0;
    for (int i = 0; i < 6; ++i) {
      const double e = p[static_cast<size_t>(i)] * kDraws;
      if (e == 0) {
        EXPECT_EQ(count[static_cast<size_t>(i)], 0) << "token " << i;
        continue;
      }
      chi2 += (count[static_cast<size_t>(i)] - e) * (count[static_cast<size_t>(i)] - e) / e;
    }
    // 4 degrees of freedom: P(chi2 > 25) ~ 5e-5.
    EXPECT_LT(chi2, 25.0) << "draft " << draft;
  }
  // Greedy: the argmax whatever the proposal.
  SamplerOptions g;
  g.greedy = true;
  Sampler sg(g);
  EXPECT_EQ(sg.sample_with_draft(logits, {}, 3), 1);
}

}  // namespace
}  // namespace bitnet::generate
