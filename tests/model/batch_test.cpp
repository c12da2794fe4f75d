// Batches of sequences and the per-sequence KV cache: a sequence's logits inside a batch of 8
// mixed sequences (prompts beside decode steps, different lengths and positions) are
// bit-identical to the same sequence evaluated alone; the cache grows in blocks, cuts suffixes,
// forks prefixes and rejects what it cannot hold; steppers driven together in one batch generate
// what generate() generates for each alone.
#include <gtest/gtest.h>

#include <cstring>
#include <map>

#include "generate/generator.h"
#include "model/context.h"
#include "synth/synth.h"
#include "test_util.h"

namespace bitnet::model {
namespace {

std::string make_model(const test::TempDir& dir, gguf::TensorType wt, Arch arch) {
  synth::SynthOptions o;
  o.config = *synth::preset_config("tiny", arch);
  o.config.n_ctx_train = 1024;
  o.weight_type = wt;
  o.vocab_path = std::string(BITNET_REFERENCE_DIR) + "/models/ggml-vocab-llama-bpe.gguf";
  o.seed = 5;
  const std::string path = dir.path(std::string(gguf::tensor_type_name(wt)) + ".gguf");
  auto st = synth::write_synthetic_model(o, path);
  EXPECT_TRUE(st.ok()) << st.message();
  return path;
}

// Sequence i: a prompt of its own length and tokens, then decode tokens fed one at a time.
struct Plan {
  std::vector<int32_t> prompt, decode;
  int start_step = 0;  // the batch step its prompt goes in
};

std::vector<Plan> plans(int n) {
  std::vector<Plan> p(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    Plan& s = p[static_cast<size_t>(i)];
    const int len = 1 + (i * 5) % 9;
    for (int k = 0; k < len; ++k) s.prompt.push_back(k == 0 ? 128000 : 1000 + 97 * i + k);
    for (int k = 0; k < 4 + i % 3; ++k) s.decode.push_back(500 + 131 * i + 7 * k);
    s.start_step = i / 2;
  }
  return p;
}

using LogitsByPos = std::map<int, std::vector<float>>;

// One sequence alone in its own context: the prompt in one batch, then one token at a time.
LogitsByPos alone(const Model& m, const Plan& p, bool kv_f16) {
  auto ctx = Context::create(m, {.n_ctx = 64, .kv_f16 = kv_f16, .n_threads = 2});
  EXPECT_TRUE(ctx.ok());
  const size_t nv = m.config().n_vocab;
  LogitsByPos out;
  std::vector<float> l;
  EXPECT_TRUE((*ctx)->eval(p.prompt, true, &l).ok());
  for (size_t i = 0; i < p.prompt.size(); ++i)
    out[static_cast<int>(i)].assign(l.begin() + i * nv, l.begin() + (i + 1) * nv);
  int pos = static_cast<int>(p.prompt.size());
  for (int32_t t : p.decode) {
    EXPECT_TRUE((*ctx)->eval(std::span(&t, 1), false, &l).ok());
    out[pos++] = l;
  }
  return out;
}

void expect_batched_equals_alone(gguf::TensorType wt, Arch arch, bool kv_f16) {
  test::TempDir dir;
  auto m = Model::load(make_model(dir, wt, arch));
  ASSERT_TRUE(m.ok()) << m.message();
  const int n_seq = 8;
  const std::vector<Plan> ps = plans(n_seq);
  auto ctx =
      Context::create(**m, {.n_ctx = 64, .kv_f16 = kv_f16, .n_threads = 2, .n_seq_max = n_seq});
  ASSERT_TRUE(ctx.ok()) << ctx.message();
  const size_t nv = (*m)->config().n_vocab;
  std::vector<LogitsByPos> got(n_seq);
  std::vector<size_t> fed(n_seq, 0);  // decode tokens fed so far
  int mixed_steps = 0;
  for (int step = 0;; ++step) {
    Batch b;
    bool prefill = false, decode = false;
    for (int i = 0; i < n_seq; ++i) {
      const Plan& p = ps[static_cast<size_t>(i)];
      if (step == p.start_step) {
        b.add_sequence(i, 0, p.prompt, true);
        prefill = true;
      } else if (step > p.start_step && fed[static_cast<size_t>(i)] < p.decode.size()) {
        const int pos = static_cast<int>(p.prompt.size() + fed[static_cast<size_t>(i)]);
        b.add(p.decode[fed[static_cast<size_t>(i)]++], i, pos, true);
        decode = true;
      }
    }
    if (b.empty()) break;
    mixed_steps += prefill && decode;
    std::vector<float> l;
    auto st = (*ctx)->decode(b, &l);
    ASSERT_TRUE(st.ok()) << st.message();
    ASSERT_EQ(l.size(), static_cast<size_t>(b.size()) * nv);
    for (int r = 0; r < b.size(); ++r) {
      const BatchRow& row = b.rows()[static_cast<size_t>(r)];
      got[static_cast<size_t>(row.seq)][row.pos].assign(l.begin() + r * nv,
                                                        l.begin() + (r + 1) * nv);
    }
  }
  EXPECT_GE(mixed_steps, 3);  // prompts really were evaluated beside other sequences' decode rows
  for (int i = 0; i < n_seq; ++i) {
    const LogitsByPos want = alone(**m, ps[static_cast<size_t>(i)], kv_f16);
    ASSERT_EQ(got[static_cast<size_t>(i)].size(), want.size()) << "sequence " << i;
    EXPECT_EQ((*ctx)->n_past(i), static_cast<int>(want.size()));
    for (const auto& [pos, row] : want) {
      const auto& g = got[static_cast<size_t>(i)][pos];
      ASSERT_EQ(g.size(), row.size());
      EXPECT_EQ(0, std::memcmp(g.data(), row.data(), row.size() * 4))
          << gguf::tensor_type_name(wt) << " sequence " << i << " position " << pos;
    }
  }
}

TEST(Batch, EightMixedSequencesBitIdenticalToAloneI2s) {
  expect_batched_equals_alone(gguf::TensorType::I2_S, Arch::kBitnetB158, true);
}

TEST(Batch, EightMixedSequencesBitIdenticalToAloneTq2F32Cache) {
  expect_batched_equals_alone(gguf::TensorType::TQ2_0, Arch::kBitnet, false);
}

TEST(Batch, BadBatchesGiveClearErrors) {
  test::TempDir dir;
  auto m = Model::load(make_model(dir, gguf::TensorType::I2_S, Arch::kBitnetB158));
  ASSERT_TRUE(m.ok());
  auto ctx = Context::create(**m, {.n_ctx = 8, .n_threads = 1, .n_seq_max = 2});
  ASSERT_TRUE(ctx.ok());
  std::vector<float> l;
  auto expect_error = [&](const Batch& b, const std::string& what) {
    auto st = (*ctx)->decode(b, &l);
    ASSERT_FALSE(st.ok()) << what;
    EXPECT_NE(st.message().find(what), std::string::npos) << st.message();
  };
  expect_error(Batch{}, "no rows");
  Batch b;
  b.add(1, 2, 0, true);
  expect_error(b, "sequence id 2 is out of range");
  b.clear();
  b.add(1, 0, 1, true);  // position 0 missing
  expect_error(b, "continues at position 0");
  b.clear();
  b.add(1, 1, 0, true);
  b.add(2, 1, 0, true);  // the same position twice
  expect_error(b, "continues at position 1");
  b.clear();
  b.add(128256, 0, 0, true);
  expect_error(b, "outside the vocabulary");
  b.clear();
  const std::vector<int32_t> nine(9, 100);
  b.add_sequence(0, 0, nine, false);
  expect_error(b, "context full");
  EXPECT_EQ((*ctx)->n_past(0), 0);  // nothing was evaluated
  EXPECT_EQ((*ctx)->n_past(1), 0);
}

TEST(KvCache, GrowsInBlocksAndFollowsThePositionsInUse) {
  test::TempDir dir;
  auto m = Model::load(make_model(dir, gguf::TensorType::I2_S, Arch::kBitnetB158));
  ASSERT_TRUE(m.ok());
  const ModelConfig& c = (*m)->config();
  auto ctx = Context::create(**m, {.n_ctx = 1000, .n_threads = 2});
  ASSERT_TRUE(ctx.ok());
  KvCache& kv = (*ctx)->kv_cache();
  EXPECT_EQ(kv.allocated_bytes(), 0u);                        // nothing before the first position
  const size_t per_pos = 2 * c.n_layers * c.n_embd_kv() * 2;  // K and V, f16
  std::vector<int32_t> ids(300);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(100 + i);
  std::vector<float> l, grown;
  ASSERT_TRUE((*ctx)->eval(std::span(ids).first(10), false, &l).ok());
  EXPECT_EQ(kv.allocated_bytes(), 64 * per_pos);
  // Past the first block: the positions already held are kept when the storage grows.
  ASSERT_TRUE((*ctx)->eval(std::span(ids).subspan(10), false, &grown).ok());
  EXPECT_EQ(kv.allocated_bytes(), 320 * per_pos);  // 300, in whole blocks
  auto fresh = Context::create(**m, {.n_ctx = 1000, .n_threads = 2});
  ASSERT_TRUE((*fresh)->eval(ids, false, &l).ok());
  EXPECT_EQ(0, std::memcmp(l.data(), grown.data(), l.size() * 4));
  kv.release();
  EXPECT_EQ(kv.allocated_bytes(), 0u);
  EXPECT_EQ((*ctx)->n_past(), 0);
}

TEST(KvCache, RemoveSuffixAndForkPrefixGiveTheSameLogits) {
  test::TempDir dir;
  auto m = Model::load(make_model(dir, gguf::TensorType::TQ2_0, Arch::kBitnet));
  ASSERT_TRUE(m.ok());
  auto ctx = Context::create(**m, {.n_ctx = 32, .n_threads = 2, .n_seq_max = 3});
  ASSERT_TRUE(ctx.ok());
  KvCache& kv = (*ctx)->kv_cache();
  const std::vector<int32_t> a = {128000, 9906, 1917, 11, 1234, 5678};
  const std::vector<int32_t> b = {128000, 9906, 1917, 11, 4321};
  std::vector<float> la, lb, l;
  ASSERT_TRUE((*ctx)->eval(a, false, &la, 0).ok());
  // Fork: sequence 1 takes sequence 0's first 4 positions and continues with b's tail.
  ASSERT_TRUE(kv.copy(0, 1, 0, 4).ok());
  EXPECT_EQ((*ctx)->n_past(1), 4);
  ASSERT_TRUE((*ctx)->eval(std::span(b).subspan(4), false, &l, 1).ok());
  ASSERT_TRUE((*ctx)->eval(b, false, &lb, 2).ok());  // b from scratch
  EXPECT_EQ(0, std::memcmp(l.data(), lb.data(), l.size() * 4));
  // Going back: sequence 0 drops its last two positions and re-evaluates them.
  ASSERT_TRUE(kv.remove(0, 4).ok());
  EXPECT_EQ((*ctx)->n_past(0), 4);
  ASSERT_TRUE((*ctx)->eval(std::span(a).subspan(4), false, &l, 0).ok());
  EXPECT_EQ(0, std::memcmp(l.data(), la.data(), l.size() * 4));
  // What the cache cannot do is refused plainly.
  auto st = kv.remove(0, 1, 3);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("only a suffix"), std::string::npos) << st.message();
  EXPECT_FALSE(kv.copy(0, 1, 0, 99).ok());
  EXPECT_FALSE(kv.copy(0, 2, 6, 6).ok());  // sequence 2 holds 5 positions: a hole at 5
  EXPECT_FALSE(kv.remove(7, 0).ok());
  kv.clear();
  EXPECT_EQ((*ctx)->n_past(0) + (*ctx)->n_past(1) + (*ctx)->n_past(2), 0);
}

// Steppers of two sequences driven together, their next tokens evaluated in one batch per step
// (what a server does), generate exactly what generate() gives each of them alone.
TEST(Stepper, TwoSequencesInOneBatchGenerateWhatEachGeneratesAlone) {
  test::TempDir dir;
  const std::string path = make_model(dir, gguf::TensorType::I2_S, Arch::kBitnetB158);
  auto m = Model::load(path);
  ASSERT_TRUE(m.ok());
  auto tok = tokenizer::Tokenizer::from_gguf((*m)->file(), {});
  ASSERT_TRUE(tok.ok());
  const std::vector<std::vector<int32_t>> prompts = {{128000, 9906, 1917}, {128000, 2028}};
  generate::GenerateOptions go;
  go.max_tokens = 6;
  go.sampler.seed = 7;  // sampled, not greedy: the samplers' states must stay per sequence
  go.sampler.temperature = 1.5f;
  go.stop_at_eog = false;
  std::vector<generate::GenerateResult> want;
  for (const auto& p : prompts) {
    auto ctx = Context::create(**m, {.n_ctx = 32, .n_threads = 2});
    auto r = generate::generate(**ctx, *tok, p, go);
    ASSERT_TRUE(r.ok()) << r.message();
    want.push_back(*r);
  }
  auto ctx = Context::create(**m, {.n_ctx = 32, .n_threads = 2, .n_seq_max = 2});
  std::vector<std::unique_ptr<generate::Stepper>> steppers;
  Batch batch;
  for (int s = 0; s < 2; ++s) {
    steppers.push_back(
        std::make_unique<generate::Stepper>(*tok, go, prompts[static_cast<size_t>(s)]));
    batch.add_sequence(s, 0, prompts[static_cast<size_t>(s)], false);
  }
  const size_t nv = (*m)->config().n_vocab;
  std::vector<float> logits;
  while (!batch.empty()) {
    ASSERT_TRUE((*ctx)->decode(batch, &logits).ok());
    Batch next;
    for (int r = 0, k = 0; r < batch.size(); ++r) {
      const BatchRow& row = batch.rows()[static_cast<size_t>(r)];
      if (!row.logits) continue;
      const auto t = steppers[static_cast<size_t>(row.seq)]->next(
          std::span(logits.data() + static_cast<size_t>(k++) * nv, nv));
      if (t) next.add(*t, row.seq, row.pos + 1, true);
    }
    batch = next;
  }
  for (int s = 0; s < 2; ++s) {
    const generate::GenerateResult& got = steppers[static_cast<size_t>(s)]->result();
    EXPECT_TRUE(steppers[static_cast<size_t>(s)]->done());
    EXPECT_EQ(got.generated, want[static_cast<size_t>(s)].generated) << "sequence " << s;
    EXPECT_EQ(got.text, want[static_cast<size_t>(s)].text);
    EXPECT_EQ(got.stop_reason, "max_tokens");
  }
}

}  // namespace
}  // namespace bitnet::model
