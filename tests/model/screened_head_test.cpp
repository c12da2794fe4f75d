// The screened exact LM head on tiny synthetic models (both BitNet weight formats, and with
// logits made to tie exactly or within one f16 ulp in pairs): identical to the full exact head
// wherever sampling looks (screened_check.h).
#include "screened_check.h"
#include "synth/synth.h"
#include "test_util.h"

namespace bitnet::model {
namespace {

std::string make_model(const bitnet::test::TempDir& dir, gguf::TensorType wt, Arch arch) {
  synth::SynthOptions o;
  o.config = *synth::preset_config("tiny", arch);
  o.config.n_ctx_train = 1024;
  o.weight_type = wt;
  o.vocab_path = std::string(BITNET_REFERENCE_DIR) + "/models/ggml-vocab-llama-bpe.gguf";
  o.seed = 11;
  const std::string path = dir.path(std::string(gguf::tensor_type_name(wt)) + ".gguf");
  auto st = synth::write_synthetic_model(o, path);
  EXPECT_TRUE(st.ok()) << st.message();
  return path;
}

TEST(ScreenedHeadModel, TinyI2sEqualsFullHead) {
  bitnet::test::TempDir dir;
  test::expect_screened_equals_file(make_model(dir, gguf::TensorType::I2_S, Arch::kBitnetB158), 12);
}

TEST(ScreenedHeadModel, TinyTq2EqualsFullHead) {
  bitnet::test::TempDir dir;
  test::expect_screened_equals_file(make_model(dir, gguf::TensorType::TQ2_0, Arch::kBitnet), 12);
}

TEST(ScreenedHeadModel, TiesAndNearTiesEqualFullHead) {
  bitnet::test::TempDir dir;
  const std::string path = make_model(dir, gguf::TensorType::I2_S, Arch::kBitnetB158);
  test::make_rows_tie(path);
  test::expect_screened_equals_file(path, 12);
}

}  // namespace
}  // namespace bitnet::model
