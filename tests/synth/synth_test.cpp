// Synthetic models: the same ternary weights in every format, determinism, and the official
// 2B4T layout.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>

#include "gguf/reader.h"
#include "model/arch.h"
#include "quant/i2s.h"
#include "quant/tq1_0.h"
#include "quant/tq2_0.h"
#include "synth/synth.h"
#include "test_util.h"

namespace bitnet::synth {
namespace {

std::string vocab() { return std::string(BITNET_REFERENCE_DIR) + "/models/ggml-vocab-llama-bpe.gguf"; }

std::string write(const test::TempDir& dir, const std::string& name, const std::string& preset,
                  gguf::TensorType wt, uint64_t seed = 5, model::Arch arch = model::Arch::kBitnetB158) {
  SynthOptions o;
  o.config = *preset_config(preset, arch);
  o.weight_type = wt;
  o.vocab_path = vocab();
  o.seed = seed;
  const auto path = dir.path(name);
  auto st = write_synthetic_model(o, path);
  EXPECT_TRUE(st.ok()) << st.message();
  return path;
}

// Decodes a projection to ternary values (and its scale) whatever its format.
std::vector<int8_t> ternary_of(const gguf::File& f, const std::string& name, float* scale) {
  const gguf::TensorInfo* t = f.find_tensor(name);
  auto bytes = f.tensor_data(*t);
  std::vector<int8_t> v(t->n_elements);
  switch (t->type) {
    case gguf::TensorType::I2_S:
      EXPECT_TRUE(quant::unpack_i2s(bytes.data(), v.size(), v.data()).ok());
      *scale = quant::i2s_scale(bytes.data(), v.size());
      break;
    case gguf::TensorType::TQ2_0:
      EXPECT_TRUE(quant::unpack_tq2_0(bytes.data(), v.size(), v.data()).ok());
      *scale = quant::tq2_0_block_scale(bytes.data(), 0);
      break;
    case gguf::TensorType::TQ1_0:
      EXPECT_TRUE(quant::unpack_tq1_0(bytes.data(), v.size(), v.data()).ok());
      *scale = quant::tq1_0_block_scale(bytes.data(), 0);
      break;
    default: {
      std::vector<float> x(v.size());
      std::memcpy(x.data(), bytes.data(), x.size() * 4);  // F32
      *scale = 0;
      for (float a : x) *scale = std::max(*scale, std::fabs(a));
      for (size_t i = 0; i < x.size(); ++i) v[i] = static_cast<int8_t>(x[i] / *scale);
    }
  }
  return v;
}

TEST(Synth, SameTernaryWeightsInEveryFormat) {
  test::TempDir dir;
  std::map<std::string, std::string> files = {
      {"i2_s", write(dir, "a.gguf", "tiny", gguf::TensorType::I2_S)},
      {"tq2_0", write(dir, "b.gguf", "tiny", gguf::TensorType::TQ2_0)},
      {"tq1_0", write(dir, "c.gguf", "tiny", gguf::TensorType::TQ1_0)},
      {"f32", write(dir, "d.gguf", "tiny", gguf::TensorType::F32)}};
  std::vector<int8_t> first;
  float first_scale = 0;
  for (const auto& [fmt, path] : files) {
    auto f = gguf::File::open(path);
    ASSERT_TRUE(f.ok()) << f.message();
    float scale = 0;
    auto v = ternary_of(*f, "blk.1.ffn_down.weight", &scale);
    if (first.empty()) {
      first = v;
      first_scale = scale;
      continue;
    }
    EXPECT_EQ(v, first) << fmt;
    EXPECT_EQ(scale, first_scale) << fmt;
  }
  // A power of two, so every format stores it exactly.
  int e = 0;
  EXPECT_EQ(std::frexp(first_scale, &e), 0.5f);
}

TEST(Synth, DeterministicPerSeed) {
  test::TempDir dir;
  auto read_all = [](const std::string& p) {
    auto r = test::run_command("sha256sum " + p);
    return r.out.substr(0, 64);
  };
  const auto a = read_all(write(dir, "a.gguf", "tiny", gguf::TensorType::TQ2_0, 9, model::Arch::kBitnet));
  const auto b = read_all(write(dir, "b.gguf", "tiny", gguf::TensorType::TQ2_0, 9, model::Arch::kBitnet));
  const auto c = read_all(write(dir, "c.gguf", "tiny", gguf::TensorType::TQ2_0, 10, model::Arch::kBitnet));
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

// `bitnet synth --arch llama`: llama.* keys, no sub-norm tensors, and an F16 output.weight (the
// LM head of llama.cpp's llama graph) unless --tied-head.
TEST(SynthLlama, LayoutWithAndWithoutTheHead) {
  test::TempDir dir;
  for (const bool tied : {false, true}) {
    const auto path = dir.path(tied ? "tied.gguf" : "untied.gguf");
    auto r = test::run_command(test::bitnet_binary() + " synth -q --arch llama --weights tq1_0 " +
                               (tied ? "--tied-head " : "") + "-o " + path);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto f = gguf::File::open(path);
    ASSERT_TRUE(f.ok()) << f.message();
    EXPECT_EQ(f->architecture(), "llama");
    EXPECT_EQ(*f->get_uint("llama.embedding_length"), 256u);
    EXPECT_EQ(*f->get_uint("llama.rope.dimension_count"), 64u);
    EXPECT_EQ(*f->get_uint("general.file_type"), 36u);
    EXPECT_EQ(f->find_tensor("blk.0.attn_sub_norm.weight"), nullptr);
    EXPECT_EQ(f->find_tensor("blk.1.ffn_sub_norm.weight"), nullptr);
    EXPECT_EQ(f->find_tensor("blk.1.ffn_down.weight")->type, gguf::TensorType::TQ1_0);
    // token_embd, output_norm, 2 x (2 norms + 7 projections), and the head when untied.
    EXPECT_EQ(f->tensors().size(), tied ? 20u : 21u);
    const gguf::TensorInfo* head = f->find_tensor("output.weight");
    if (tied) {
      EXPECT_EQ(head, nullptr);
    } else {
      ASSERT_NE(head, nullptr);
      EXPECT_EQ(head->type, gguf::TensorType::F16);
      EXPECT_EQ(head->dims, (std::vector<uint64_t>{256, 128256}));
    }
  }
}

// `bitnet synth --preset 2b4t --weights i2_s`: laid out like the official ggml-model-i2_s.gguf.
TEST(Synth2b4t, OfficialLayout) {
  test::TempDir dir;
  const auto path = dir.path("2b4t.gguf");
  auto r = test::run_command(test::bitnet_binary() + " synth -q --preset 2b4t --weights i2_s -o " + path);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto f = gguf::File::open(path);
  ASSERT_TRUE(f.ok()) << f.message();
  EXPECT_EQ(f->architecture(), "bitnet-b1.58");
  EXPECT_EQ(*f->get_uint("bitnet-b1.58.embedding_length"), 2560u);
  EXPECT_EQ(*f->get_uint("bitnet-b1.58.block_count"), 30u);
  EXPECT_EQ(*f->get_uint("bitnet-b1.58.attention.head_count"), 20u);
  EXPECT_EQ(*f->get_uint("bitnet-b1.58.attention.head_count_kv"), 5u);
  EXPECT_EQ(*f->get_uint("bitnet-b1.58.feed_forward_length"), 6912u);
  EXPECT_EQ(*f->get_uint("bitnet-b1.58.context_length"), 4096u);
  EXPECT_EQ(*f->get_number("bitnet-b1.58.rope.freq_base"), 500000.0);
  EXPECT_EQ(*f->get_uint("general.file_type"), 40u);
  EXPECT_EQ(*f->get_string("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(f->find("tokenizer.ggml.pre"), nullptr);  // as in the official file
  ASSERT_EQ(f->tensors().size(), 332u);
  std::map<gguf::TensorType, int> by_type;
  for (const auto& t : f->tensors()) {
    by_type[t.type]++;
    if (t.type == gguf::TensorType::I2_S) {
      EXPECT_EQ(t.n_bytes, t.n_elements / 4 + 32) << t.name;
    }
  }
  EXPECT_EQ(by_type[gguf::TensorType::I2_S], 210);
  EXPECT_EQ(by_type[gguf::TensorType::F32], 121);
  EXPECT_EQ(by_type[gguf::TensorType::F16], 1);
  const gguf::TensorInfo* e = f->find_tensor("token_embd.weight");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->type, gguf::TensorType::F16);
  EXPECT_EQ(e->dims, (std::vector<uint64_t>{2560, 128256}));
  EXPECT_EQ(f->find_tensor("output.weight"), nullptr);
  EXPECT_EQ(f->find_tensor("blk.29.ffn_down.weight")->dims, (std::vector<uint64_t>{6912, 2560}));
  EXPECT_EQ(f->find_tensor("blk.0.attn_k.weight")->dims, (std::vector<uint64_t>{2560, 640}));
  // And inspect --json shows it.
  auto j = test::run_command(test::bitnet_binary() + " inspect --json " + path);
  ASSERT_EQ(j.exit_code, 0) << j.err;
  EXPECT_NE(j.out.find("\"tensor_count\": 332"), std::string::npos);
  EXPECT_NE(j.out.find("\"I2_S\""), std::string::npos);
}

}  // namespace
}  // namespace bitnet::synth
