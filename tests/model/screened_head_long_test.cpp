// The screened exact LM head on the 2B4T shape (two blocks: the head, 128256 x 2560 F16, is
// what matters here), both BitNet weight formats: identical to the full exact head wherever
// sampling looks (screened_check.h). Long: each model is ~0.8 GB.
#include "screened_check.h"
#include "synth/synth.h"
#include "test_util.h"

namespace bitnet::model {
namespace {

std::string make_model(const bitnet::test::TempDir& dir, gguf::TensorType wt, Arch arch) {
  synth::SynthOptions o;
  o.config = *synth::preset_config("2b4t", arch);
  o.config.n_layers = 2;
  o.weight_type = wt;
  o.vocab_path = std::string(BITNET_REFERENCE_DIR) + "/models/ggml-vocab-llama-bpe.gguf";
  o.seed = 1;
  const std::string path = dir.path("2b4t-2l.gguf");
  auto st = synth::write_synthetic_model(o, path);
  EXPECT_TRUE(st.ok()) << st.message();
  return path;
}

TEST(ScreenedHeadModel, Shape2b4tI2sEqualsFullHead) {
  bitnet::test::TempDir dir;
  test::expect_screened_equals_file(make_model(dir, gguf::TensorType::I2_S, Arch::kBitnetB158), 8);
}

TEST(ScreenedHeadModel, Shape2b4tTq2EqualsFullHead) {
  bitnet::test::TempDir dir;
  test::expect_screened_equals_file(make_model(dir, gguf::TensorType::TQ2_0, Arch::kBitnet), 8);
}

}  // namespace
}  // namespace bitnet::model
