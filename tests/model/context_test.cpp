// The forward pass on its own: architecture-selected FFN activation, .scale tensors, thread
// count independence, determinism, I2_S vs TQ2_0 encodings, and errors for bad models/inputs.
#include "model/context.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <tuple>

#include "crossval/crossval.h"
#include "generate/sampler.h"
#include "gguf_edit.h"
#include "kernels/ggml_math.h"
#include "kernels/verify.h"
#include "model/observe/trace_observer.h"
#include "model/observe/verify_observer.h"
#include "quant/i2s.h"
#include "synth/synth.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace bitnet::model {
namespace {

std::string vocab() {
  return std::string(BITNET_REFERENCE_DIR) + "/models/ggml-vocab-llama-bpe.gguf";
}

std::string make_model(const test::TempDir& dir, const std::string& name, Arch arch,
                       gguf::TensorType wt, bool scales = false, uint64_t seed = 3) {
  synth::SynthOptions o;
  o.config = *synth::preset_config("tiny", arch);
  o.weight_type = wt;
  o.vocab_path = vocab();
  o.scale_tensors = scales;
  o.seed = seed;
  const std::string path = dir.path(name);
  auto st = synth::write_synthetic_model(o, path);
  EXPECT_TRUE(st.ok()) << st.message();
  return path;
}

std::vector<float> logits_of(const std::string& path, const std::vector<int32_t>& ids, int threads,
                             bool kv_f16 = true) {
  auto m = Model::load(path);
  EXPECT_TRUE(m.ok()) << m.message();
  auto s = Context::create(**m, {.n_ctx = 64, .kv_f16 = kv_f16, .n_threads = threads});
  std::vector<float> out;
  auto st = (*s)->eval(ids, true, &out);
  EXPECT_TRUE(st.ok()) << st.message();
  return out;
}

const std::vector<int32_t> kIds = {128000, 2568, 25, 220, 16, 220, 17, 220, 18};

TEST(Context, BitIdenticalAcrossThreadsAndRuns) {
  test::TempDir dir;
  for (auto wt : {gguf::TensorType::I2_S, gguf::TensorType::TQ2_0, gguf::TensorType::TQ1_0}) {
    const auto path = make_model(dir, "m.gguf", Arch::kBitnetB158, wt);
    const auto a = logits_of(path, kIds, 1);
    const auto b = logits_of(path, kIds, 2);
    const auto c = logits_of(path, kIds, 2);
    ASSERT_EQ(a.size(), b.size());
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * 4)) << gguf::tensor_type_name(wt);
    EXPECT_EQ(0, std::memcmp(b.data(), c.data(), b.size() * 4)) << gguf::tensor_type_name(wt);
  }
}

TEST(Context, BatchedPrefillEqualsTokenByToken) {
  test::TempDir dir;
  const auto path = make_model(dir, "m.gguf", Arch::kBitnetB158, gguf::TensorType::I2_S);
  auto m = Model::load(path);
  ASSERT_TRUE(m.ok());
  const auto batched = logits_of(path, kIds, 2);
  auto s = Context::create(**m, {.n_ctx = 64, .n_threads = 2});
  const int64_t nv = (*m)->config().n_vocab;
  for (size_t i = 0; i < kIds.size(); ++i) {
    std::vector<float> row;
    ASSERT_TRUE((*s)->eval(std::span(&kIds[i], 1), false, &row).ok());
    // Same arithmetic per row: bit-identical.
    EXPECT_EQ(0, std::memcmp(row.data(), batched.data() + i * nv, nv * 4)) << "position " << i;
  }
}

// Decode over a long cache takes its own attention schedule (positions and dimensions of each KV
// head split between the threads, Blocks::attention_split); a prefill row takes the grouped one.
// Each row's arithmetic is the same, so the logits must be bit-identical, for 2 and 3 threads
// (uneven splits) and both cache types.
TEST(Context, LongCacheDecodeEqualsPrefill) {
  test::TempDir dir;
  const auto path = make_model(dir, "m.gguf", Arch::kBitnetB158, gguf::TensorType::I2_S);
  auto m = Model::load(path);
  ASSERT_TRUE(m.ok());
  std::vector<int32_t> ids;
  for (int i = 0; i < 300; ++i) ids.push_back(kIds[static_cast<size_t>(i) % kIds.size()] + i % 7);
  const int64_t nv = (*m)->config().n_vocab;
  constexpr size_t kPrefill = 250;  // decode crosses the split's threshold (256 positions)
  for (bool f16 : {true, false}) {
    auto whole = Context::create(**m, {.n_ctx = 512, .kv_f16 = f16, .n_threads = 1});
    std::vector<float> all;
    ASSERT_TRUE((*whole)->eval(ids, true, &all).ok());
    for (int threads : {2, 3}) {
      auto s = Context::create(**m, {.n_ctx = 512, .kv_f16 = f16, .n_threads = threads});
      std::vector<float> row;
      ASSERT_TRUE((*s)->eval(std::span(ids.data(), kPrefill), false, &row).ok());
      for (size_t i = kPrefill; i < ids.size(); ++i) {
        ASSERT_TRUE((*s)->eval(std::span(&ids[i], 1), false, &row).ok());
        ASSERT_EQ(0, std::memcmp(row.data(), all.data() + i * nv, nv * 4))
            << "position " << i << ", " << threads << " threads, f16 cache " << f16;
      }
    }
  }
}

