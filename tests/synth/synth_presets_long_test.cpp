// A published shape at full size (long: a ~270 MB file): bitnet_b1_58-large, every block, as
// `bitnet synth --preset bitnet-large` writes it, is named by inspect and runs greedily with the
// same output over 1 and 2 threads.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace bitnet {
namespace {

TEST(SynthPresetsLong, BitnetLargeFullSize) {
  test::TempDir dir;
  const auto path = dir.path("bitnet-large.gguf");
  const std::string bin = test::bitnet_binary();
  auto s = test::run_command(bin + " synth -q --preset bitnet-large --weights i2_s -o " + path);
  ASSERT_EQ(s.exit_code, 0) << s.err;
  auto i = test::run_command(bin + " inspect " + path);
  ASSERT_EQ(i.exit_code, 0) << i.err;
  EXPECT_NE(i.out.find("  shape: bitnet_b1_58-large\n"), std::string::npos) << i.out;
  EXPECT_NE(i.out.find("  family: bitnet ("), std::string::npos) << i.out;
  EXPECT_NE(i.out.find("vocab=32002"), std::string::npos) << i.out;
  std::string ids[2];
  for (int t = 1; t <= 2; ++t) {
    auto r = test::run_command(bin + " run -m " + path + " -p \"The capital of France\" -n 6 " +
                               "--greedy --json --threads " + std::to_string(t));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ids[t - 1] = nlohmann::json::parse(r.out)["generated_ids"].dump();
  }
  EXPECT_EQ(ids[0], ids[1]);
}

}  // namespace
}  // namespace bitnet
