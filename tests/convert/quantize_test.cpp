// bitnet quantize on synthetic models: the ternary round trip I2_S -> TQ2_0 -> TQ1_0 -> I2_S is
// byte-identical, each step equals synth writing that type directly (tensor data and metadata
// key by key), exactly ternary floats pack without loss, and what cannot be converted without
// loss is refused with a one-line error naming the tensor (unless the flag that accepts the
// loss is given). The TQ2_0 results run bit-identically with the pinned llama.cpp.
#include "convert/quantize.h"

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/fp16.h"
#include "gguf/reader.h"
#include "gtest/gtest.h"
#include "quant/i2s.h"
#include "synth/synth.h"
#include "test_util.h"

namespace bitnet::convert {
namespace {

using gguf::TensorType;

std::string synth_model(const test::TempDir& dir, const std::string& name, TensorType type,
                        model::Arch arch = model::Arch::kBitnetB158) {
  synth::SynthOptions o;
  o.config = *synth::preset_config("tiny", arch);
  o.weight_type = type;
  o.vocab_path = std::string(BITNET_REFERENCE_DIR) + "/models/ggml-vocab-llama-bpe.gguf";
  if (arch == model::Arch::kLlama) o.untied_head = true;
  o.seed = 5;
  const std::string path = dir.path(name);
  auto st = synth::write_synthetic_model(o, path);
  EXPECT_TRUE(st.ok()) << st.message();
  return path;
}

QuantizeReport quantize(const std::string& in, const std::string& out, TensorType t) {
  auto r = quantize_file(in, out, {.type = t});
  EXPECT_TRUE(r.ok()) << r.message();
  return r.ok() ? *r : QuantizeReport{};
}

// Same tensors (names, types, shapes, bytes) and the same metadata, key by key.
void expect_same_file(const std::string& a_path, const std::string& b_path) {
  auto a = gguf::File::open(a_path);
  auto b = gguf::File::open(b_path);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->metadata().size(), b->metadata().size());
  for (size_t i = 0; i < a->metadata().size(); ++i) {
    EXPECT_EQ(a->metadata()[i].key, b->metadata()[i].key);
    EXPECT_EQ(a->metadata()[i].value.type(), b->metadata()[i].value.type());
    EXPECT_EQ(a->metadata()[i].value.to_display(SIZE_MAX),
              b->metadata()[i].value.to_display(SIZE_MAX))
        << a->metadata()[i].key;
  }
  ASSERT_EQ(a->tensors().size(), b->tensors().size());
  for (size_t i = 0; i < a->tensors().size(); ++i) {
    const auto& ta = a->tensors()[i];
    const auto& tb = b->tensors()[i];
    EXPECT_EQ(ta.name, tb.name);
    EXPECT_EQ(ta.type, tb.type) << ta.name;
    EXPECT_EQ(ta.dims, tb.dims) << ta.name;
    const auto da = a->tensor_data(ta), db = b->tensor_data(tb);
    EXPECT_TRUE(da.size() == db.size() && std::memcmp(da.data(), db.data(), da.size()) == 0)
        << ta.name << " differs";
  }
}

TEST(Quantize, ProjectionNames) {
  for (const char* yes : {"blk.0.attn_q.weight", "blk.12.attn_output.weight",
                          "blk.3.ffn_down.weight", "blk.29.ffn_gate.weight", "blk.7.attn_v.weight"})
    EXPECT_TRUE(is_projection_name(yes)) << yes;
  for (const char* no : {"token_embd.weight", "blk.0.attn_norm.weight", "blk.0.attn_q.scale",
                         "blk..attn_q.weight", "blk.x.attn_q.weight", "blk.0.attn_q.weight.x",
                         "blk.0.attn_qq.weight", "output.weight", "blk.0.ffn_sub_norm.weight"})
    EXPECT_FALSE(is_projection_name(no)) << no;
}

TEST(Quantize, TernaryRoundTripIsByteIdenticalAndEqualsSynth) {
  test::TempDir dir;
  for (auto arch : {model::Arch::kBitnetB158, model::Arch::kLlama}) {
    SCOPED_TRACE(arch == model::Arch::kLlama ? "llama" : "bitnet-b1.58");
    const std::string i2s = synth_model(dir, "i2s.gguf", TensorType::I2_S, arch);
    const std::string tq2 = synth_model(dir, "tq2.gguf", TensorType::TQ2_0, arch);
    const std::string tq1 = synth_model(dir, "tq1.gguf", TensorType::TQ1_0, arch);
    const QuantizeReport r = quantize(i2s, dir.path("a.gguf"), TensorType::TQ2_0);
    EXPECT_EQ(r.converted, 7 * 2);  // 7 projections x 2 blocks of the tiny preset
    EXPECT_GT(r.copied, 0);
    expect_same_file(dir.path("a.gguf"), tq2);
    quantize(dir.path("a.gguf"), dir.path("b.gguf"), TensorType::TQ1_0);
    expect_same_file(dir.path("b.gguf"), tq1);
    quantize(dir.path("b.gguf"), dir.path("c.gguf"), TensorType::I2_S);
    expect_same_file(dir.path("c.gguf"), i2s);
  }
}

TEST(Quantize, ExactlyTernaryFloatsPackWithoutLoss) {
  test::TempDir dir;
  const std::string f16 = synth_model(dir, "f16.gguf", TensorType::F16);
  const std::string i2s = synth_model(dir, "i2s.gguf", TensorType::I2_S);
  const std::string tq2 = synth_model(dir, "tq2.gguf", TensorType::TQ2_0);
  const std::string f32 = synth_model(dir, "f32.gguf", TensorType::F32);
  quantize(f16, dir.path("a.gguf"), TensorType::I2_S);
  expect_same_file(dir.path("a.gguf"), i2s);
  quantize(f16, dir.path("b.gguf"), TensorType::TQ2_0);
  expect_same_file(dir.path("b.gguf"), tq2);
  // And back: the ternary weights dequantized are the float file's weights.
  quantize(i2s, dir.path("c.gguf"), TensorType::F32);
  expect_same_file(dir.path("c.gguf"), f32);
  const QuantizeReport same = quantize(i2s, dir.path("d.gguf"), TensorType::I2_S);
  EXPECT_EQ(same.converted, 0);
  EXPECT_EQ(same.unchanged, 14);
}

// Rewrites the bytes of one tensor of a GGUF file in place.
void patch_tensor(const std::string& path, const std::string& tensor, size_t at, const void* bytes,
                  size_t n) {
  uint64_t offset = 0;
  {
    auto f = gguf::File::open(path);
    ASSERT_TRUE(f.ok());
    const gguf::TensorInfo* t = f->find_tensor(tensor);
    ASSERT_NE(t, nullptr);
    offset = f->data_offset() + t->offset + at;
  }
  std::fstream s(path, std::ios::in | std::ios::out | std::ios::binary);
  s.seekp(static_cast<std::streamoff>(offset));
  s.write(static_cast<const char*>(bytes), static_cast<std::streamsize>(n));
}

TEST(Quantize, NonTernaryFloatsNeedAbsmean) {
  test::TempDir dir;
  const std::string f32 = synth_model(dir, "f32.gguf", TensorType::F32);
  const float odd = 0.03f;  // inside the tensor's range (its scale is 1/16)
  patch_tensor(f32, "blk.1.ffn_up.weight", 40, &odd, 4);
  auto r = quantize_file(f32, dir.path("out.gguf"), {.type = TensorType::TQ2_0});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("blk.1.ffn_up.weight: not ternary (weight 10 is 0.0299999993"),
            std::string::npos)
      << r.message();
  EXPECT_NE(r.message().find("--ternarize absmean"), std::string::npos);
  EXPECT_EQ(r.message().find('\n'), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir.path("out.gguf"))) << "a failed run leaves no file";

  auto ok = quantize_file(f32, dir.path("out.gguf"),
                          {.type = TensorType::I2_S, .ternarize_absmean = true});
  ASSERT_TRUE(ok.ok()) << ok.message();
  EXPECT_EQ(ok->ternarized, 1);
  EXPECT_EQ(ok->converted, 14);
}