TEST(Context, LogitsWellConditioned) {
  test::TempDir dir;
  const auto path = make_model(dir, "m.gguf", Arch::kBitnetB158, gguf::TensorType::I2_S);
  const auto l = logits_of(path, kIds, 2);
  const int64_t nv = 128256;
  std::set<int32_t> argmaxes;
  for (size_t p = 0; p < kIds.size(); ++p) {
    std::span<const float> row(l.data() + p * nv, nv);
    double mean = 0, var = 0;
    for (float x : row) mean += x;
    mean /= nv;
    for (float x : row) var += (x - mean) * (x - mean);
    const double sd = std::sqrt(var / nv);
    EXPECT_GT(sd, 1.0) << "position " << p;
    EXPECT_LT(sd, 20.0) << "position " << p;
    argmaxes.insert(generate::argmax(row));
  }
  EXPECT_GE(argmaxes.size(), kIds.size() / 2) << "argmax barely varies with the position";
}

// I2_S (per-token activation quantization) and TQ2_0 (Q8_K blocks) hold the same ternary
// weights: logits differ only through activation grouping, so they stay very close.
TEST(Context, I2sAndTq2SameModelSideBySide) {
  test::TempDir dir;
  const auto i2s =
      logits_of(make_model(dir, "a.gguf", Arch::kBitnetB158, gguf::TensorType::I2_S), kIds, 2);
  const auto tq2 =
      logits_of(make_model(dir, "b.gguf", Arch::kBitnetB158, gguf::TensorType::TQ2_0), kIds, 2);
  const auto f32 =
      logits_of(make_model(dir, "c.gguf", Arch::kBitnetB158, gguf::TensorType::F32), kIds, 2);
  const int64_t nv = 128256;
  for (size_t p = 0; p < kIds.size(); ++p) {
    double dot = 0, na = 0, nb = 0, mx = 0;
    for (int64_t i = 0; i < nv; ++i) {
      const double a = i2s[p * nv + i], b = tq2[p * nv + i];
      dot += a * b, na += a * a, nb += b * b, mx = std::max(mx, std::fabs(a - b));
    }
    const double cos = dot / std::sqrt(na * nb);
    std::printf("position %zu: I2_S vs TQ2_0 cosine %.6f max|diff| %.4f; argmax %d / %d / f32 %d\n",
                p, cos, mx, generate::argmax(std::span(i2s.data() + p * nv, nv)),
                generate::argmax(std::span(tq2.data() + p * nv, nv)),
                generate::argmax(std::span(f32.data() + p * nv, nv)));
    EXPECT_GT(cos, 0.99);
    EXPECT_NE(std::memcmp(i2s.data() + p * nv, tq2.data() + p * nv, nv * 4), 0);
  }
}

// Captures trace points in memory.
class CaptureSink : public trace::Sink {
 public:
  bool wants(const trace::Point&) const override { return true; }
  void record(const trace::Point& p, std::span<const float> v, std::span<const int64_t>) override {
    values[{p.position, p.layer, static_cast<int>(p.op)}].assign(v.begin(), v.end());
  }
  void record_quantized(const trace::Point&, std::span<const int8_t>,
                        std::span<const float>) override {}
  std::map<std::tuple<int, int, int>, std::vector<float>> values;
  const std::vector<float>& at(int pos, int layer, trace::Op op) {
    return values[{pos, layer, static_cast<int>(op)}];
  }
};

