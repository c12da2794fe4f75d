// The screened exact LM head on tiny synthetic models (both BitNet weight formats, llama's own
// output.weight head, and with
// logits made to tie exactly or within one f16 ulp in pairs): identical to the full exact head
// wherever sampling looks (screened_check.h).
#include "screened_check.h"

namespace bitnet::model {
namespace {

std::string tiny(const bitnet::test::TempDir& dir, gguf::TensorType wt, Arch arch) {
  return test::make_model(dir, "tiny", 0, wt, arch, 11);
}

TEST(ScreenedHeadModel, TinyI2sEqualsFullHead) {
  bitnet::test::TempDir dir;
  test::expect_screened_equals_file(tiny(dir, gguf::TensorType::I2_S, Arch::kBitnetB158), 12);
}

TEST(ScreenedHeadModel, TinyTq2EqualsFullHead) {
  bitnet::test::TempDir dir;
  test::expect_screened_equals_file(tiny(dir, gguf::TensorType::TQ2_0, Arch::kBitnet), 12);
}

// llama: the screen is built from its own head, output.weight (not token_embd).
TEST(ScreenedHeadModel, TinyLlamaUntiedHeadEqualsFullHead) {
  bitnet::test::TempDir dir;
  const std::string path = tiny(dir, gguf::TensorType::TQ2_0, Arch::kLlama);
  {
    auto m = Model::load(path, {.head = HeadType::kScreened});
    ASSERT_TRUE(m.ok()) << m.message();
    ASSERT_FALSE((*m)->head_is_tied());
    ASSERT_NE((*m)->screened_head(), nullptr);
  }
  test::expect_screened_equals_file(path, 12);
}

TEST(ScreenedHeadModel, TiesAndNearTiesEqualFullHead) {
  bitnet::test::TempDir dir;
  const std::string path = tiny(dir, gguf::TensorType::I2_S, Arch::kBitnetB158);
  test::make_rows_tie(path);
  test::expect_screened_equals_file(path, 12);
}

}  // namespace
}  // namespace bitnet::model