TEST(Quantize, I2sScaleWithoutAnFp16FormNeedsScaleRounding) {
  test::TempDir dir;
  const std::string i2s = synth_model(dir, "i2s.gguf", TensorType::I2_S);
  // The scale sits after the codes: n/4 bytes in.
  size_t n = 0;
  {
    auto f = gguf::File::open(i2s);
    n = static_cast<size_t>(f->find_tensor("blk.0.attn_k.weight")->n_elements);
  }
  const float scale = 0.3f;  // not an fp16 value
  patch_tensor(i2s, "blk.0.attn_k.weight", n / 4, &scale, 4);
  auto r = quantize_file(i2s, dir.path("out.gguf"), {.type = TensorType::TQ1_0});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("blk.0.attn_k.weight (I2_S -> TQ1_0)"), std::string::npos)
      << r.message();
  EXPECT_NE(r.message().find("--scale-rounding fp16"), std::string::npos);
  auto ok = quantize_file(i2s, dir.path("out.gguf"),
                          {.type = TensorType::TQ1_0, .round_scale_fp16 = true});
  ASSERT_TRUE(ok.ok()) << ok.message();
  const double want = std::fabs(static_cast<double>(fp16_to_fp32(fp32_to_fp16(0.3f))) - 0.3f) /
                      static_cast<double>(0.3f);
  EXPECT_NEAR(ok->max_scale_rounding, want, 1e-12);
  EXPECT_LT(ok->max_scale_rounding, 1.0 / 2048);
}