// The same weights under both architecture names: bitnet-b1.58 must apply relu(g)^2 * up and
// bitnet silu(g) * up, checked on the traced gate/up/act values of every block and position.
TEST(Context, FfnActivationFollowsArchitecture) {
  if (!trace::kTraceCompiled) GTEST_SKIP() << "tracing compiled out";
  test::TempDir dir;
  const auto b158 = make_model(dir, "a.gguf", Arch::kBitnetB158, gguf::TensorType::TQ2_0);
  const auto renamed = dir.path("b.gguf");
  ASSERT_TRUE(test::rewrite_gguf(
                  b158, renamed, [](const std::string&) { return std::nullopt; },
                  [](gguf::Writer& w) {
                    w.rename_prefix("bitnet-b1.58.", "bitnet.");
                    w.set("general.architecture", gguf::Value(std::string("bitnet")));
                  })
                  .ok());
  for (const auto& [path, relu2] : {std::pair{b158, true}, std::pair{renamed, false}}) {
    auto m = Model::load(path);
    ASSERT_TRUE(m.ok()) << m.message();
    EXPECT_EQ(ffn_activation((*m)->config().arch) == FfnActivation::kReluSquared, relu2);
    auto s = Context::create(**m, {.n_ctx = 16, .n_threads = 2});
    CaptureSink sink;
    TraceObserver tracer(&sink);
    (*s)->set_observer(&tracer);
    std::vector<float> logits;
    ASSERT_TRUE((*s)->eval(std::span(kIds).first(3), true, &logits).ok());
    int checked = 0;
    for (int pos = 0; pos < 3; ++pos) {
      for (int l = 0; l < 2; ++l) {
        const auto& g = sink.at(pos, l, trace::Op::kGateProj);
        const auto& u = sink.at(pos, l, trace::Op::kUpProj);
        const auto& a = sink.at(pos, l, trace::Op::kFfnAct);
        ASSERT_EQ(g.size(), 512u);
        ASSERT_EQ(a.size(), 512u);
        std::vector<float> silu(g.size());  // ggml's SwiGLU (its vectorised exp)
        kernels::ggml_swiglu(static_cast<int64_t>(g.size()), silu.data(), g.data(), u.data());
        for (size_t i = 0; i < g.size(); ++i) {
          const float r = g[i] > 0 ? g[i] : 0.0f;
          const float want = relu2 ? r * r * u[i] : silu[i];
          if (!relu2) {  // and that is silu(g) * up to float accuracy
            const double exact = g[i] / (1.0 + std::exp(-double(g[i]))) * u[i];
            ASSERT_NEAR(a[i], exact, 1e-5 * (1.0 + std::fabs(exact)));
          }
          ASSERT_EQ(a[i], want) << (relu2 ? "relu2" : "silu") << " pos " << pos << " layer " << l
                                << " i " << i;
          ++checked;
        }
      }
    }
    EXPECT_EQ(checked, 3 * 2 * 512);
  }
}

// The int8 multiply-adds the forward pass counts (bench's prompt efficiency) are those of every
// ternary product: per row, q/k/v/o, gate/up/down of every layer.
TEST(Context, CountsTheInt8MultiplyAddsOfEveryTernaryProduct) {
  test::TempDir dir;
  auto m = Model::load(make_model(dir, "m.gguf", Arch::kBitnetB158, gguf::TensorType::I2_S));
  ASSERT_TRUE(m.ok()) << m.message();
  const ModelConfig& c = (*m)->config();
  const int64_t d = c.n_embd, kv = c.n_embd_kv(), f = c.n_ff;
  const int64_t per_row = c.n_layers * (d * d + 2 * d * kv + d * d + 2 * d * f + f * d);
  auto s = Context::create(**m, {.n_ctx = 16, .n_threads = 2});
  std::vector<float> logits;
  ASSERT_TRUE((*s)->eval(std::span(kIds).first(5), false, &logits).ok());
  EXPECT_EQ((*s)->stats().int8_macs, 5 * per_row);
  (*s)->reset_stats();
  ASSERT_TRUE((*s)->eval(std::span(kIds).subspan(5, 1), false, &logits).ok());
  EXPECT_EQ((*s)->stats().int8_macs, per_row);
}

// .scale tensors (bitnet arch) multiply each projection's output: the logits change, and the
// parity test against llama.cpp (which applies them) covers their exact use.
TEST(Context, ScaleTensorsAreApplied) {
  test::TempDir dir;
  const auto plain =
      logits_of(make_model(dir, "a.gguf", Arch::kBitnet, gguf::TensorType::TQ2_0, false), kIds, 2);
  const auto scaled =
      logits_of(make_model(dir, "b.gguf", Arch::kBitnet, gguf::TensorType::TQ2_0, true), kIds, 2);
  auto m = Model::load(dir.path("b.gguf"));
  ASSERT_TRUE(m.ok());
  int with_scale = 0, not_one = 0;
  for (const auto& L : (*m)->layers()) {
    for (const Projection* p : {&L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down}) {
      with_scale += p->has_scale;
      not_one += p->scale != 1.0f;
    }
  }
  EXPECT_EQ(with_scale, 14);
  EXPECT_GT(not_one, 0);
  EXPECT_NE(std::memcmp(plain.data(), scaled.data(), plain.size() * 4), 0);
}

TEST(Context, ContextFullAndBadTokens) {
  test::TempDir dir;
  auto m = Model::load(make_model(dir, "m.gguf", Arch::kBitnetB158, gguf::TensorType::I2_S));
  ASSERT_TRUE(m.ok());
  auto s = Context::create(**m, {.n_ctx = 4, .n_threads = 1});
  std::vector<float> l;
  auto st = (*s)->eval(kIds, false, &l);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("context"), std::string::npos) << st.message();
  const int32_t bad = 200000;
  st = (*s)->eval(std::span(&bad, 1), false, &l);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("outside the vocabulary"), std::string::npos) << st.message();
}

