// The tokenizer test vectors shipped with the pinned llama.cpp, for every vocabulary whose
// model type we implement. Each must pass 100%; the summary line reports per-vocab rates.
#include "tokenizer/vocab_vectors.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "tokenizer/tokenizer.h"

namespace bitnet::tokenizer {
namespace {

std::string vocab_path(const std::string& name) {
  return std::string(BITNET_REFERENCE_DIR) + "/models/ggml-vocab-" + name + ".gguf";
}

class VocabVectors : public ::testing::TestWithParam<std::string> {};

TEST_P(VocabVectors, MatchReference) {
  const std::string path = vocab_path(GetParam());
  if (!std::filesystem::exists(path + ".inp")) GTEST_SKIP() << "no vectors at " << path;
  auto tok = Tokenizer::load(path);
  ASSERT_TRUE(tok.ok()) << tok.message();
  const auto vectors = testing::read_vocab_vectors(path);
  ASSERT_FALSE(vectors.empty());
  size_t passed = 0;
  for (const auto& v : vectors) {
    const auto ids = tok->encode(v.input, {.add_special = false, .parse_special = false});
    if (ids == v.expected) {
      ++passed;
      continue;
    }
    std::string got, want;
    for (auto id : ids) got += std::to_string(id) + " ";
    for (auto id : v.expected) want += std::to_string(id) + " ";
    ADD_FAILURE() << GetParam() << ": input '" << v.input << "'\n  got:  " << got
                  << "\n  want: " << want;
  }
  std::printf("[vectors] %-16s %zu/%zu passed (%s)\n", GetParam().c_str(), passed, vectors.size(),
              tok->describe().c_str());
  EXPECT_EQ(passed, vectors.size());
}

INSTANTIATE_TEST_SUITE_P(Supported, VocabVectors,
                         ::testing::Values("llama-bpe", "llama-spm", "gpt-2", "qwen2", "phi-3",
                                           "command-r", "falcon", "mpt", "refact", "starcoder",
                                           "qwen35"),
                         [](const auto& param_info) {
                           std::string n = param_info.param;
                           for (char& c : n) {
                             if (c == '-') c = '_';
                           }
                           return n;
                         });

// Vocabularies with vectors whose model or pre-tokenizer we do not implement: loading must fail
// with a clear message (never crash), and the report names them.
TEST(VocabVectors, UnsupportedAreReported) {
  for (const char* name : {"bert-bge", "deepseek-coder", "deepseek-llm", "gemma-4"}) {
    const std::string path = vocab_path(name);
    if (!std::filesystem::exists(path)) continue;
    auto tok = Tokenizer::load(path);
    EXPECT_FALSE(tok.ok()) << name;
    std::printf("[vectors] %-16s unsupported: %s\n", name, tok.ok() ? "?" : tok.message().c_str());
  }
}

}  // namespace
}  // namespace bitnet::tokenizer