TEST(Quantize, MixedBlockScalesHaveNoI2sForm) {
  test::TempDir dir;
  const std::string tq2 = synth_model(dir, "tq2.gguf", TensorType::TQ2_0);
  // Block 1's fp16 d (the last 2 bytes of its 66) doubled.
  const uint16_t d = fp32_to_fp16(1.0f);
  patch_tensor(tq2, "blk.0.ffn_down.weight", 66 + 64, &d, 2);
  auto r = quantize_file(tq2, dir.path("out.gguf"), {.type = TensorType::I2_S});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("blk.0.ffn_down.weight (TQ2_0 -> I2_S)"), std::string::npos)
      << r.message();
}

TEST(Quantize, BadArgumentsAreOneLineErrors) {
  test::TempDir dir;
  const std::string i2s = synth_model(dir, "i2s.gguf", TensorType::I2_S);
  auto same = quantize_file(i2s, i2s, {.type = TensorType::TQ2_0});
  ASSERT_FALSE(same.ok());
  EXPECT_NE(same.message().find("is the input file"), std::string::npos);
  auto q = quantize_file(i2s, dir.path("x.gguf"), {.type = TensorType::Q8_0});
  ASSERT_FALSE(q.ok());
  auto missing = quantize_file(dir.path("none.gguf"), dir.path("x.gguf"), {});
  ASSERT_FALSE(missing.ok());
  auto cli = test::run_command(test::bitnet_binary() + " quantize " + i2s + " " +
                               dir.path("y.gguf") + " Q9_9");
  EXPECT_EQ(cli.exit_code, 1);
  EXPECT_NE(cli.err.find("unknown type 'Q9_9'"), std::string::npos) << cli.err;
}

// The TQ2_0 file quantize makes from an I2_S one runs bit-identically with the pinned llama.cpp
// (bitnet and llama families, which upstream llama.cpp runs).
TEST(Quantize, Tq2ResultCrossValidatesWithLlamaCpp) {
  test::TempDir dir;
  for (auto arch : {model::Arch::kBitnet, model::Arch::kLlama}) {
    const std::string name = arch == model::Arch::kLlama ? "llama" : "bitnet";
    const std::string i2s = synth_model(dir, name + "-i2s.gguf", TensorType::I2_S, arch);
    const std::string out = dir.path(name + "-tq2.gguf");
    quantize(i2s, out, TensorType::TQ2_0);
    const std::string receipt = dir.path(name + ".json");
    auto r = test::run_command(test::bitnet_binary() + " crossval -m " + out +
                               " -p 'Hello world' -n 3 --threads 2 -q --json " + receipt);
    ASSERT_EQ(r.exit_code, 0) << name << ": " << r.err << r.out;
    std::ifstream f(receipt);
    const auto j = nlohmann::json::parse(f);
    EXPECT_TRUE(j["summary"]["passed"].get<bool>()) << name;
    EXPECT_EQ(j["reference"]["cpu_variant"], "x64");
    for (const auto& p : j["positions"]) EXPECT_EQ(p["max_abs"].get<double>(), 0.0) << name;
  }
}

}  // namespace
}  // namespace bitnet::convert