struct BadModelCase {
  std::string name;
  std::function<std::optional<test::TensorEdit>(const std::string&)> edit;
  std::function<void(gguf::Writer&)> meta;
  std::string expect;
};

TEST(Context, BadModelsGiveClearErrors) {
  test::TempDir dir;
  const auto good = make_model(dir, "good.gguf", Arch::kBitnetB158, gguf::TensorType::I2_S);
  auto none = [](const std::string&) -> std::optional<test::TensorEdit> { return std::nullopt; };
  std::vector<BadModelCase> cases = {
      {"missing_tensor",
       [](const std::string& n) -> std::optional<test::TensorEdit> {
         if (n == "blk.1.ffn_up.weight") return test::TensorEdit{.drop = true};
         return std::nullopt;
       },
       {},
       "missing tensor 'blk.1.ffn_up.weight' (expected shape [256, 512])"},
      {"wrong_shape",
       [](const std::string& n) -> std::optional<test::TensorEdit> {
         if (n == "blk.0.attn_k.weight") return test::TensorEdit{.dims = {256, 256}};
         return std::nullopt;
       },
       {},
       "tensor 'blk.0.attn_k.weight' has shape [256, 256], expected [256, 128]"},
      {"wrong_type_norm",
       [](const std::string& n) -> std::optional<test::TensorEdit> {
         if (n == "blk.0.attn_norm.weight") return test::TensorEdit{.type = gguf::TensorType::Q8_0};
         return std::nullopt;
       },
       {},
       "tensor 'blk.0.attn_norm.weight' has type Q8_0, expected F32, F16 or BF16"},
      {"wrong_type_embd",
       [](const std::string& n) -> std::optional<test::TensorEdit> {
         if (n == "token_embd.weight") return test::TensorEdit{.type = gguf::TensorType::TQ2_0};
         return std::nullopt;
       },
       {},
       "tensor 'token_embd.weight' has type TQ2_0, expected F16, BF16 or F32"},
      {"unknown_arch", none,
       [](gguf::Writer& w) { w.set("general.architecture", gguf::Value(std::string("gpt2"))); },
       "unknown architecture 'gpt2' (supported: bitnet, bitnet-b1.58, bitnet-25, llama)"},
      {"missing_key", none, [](gguf::Writer& w) { w.remove("bitnet-b1.58.block_count"); },
       "missing metadata key 'bitnet-b1.58.block_count'"},
  };
  for (const auto& c : cases) {
    const auto path = dir.path(c.name + ".gguf");
    ASSERT_TRUE(test::rewrite_gguf(good, path, c.edit, c.meta).ok()) << c.name;
    auto m = Model::load(path);
    ASSERT_FALSE(m.ok()) << c.name;
    EXPECT_NE(m.message().find(c.expect), std::string::npos) << c.name << ": " << m.message();
    // And through the CLI: one line, exit 1.
    auto r = test::run_command(test::bitnet_binary() + " run -m " + path + " -p hi -n 1");
    EXPECT_EQ(r.exit_code, 1) << c.name;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << c.name << ": " << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.name << ": " << r.err;
  }
}

