// The screened exact LM head on the 2B4T shape (two blocks: the head, 128256 x 2560 F16, is
// what matters here), both BitNet weight formats: identical to the full exact head wherever
// sampling looks (screened_check.h). Long: each model is ~0.8 GB.
#include "screened_check.h"

namespace bitnet::model {
namespace {

std::string shape_2b4t(const bitnet::test::TempDir& dir, gguf::TensorType wt, Arch arch) {
  return test::make_model(dir, "2b4t", 2, wt, arch, 1);
}

TEST(ScreenedHeadModel, Shape2b4tI2sEqualsFullHead) {
  bitnet::test::TempDir dir;
  test::expect_screened_equals_file(shape_2b4t(dir, gguf::TensorType::I2_S, Arch::kBitnetB158), 8);
}

TEST(ScreenedHeadModel, Shape2b4tTq2EqualsFullHead) {
  bitnet::test::TempDir dir;
  test::expect_screened_equals_file(shape_2b4t(dir, gguf::TensorType::TQ2_0, Arch::kBitnet), 8);
}

}  // namespace
}  // namespace bitnet::model
