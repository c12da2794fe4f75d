// The official 2B4T shape (30 blocks, d=2560, f=6912, 20/5 heads, vocab 128256), traced for one
// token: embeddings, every op of all 30 blocks, final norm and logits, with their shapes.
// Labeled `long`: writing the ~1.2 GB synthetic model takes most of the time.
#include <gtest/gtest.h>

#include "core/paths.h"
#include "model/context.h"
#include "model/observe/trace_observer.h"
#include "synth/synth.h"
#include "trace/reader.h"
#include "trace/writer.h"
#include "trace_test_util.h"

namespace bitnet::trace {
namespace {

TEST(TraceOfficialShape, OneTokenRecordsEveryOpOfAllThirtyBlocks) {
  if (!kTraceCompiled) GTEST_SKIP() << "tracing compiled out";
  test::TempDir dir;
  synth::SynthOptions so;
  so.config = *synth::preset_config("2b4t", model::Arch::kBitnetB158);
  so.config.n_ctx_train = 64;  // the KV cache of 4096 positions is not needed for one token
  so.vocab_path = reference_vocab_path("ggml-vocab-llama-bpe.gguf");
  so.pre_tokenizer = "none";
  const std::string path = dir.path("2b4t.gguf");
  ASSERT_TRUE(synth::write_synthetic_model(so, path).ok());
  auto m = model::Model::load(path);
  ASSERT_TRUE(m.ok()) << m.message();
  const auto& c = (*m)->config();
  ASSERT_EQ(c.n_layers, 30u);
  ASSERT_EQ(c.n_embd, 2560u);
  auto s = model::Context::create(**m, {.n_ctx = 64, .n_threads = 2});
  ASSERT_TRUE(s.ok());

  WriterOptions o;
  o.dir = dir.path("trace");
  auto w = Writer::open(o);
  ASSERT_TRUE(w.ok());
  model::TraceObserver tracer(w->get());
  (*s)->set_observer(&tracer);
  std::vector<float> logits;
  const int32_t bos = 128000;
  ASSERT_TRUE((*s)->eval(std::span(&bos, 1), false, &logits).ok());
  ASSERT_TRUE((*w)->finish({}).ok());

  auto t = read_trace(o.dir);
  ASSERT_TRUE(t.ok()) << t.message();
  auto recs = test::by_name(*t);
  EXPECT_EQ(t->records.size(), 1u + 30 * (18 + 4) + 2);
  auto shape_of = [&](const std::string& name) {
    EXPECT_TRUE(recs.count(name)) << name;
    return recs[name].shape;
  };
  using S = std::vector<int64_t>;
  EXPECT_EQ(shape_of("t0/embeddings"), S{2560});
  for (int l = 0; l < 30; ++l) {
    for (size_t i = 0; i < kOpNames.size(); ++i) {
      const Op op = static_cast<Op>(i);
      if (!is_block_op(op)) continue;
      EXPECT_TRUE(recs.count(point_name(0, l, op))) << point_name(0, l, op);
      if (feeds_bitlinear(op)) {
        EXPECT_TRUE(recs.count(point_name(0, l, op, Kind::kQ8)));
      }
    }
    const std::string b = "t0/blk" + std::to_string(l) + "/";
    EXPECT_EQ(shape_of(b + "q_proj"), S{2560});
    EXPECT_EQ(shape_of(b + "k_rope"), S{640});
    EXPECT_EQ(shape_of(b + "attn_scores_softmax"), (S{20, 1}));
    EXPECT_EQ(shape_of(b + "ffn_act"), S{6912});
    EXPECT_EQ(recs[b + "ffn_sub_norm/q8"].shape, S{6912});
    EXPECT_GT(recs[b + "ffn_residual"].stats.rms, 0.0);
  }
  EXPECT_EQ(shape_of("t0/final_norm"), S{2560});
  EXPECT_EQ(shape_of("t0/logits"), S{128256});
  EXPECT_EQ(recs["t0/logits"].blake3, blake3_hex(logits.data(), logits.size() * 4));
}

}  // namespace
}  // namespace bitnet::trace