// llama: what llama.cpp's llama graph would use and this engine does not implement (extra
// tensors such as .scale or biases, I2_S projections, RoPE scaling, experts) is refused with one
// line naming it, never run as if absent; what it does implement loads (no sub-norms, the head
// output.weight when present, else token_embd).
TEST(Context, LlamaLoadsItsTensorsAndRefusesTheRest) {
  test::TempDir dir;
  const auto good = make_model(dir, "llama.gguf", Arch::kLlama, gguf::TensorType::TQ2_0);
  {
    auto m = Model::load(good);
    ASSERT_TRUE(m.ok()) << m.message();
    EXPECT_EQ((*m)->config().arch, Arch::kLlama);
    EXPECT_FALSE((*m)->head_is_tied());
    EXPECT_TRUE((*m)->layers()[0].attn_sub_norm.empty());
    EXPECT_NE((*m)->head().data, (*m)->token_embd().data);
  }
  const auto tied = dir.path("tied.gguf");
  ASSERT_TRUE(test::rewrite_gguf(good, tied, [](const std::string& n) {
                return n == "output.weight" ? std::optional(test::TensorEdit{.drop = true})
                                            : std::nullopt;
              }).ok());
  {
    auto m = Model::load(tied);
    ASSERT_TRUE(m.ok()) << m.message();
    EXPECT_TRUE((*m)->head_is_tied());
  }
  // The BitNet families keep token_embd as the head even when output.weight exists.
  {
    synth::SynthOptions o;
    o.config = *synth::preset_config("tiny", Arch::kBitnet);
    o.weight_type = gguf::TensorType::TQ2_0;
    o.vocab_path = vocab();
    o.untied_head = true;
    ASSERT_TRUE(synth::write_synthetic_model(o, dir.path("bitnet_untied.gguf")).ok());
    auto m = Model::load(dir.path("bitnet_untied.gguf"));
    ASSERT_TRUE(m.ok()) << m.message();
    EXPECT_TRUE((*m)->head_is_tied());
  }
  struct Bad {
    std::string name, path, expect;
  };
  auto with_key = [&](const std::string& name, const std::string& key, gguf::Value v) {
    const auto path = dir.path(name + ".gguf");
    EXPECT_TRUE(test::rewrite_gguf(
                    good, path, [](const std::string&) { return std::nullopt; },
                    [&](gguf::Writer& w) { w.set(key, v); })
                    .ok());
    return path;
  };
  const std::vector<Bad> bad = {
      {"scale", make_model(dir, "scale.gguf", Arch::kLlama, gguf::TensorType::TQ2_0, true),
       "tensor 'blk.0.attn_q.scale' is not supported in a llama-arch model"},
      {"yarn", with_key("yarn", "llama.rope.scaling.type", gguf::Value(std::string("yarn"))),
       "llama.rope.scaling.type = 'yarn': RoPE scaling is not supported"},
      {"linear", with_key("linear", "llama.rope.scaling.factor", gguf::Value(2.0f)),
       "llama.rope.scaling.factor = 2: RoPE scaling is not supported"},
      {"experts", with_key("experts", "llama.expert_count", gguf::Value(uint32_t{8})),
       "llama.expert_count = 8: mixture-of-experts llama models are not supported"},
      {"key_length",
       with_key("key_length", "llama.attention.key_length", gguf::Value(uint32_t{32})),
       "llama.attention.key_length = 32 differs from the head dimension 64"},
  };
  for (const Bad& b : bad) {
    auto m = Model::load(b.path);
    ASSERT_FALSE(m.ok()) << b.name;
    EXPECT_NE(m.message().find(b.expect), std::string::npos) << b.name << ": " << m.message();
  }
  // And through the CLI: one line, exit 1.
  auto r = test::run_command(test::bitnet_binary() + " run -m " + bad[0].path + " -p hi -n 1");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
  EXPECT_NE(r.err.find(bad[0].expect), std::string::npos) << r.err;
  // A scaling that changes nothing is accepted, as llama.cpp takes it.
  EXPECT_TRUE(
      Model::load(with_key("none", "llama.rope.scaling.type", gguf::Value(std::string("none"))))
          .ok());
}

// bitnet.cpp's I2_S files of the llama family (Falcon3 / Llama3 1.58-bit) and of the bitnet
// family (1bitLLM): the same synthetic model written as I2_S and as TQ2_0 differs only in how
// activations are quantized (per row vs per 256-block Q8_K), so the greedy choice agrees over
// the sweep prompts and their greedy continuations, except at near-ties: a synthetic model's
// 128256 logits are random-like and its top two are often closer than the two encodings'
// difference. Where the choices differ, the two tokens must be that close in both rows (a wrong
// scale or layout moves logits far more), and such positions must stay rare.
TEST(Context, I2sAndTq2SameTopOneOverTheSweepPrompts) {
  test::TempDir dir;
  for (Arch arch : {Arch::kLlama, Arch::kBitnet}) {
    const std::string name(arch_name(arch));
    auto mi = Model::load(make_model(dir, name + "-i2s.gguf", arch, gguf::TensorType::I2_S));
    auto mt = Model::load(make_model(dir, name + "-tq2.gguf", arch, gguf::TensorType::TQ2_0));
    ASSERT_TRUE(mi.ok()) << mi.message();
    ASSERT_TRUE(mt.ok()) << mt.message();
    auto file = gguf::File::open(dir.path(name + "-i2s.gguf"));
    ASSERT_TRUE(file.ok());
    auto tok = tokenizer::Tokenizer::from_gguf(*file);
    ASSERT_TRUE(tok.ok()) << tok.message();
    const int64_t nv = (*mi)->config().n_vocab;
    int positions = 0, near_ties = 0;
    for (const crossval::Case& c : crossval::default_sweep_cases()) {
      std::vector<int32_t> ids = tok->encode(c.prompt, {.add_special = true});
      auto ci = Context::create(**mi, {.n_ctx = 128, .n_threads = 2});
      auto ct = Context::create(**mt, {.n_ctx = 128, .n_threads = 2});
      ASSERT_TRUE(ci.ok() && ct.ok());
      std::vector<int32_t> feed = ids;
      for (int step = 0; step <= c.max_tokens; ++step) {
        std::vector<float> li, lt;
        ASSERT_TRUE((*ci)->eval(feed, true, &li).ok());
        ASSERT_TRUE((*ct)->eval(feed, true, &lt).ok());
        int32_t next = 0;
        for (size_t r = 0; r < feed.size(); ++r, ++positions) {
          const float* ri = li.data() + r * nv;
          const float* rt = lt.data() + r * nv;
          const int32_t a = generate::argmax(std::span(ri, nv));
          const int32_t b = generate::argmax(std::span(rt, nv));
          next = a;
          if (a == b) continue;
          ++near_ties;
          float diff = 0;
          for (int64_t i = 0; i < nv; ++i) diff = std::max(diff, std::fabs(ri[i] - rt[i]));
          EXPECT_LE(ri[a] - ri[b], diff) << name << " '" << c.prompt << "' step " << step;
          EXPECT_LE(rt[b] - rt[a], diff) << name << " '" << c.prompt << "' step " << step;
        }
        feed = {next};  // the I2_S model's greedy continuation, fed to both
      }
    }
    std::printf("%s: the same top-1 at %d of %d positions, near-ties at the others\n", name.c_str(),
                positions - near_ties, positions);
    EXPECT_GE(positions, 100) << name;
    EXPECT_LE(near_ties * 20, positions) << name << ": more than 5% of the choices differ";
  }
}

