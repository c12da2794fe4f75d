// The forward pass traced: a traced run gives bit-identical logits and tokens, records every
// op at every position (prefill and decode), and its records hold the values the pass computed.
#include <gtest/gtest.h>

#include <cstring>

#include "core/paths.h"
#include "generate/generator.h"
#include "model/context.h"
#include "model/observe/trace_observer.h"
#include "synth/synth.h"
#include "trace/reader.h"
#include "trace/writer.h"
#include "trace_test_util.h"

namespace bitnet::trace {
namespace {

std::string make_model(const test::TempDir& dir, gguf::TensorType wt) {
  synth::SynthOptions o;
  o.config = *synth::preset_config("tiny", model::Arch::kBitnetB158);
  o.weight_type = wt;
  o.vocab_path = reference_vocab_path("ggml-vocab-llama-bpe.gguf");
  const std::string path = dir.path(std::string(gguf::tensor_type_name(wt)) + ".gguf");
  auto st = synth::write_synthetic_model(o, path);
  EXPECT_TRUE(st.ok()) << st.message();
  return path;
}

const std::vector<int32_t> kPrompt = {128000, 9906, 1917};

struct TracedRun {
  generate::GenerateResult result;
  int64_t n_records = 0;
};

// A greedy run of `n` tokens, traced into `trace_dir` unless it is empty.
TracedRun greedy_run(const std::string& path, int n, const std::string& trace_dir,
                     ValuesFormat values = ValuesFormat::kNone, const std::string& filter = "",
                     const std::string& positions = "") {
  auto m = model::Model::load(path);
  EXPECT_TRUE(m.ok()) << m.message();
  auto s = model::Context::create(**m, {.n_ctx = 64, .n_threads = 2});
  auto tok = tokenizer::Tokenizer::from_gguf((*m)->file(), {});
  EXPECT_TRUE(tok.ok()) << tok.message();
  std::unique_ptr<Writer> w;
  std::unique_ptr<model::TraceObserver> tracer;
  if (!trace_dir.empty()) {
    WriterOptions o;
    o.dir = trace_dir;
    o.values = values;
    o.selection = *Selection::parse(filter, positions);
    auto opened = Writer::open(o);
    EXPECT_TRUE(opened.ok()) << opened.message();
    w = std::move(*opened);
    tracer = std::make_unique<model::TraceObserver>(w.get());
    (*s)->set_observer(tracer.get());
  }
  generate::GenerateOptions go;
  go.max_tokens = n;
  go.sampler.greedy = true;
  go.stop_at_eog = false;
  go.collect_logits = true;
  auto r = generate::generate(**s, *tok, kPrompt, go);
  EXPECT_TRUE(r.ok()) << r.message();
  TracedRun run{*r, 0};
  if (w) {
    EXPECT_TRUE(w->finish({}).ok());
    run.n_records = w->n_records();
  }
  return run;
}

TEST(TraceSession, TracedRunIsBitIdentical) {
  if (!kTraceCompiled) GTEST_SKIP() << "tracing compiled out";
  test::TempDir dir;
  for (auto wt : {gguf::TensorType::I2_S, gguf::TensorType::TQ2_0}) {
    const auto path = make_model(dir, wt);
    const TracedRun plain = greedy_run(path, 6, "");
    const TracedRun traced = greedy_run(path, 6, dir.path("t"), ValuesFormat::kNpy);
    EXPECT_GT(traced.n_records, 0);
    EXPECT_EQ(plain.result.generated, traced.result.generated) << gguf::tensor_type_name(wt);
    ASSERT_EQ(plain.result.logits.size(), traced.result.logits.size());
    EXPECT_EQ(0, std::memcmp(plain.result.logits.data(), traced.result.logits.data(),
                             plain.result.logits.size() * 4))
        << gguf::tensor_type_name(wt);
  }
}

TEST(TraceSession, EveryOpAtEveryPositionHoldsTheComputedValues) {
  if (!kTraceCompiled) GTEST_SKIP() << "tracing compiled out";
  test::TempDir dir;
  const auto path = make_model(dir, gguf::TensorType::I2_S);
  const std::string tdir = dir.path("t");
  // 3 prompt tokens + 4 generated: positions 0-2 in the prefill batch, 3-5 decoded one by one
  // (the 4th generated token is never evaluated).
  const TracedRun run = greedy_run(path, 4, tdir, ValuesFormat::kNpy);
  auto t = read_trace(tdir);
  ASSERT_TRUE(t.ok()) << t.message();
  auto recs = test::by_name(*t);
  const int n_pos = 6, n_layers = 2;
  // Per position: embeddings, 18 ops and 4 quantized inputs per block, final_norm, logits.
  EXPECT_EQ(run.n_records, n_pos * (1 + n_layers * (18 + 4) + 2));
  EXPECT_EQ(static_cast<int>(Op::kCount), 21);
  for (int pos = 0; pos < n_pos; ++pos) {
    for (int i = 0; i < static_cast<int>(Op::kCount); ++i) {
      const Op op = static_cast<Op>(i);
      for (int layer = 0; layer < (is_block_op(op) ? n_layers : 1); ++layer) {
        const int l = is_block_op(op) ? layer : -1;
        EXPECT_TRUE(recs.count(point_name(pos, l, op))) << point_name(pos, l, op);
        if (feeds_bitlinear(op)) {
          EXPECT_TRUE(recs.count(point_name(pos, l, op, Kind::kQ8)))
              << point_name(pos, l, op, Kind::kQ8);
        }
      }
    }
    EXPECT_EQ(recs[point_name(pos, 0, Op::kAttnScoresSoftmax)].shape,
              (std::vector<int64_t>{4, pos + 1}));
    EXPECT_EQ(recs[point_name(pos, 1, Op::kKProj)].shape, (std::vector<int64_t>{128}));
    EXPECT_EQ(recs[point_name(pos, 1, Op::kGateProj)].shape, (std::vector<int64_t>{512}));
    EXPECT_EQ(recs[point_name(pos, 0, Op::kAttnNorm, Kind::kQ8)].scales.size(),
              1u);  // per token (I2_S)
    // The traced logits are the logits the run produced (the prefill's first rows come from
    // the side computation, and still match what an all-logits pass returns).
    const int64_t nv = 128256;
    const std::string h = blake3_hex(run.result.logits.data() + pos * nv, nv * 4);
    EXPECT_EQ(recs[point_name(pos, -1, Op::kLogits)].blake3, h) << "position " << pos;
  }
  // The values stored for the last block output are those hashed, and b3sum agrees.
  ValueStore store(tdir);
  const Record& out = recs["t5/blk1/ffn_residual"];
  auto v = store.load(out);
  ASSERT_TRUE(v.ok()) << v.message();
  EXPECT_EQ(test::b3sum_of(v->data(), v->size() * 4), out.blake3);
}

TEST(TraceSession, FilterAndPositionsSelectPoints) {
  if (!kTraceCompiled) GTEST_SKIP() << "tracing compiled out";
  test::TempDir dir;
  const auto path = make_model(dir, gguf::TensorType::TQ2_0);
  const std::string tdir = dir.path("t");
  const TracedRun run = greedy_run(path, 3, tdir, ValuesFormat::kNone,
                                   "*/blk1/ffn_norm/q8,*/logits,*/final_norm", "1,3-");
  auto t = read_trace(tdir);
  ASSERT_TRUE(t.ok());
  std::set<std::string> names;
  for (const auto& r : t->records) names.insert(r.name());
  EXPECT_EQ(names, (std::set<std::string>{"t1/blk1/ffn_norm/q8", "t1/final_norm", "t1/logits",
                                          "t3/blk1/ffn_norm/q8", "t3/final_norm", "t3/logits",
                                          "t4/blk1/ffn_norm/q8", "t4/final_norm", "t4/logits"}));
  // TQ2_0: Q8_K blocks of 256 over d = 256.
  EXPECT_EQ(test::by_name(*t)["t3/blk1/ffn_norm/q8"].grouping, QuantGrouping::kQ8K);
}

}  // namespace
}  // namespace bitnet::trace