// Known answer for the llama family's I2_S projections: the traced Q projection of block 0 is
// bitnet.cpp's BitLinear formula applied to the traced attention-norm output, with the ternary
// codes and the one f32 scale read from the file (per-row int8 activations, int32 sums, the
// activation scale divided out, then the tensor's scale); and doubling the scale stored in the
// tensor doubles that projection exactly and changes nothing before it.
TEST(Context, LlamaI2sProjectionIsTheBitLinearFormulaWithTheFileScale) {
  if (!trace::kTraceCompiled) GTEST_SKIP() << "tracing compiled out";
  test::TempDir dir;
  const auto path = make_model(dir, "llama-i2s.gguf", Arch::kLlama, gguf::TensorType::I2_S);
  // The same file with blk.0.attn_q.weight's scale doubled (a power of two: exact).
  const auto doubled = dir.path("doubled.gguf");
  float scale = 0;
  std::vector<int8_t> codes;
  int64_t k = 0, n_out = 0;
  {
    auto f = gguf::File::open(path);
    ASSERT_TRUE(f.ok());
    const gguf::TensorInfo* t = f->find_tensor("blk.0.attn_q.weight");
    ASSERT_NE(t, nullptr);
    ASSERT_EQ(t->type, gguf::TensorType::I2_S);
    k = static_cast<int64_t>(t->dims[0]), n_out = static_cast<int64_t>(t->dims[1]);
    const auto data = f->tensor_data(*t);
    codes.resize(t->n_elements);
    ASSERT_TRUE(quant::unpack_i2s(data.data(), t->n_elements, codes.data()).ok());
    scale = quant::i2s_scale(data.data(), t->n_elements);
    ASSERT_GT(scale, 0.0f);
    std::vector<uint8_t> bytes(f->bytes().begin(), f->bytes().end());
    const size_t at = static_cast<size_t>(data.data() - f->bytes().data()) + t->n_elements / 4;
    const float twice = 2 * scale;
    std::memcpy(bytes.data() + at, &twice, 4);
    std::ofstream(doubled, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
  }
  auto trace_block0 = [&](const std::string& p) {
    auto m = Model::load(p);
    EXPECT_TRUE(m.ok()) << m.message();
    auto s = Context::create(**m, {.n_ctx = 16, .n_threads = 2});
    auto sink = std::make_unique<CaptureSink>();
    TraceObserver tracer(sink.get());
    (*s)->set_observer(&tracer);
    std::vector<float> logits;
    EXPECT_TRUE((*s)->eval(std::span(kIds).first(4), true, &logits).ok());
    return sink;
  };
  auto a = trace_block0(path);
  auto b = trace_block0(doubled);
  for (int pos = 0; pos < 4; ++pos) {
    const auto& h = a->at(pos, 0, trace::Op::kAttnNorm);
    const auto& q = a->at(pos, 0, trace::Op::kQProj);
    ASSERT_EQ(h.size(), static_cast<size_t>(k));
    ASSERT_EQ(q.size(), static_cast<size_t>(n_out));
    double m = 1e-5;
    for (float x : h) m = std::max(m, static_cast<double>(std::fabs(x)));
    const float s = static_cast<float>(127.0 / m);
    std::vector<int32_t> hq(h.size());
    for (size_t i = 0; i < h.size(); ++i) {
      hq[i] = static_cast<int32_t>(std::clamp(std::nearbyint(h[i] * s), -128.0f, 127.0f));
    }
    for (int64_t r = 0; r < n_out; ++r) {
      int32_t acc = 0;
      for (int64_t i = 0; i < k; ++i) acc += codes[r * k + i] * hq[i];
      ASSERT_EQ(q[r], (static_cast<float>(acc) / s) * scale) << "pos " << pos << " row " << r;
      ASSERT_EQ(b->at(pos, 0, trace::Op::kQProj)[r], 2 * q[r]) << "pos " << pos << " row " << r;
    }
    EXPECT_EQ(b->at(pos, 0, trace::Op::kAttnNorm), h);
    EXPECT_EQ(b->at(pos, 0, trace::Op::kKProj), a->at(pos, 0, trace::Op::kKProj));
  }
}

// --verify-kernels: every product, quantization, RMSNorm, SwiGLU, KV conversion and attention of a
// run checked against the scalar references passes (the variants are bit-exact), and a single
// flipped bit in an output is caught (the other checks: tests/kernels/verify_test.cpp).
TEST(Context, VerifyKernelsPassesAndCatchesAFlippedBit) {
  test::TempDir dir;
  for (auto wt : {gguf::TensorType::I2_S, gguf::TensorType::TQ2_0, gguf::TensorType::TQ1_0,
                  gguf::TensorType::F16}) {
    auto m = Model::load(make_model(dir, "v.gguf", Arch::kBitnetB158, wt));
    ASSERT_TRUE(m.ok());
    auto s = Context::create(**m, {.n_ctx = 32, .n_threads = 2});
    VerifyObserver verify(1, (*m)->kernels());
    (*s)->set_observer(&verify);
    std::vector<float> l;
    ASSERT_TRUE((*s)->eval(kIds, false, &l).ok()) << gguf::tensor_type_name(wt);
    for (int32_t t : {1000, 2000}) ASSERT_TRUE((*s)->eval(std::span(&t, 1), false, &l).ok());
  }
  {  // `bitnet` arch: SwiGLU (its own kernel), Q8_K activations
    auto m = Model::load(make_model(dir, "w.gguf", Arch::kBitnet, gguf::TensorType::TQ2_0));
    ASSERT_TRUE(m.ok());
    auto s = Context::create(**m, {.n_ctx = 32, .n_threads = 2});
    VerifyObserver verify(1, (*m)->kernels());
    (*s)->set_observer(&verify);
    std::vector<float> l;
    ASSERT_TRUE((*s)->eval(kIds, false, &l).ok());
    for (int32_t t : {1000, 2000}) ASSERT_TRUE((*s)->eval(std::span(&t, 1), false, &l).ok());
  }
  auto m = Model::load(dir.path("v.gguf"));
  const kernels::WeightMatrix& head = (*m)->head();
  std::vector<float> x(head.k, 0.5f), y(head.n_out);
  const kernels::Kernels& kern = (*m)->kernels();
  kernels::matmul_float(kern, head, x.data(), 1, y.data(), nullptr);
  EXPECT_TRUE(
      kernels::verify_sample_rows(kern, head, nullptr, x.data(), 1, y.data(), 3, head.n_out).ok());
  y[777] = std::nextafter(y[777], 1e9f);
  auto st = kernels::verify_sample_rows(kern, head, nullptr, x.data(), 1, y.data(), 3,
                                        static_cast<int>(head.n_out));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("kernel verification failed"), std::string::npos) << st.message();
}

// --head-type q8_0: logits close to the exact F16 head's (same argmax on a tiny model in nearly
// every position), half the head bytes, kernels verified, and a clear error for a bad name.
TEST(Context, Q8_0HeadApproximatesTheFileHead) {
  test::TempDir dir;
  const auto path = make_model(dir, "q.gguf", Arch::kBitnet, gguf::TensorType::TQ2_0);
  const auto exact = logits_of(path, kIds, 2);
  auto m = Model::load(path, {.head = HeadType::kQ8_0});
  ASSERT_TRUE(m.ok()) << m.message();
  EXPECT_EQ((*m)->head_type(), HeadType::kQ8_0);
  EXPECT_EQ((*m)->head().type, gguf::TensorType::Q8_0);
  auto f16m = Model::load(path);
  EXPECT_LT((*m)->decode_weight_bytes(), (*f16m)->decode_weight_bytes());
  auto s = Context::create(**m, {.n_ctx = 64, .n_threads = 2});
  VerifyObserver verify(1, (*m)->kernels());
  (*s)->set_observer(&verify);
  std::vector<float> q8;
  ASSERT_TRUE((*s)->eval(kIds, true, &q8).ok());
  ASSERT_EQ(q8.size(), exact.size());
  const size_t nv = (*m)->config().n_vocab;
  int same_top1 = 0;
  double max_rel = 0;
  for (size_t p = 0; p < kIds.size(); ++p) {
    const auto* a = exact.data() + p * nv;
    const auto* b = q8.data() + p * nv;
    same_top1 += std::max_element(a, a + nv) - a == std::max_element(b, b + nv) - b;
    double num = 0, den = 0;
    for (size_t i = 0; i < nv; ++i) {
      num += (a[i] - b[i]) * (a[i] - b[i]);
      den += a[i] * a[i];
    }
    max_rel = std::max(max_rel, std::sqrt(num / den));
  }
  EXPECT_LT(max_rel, 0.02);
  EXPECT_GE(same_top1, static_cast<int>(kIds.size()) - 1);
  EXPECT_NE(0, std::memcmp(q8.data(), exact.data(), q8.size() * 4));  // it is not the exact head
  auto bad = head_type_from_name("q4");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("not one of auto, file, screened, fast, q8_0"), std::string::npos);
}

// --head-type fast: the same F16 weights and bytes, summed in float per 64-element block
// (FloatSums kBlocks): logits within float rounding of the exact head's, the same argmax, not
// the same bits, and the sampled rows verified against the kBlocks scalar reference.
TEST(Context, FastHeadSumsInFloatBlocks) {
  test::TempDir dir;
  const auto path = make_model(dir, "f.gguf", Arch::kBitnet, gguf::TensorType::TQ2_0);
  const auto exact = logits_of(path, kIds, 2);
  auto m = Model::load(path, {.head = HeadType::kFast});
  ASSERT_TRUE(m.ok()) << m.message();
  EXPECT_EQ((*m)->head_type(), HeadType::kFast);
  EXPECT_EQ((*m)->head().type, gguf::TensorType::F16);
  EXPECT_EQ((*m)->head().float_sums, kernels::FloatSums::kBlocks);
  EXPECT_EQ((*m)->token_embd().float_sums, kernels::FloatSums::kDouble);
  auto f16m = Model::load(path);
  EXPECT_EQ((*f16m)->head().float_sums, kernels::FloatSums::kDouble);
  EXPECT_EQ((*m)->decode_weight_bytes(), (*f16m)->decode_weight_bytes());
  auto s = Context::create(**m, {.n_ctx = 64, .n_threads = 2});
  VerifyObserver verify(1, (*m)->kernels());
  (*s)->set_observer(&verify);
  std::vector<float> fast;
  ASSERT_TRUE((*s)->eval(kIds, true, &fast).ok());
  ASSERT_EQ(fast.size(), exact.size());
  const size_t nv = (*m)->config().n_vocab;
  double max_rel = 0;
  for (size_t p = 0; p < kIds.size(); ++p) {
    const auto* a = exact.data() + p * nv;
    const auto* b = fast.data() + p * nv;
    EXPECT_EQ(std::max_element(a, a + nv) - a, std::max_element(b, b + nv) - b) << p;
    double diff = 0, scale = 0;  // largest difference, against the row's largest logit
    for (size_t i = 0; i < nv; ++i) {
      diff = std::max(diff, std::fabs(double{a[i]} - b[i]));
      scale = std::max(scale, std::fabs(double{a[i]}));
    }
    max_rel = std::max(max_rel, diff / scale);
  }
  std::printf("fast head: largest logit difference %.3g of the row's largest logit\n", max_rel);
  EXPECT_LT(max_rel, 1e-5);
  EXPECT_NE(0, std::memcmp(fast.data(), exact.data(), fast.size() * 4));  // not the exact head
  EXPECT_EQ(head_type_name(HeadType::kFast), "fast");
  EXPECT_EQ(*head_type_from_name("fast"), HeadType::kFast);
}

// The kernel variant is a load option, not process state: models loaded with different variants
// live side by side, each runs (and, for AVX2 and AVX-512, repacks for) its own, and all give the
// same logits bit for bit (every variant is bit-exact with the scalar reference).
TEST(Context, EachModelRunsTheKernelsItWasLoadedWith) {
  test::TempDir dir;
  for (gguf::TensorType type : {gguf::TensorType::TQ2_0, gguf::TensorType::I2_S}) {
    SCOPED_TRACE(std::string(gguf::tensor_type_name(type)));
    const auto path = make_model(dir, "k.gguf", Arch::kBitnet, type);
    std::vector<std::unique_ptr<Model>> models;
    for (auto v : kernels::kAllVariants) {
      if (!kernels::cpu_supports(v)) continue;
      LoadOptions o;
      o.kernels = *kernels::Kernels::of(v);
      auto m = Model::load(path, o);
      ASSERT_TRUE(m.ok()) << m.message();
      EXPECT_EQ((*m)->kernels().variant(), v);
      EXPECT_EQ((*m)->packed_bytes() > 0, v != kernels::Variant::kScalar)
          << kernels::variant_name(v);
      models.push_back(std::move(*m));
    }
    ASSERT_FALSE(models.empty());
    std::vector<float> first;
    for (const auto& m : models) {
      auto s = Context::create(*m, {.n_ctx = 64, .n_threads = 2});
      ASSERT_TRUE(s.ok()) << s.message();
      VerifyObserver verify(1, m->kernels());
      (*s)->set_observer(&verify);
      std::vector<float> l;
      auto st = (*s)->eval(kIds, true, &l);
      ASSERT_TRUE(st.ok()) << st.message();
      if (first.empty()) first = l;
      ASSERT_EQ(l.size(), first.size());
      EXPECT_EQ(0, std::memcmp(l.data(), first.data(), l.size() * 4)) << m->kernels().name();
    }
  }
}

}  // namespace
}  // namespace bitnet::model
