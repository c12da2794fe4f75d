#include "tokenizer/pretokenizer.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace bitnet::tokenizer {
namespace {

std::vector<std::string> split(PreTokenizerKind kind, std::string_view text) {
  std::vector<std::string_view> words;
  pre_tokenize(kind, text, words);
  return {words.begin(), words.end()};
}

using V = std::vector<std::string>;

TEST(PreTokenizer, Llama3) {
  const auto k = PreTokenizerKind::kLlama3;
  EXPECT_EQ(split(k, "Hello world"), (V{"Hello", " world"}));
  EXPECT_EQ(split(k, "I'M here"), (V{"I", "'M", " here"}));
  EXPECT_EQ(split(k, "1234567"), (V{"123", "456", "7"}));
  EXPECT_EQ(split(k, "a  b"), (V{"a", " ", " b"}));
  EXPECT_EQ(split(k, "x \n\n y"), (V{"x", " \n\n", " y"}));
  EXPECT_EQ(split(k, "!!!\n\nok"), (V{"!!!\n\n", "ok"}));
  EXPECT_EQ(split(k, "end   "), (V{"end", "   "}));
}

TEST(PreTokenizer, Gpt2) {
  const auto k = PreTokenizerKind::kGpt2;
  EXPECT_EQ(split(k, "Hello world"), (V{"Hello", " world"}));
  EXPECT_EQ(split(k, "I'M here"), (V{"I", "'", "M", " here"}));  // case-sensitive contractions
  EXPECT_EQ(split(k, "1234567"), (V{"1234567"}));
  EXPECT_EQ(split(k, "a\n\nb"), (V{"a", "\n", "\n", "b"}));
}

TEST(PreTokenizer, Qwen2SingleDigits) {
  EXPECT_EQ(split(PreTokenizerKind::kQwen2, "x 123"), (V{"x", " ", "1", "2", "3"}));
}

TEST(PreTokenizer, DefaultIsolatesPunctuationAndDigits) {
  const auto k = PreTokenizerKind::kDefault;
  // Punctuation runs split first, then GPT-2 rules, then digit runs, then triples.
  EXPECT_EQ(split(k, "Hello, world!"), (V{"Hello", ",", " world", "!"}));
  EXPECT_EQ(split(k, "it's"), (V{"it", "'", "s"}));
  EXPECT_EQ(split(k, "abc12345"), (V{"abc", "123", "45"}));
  EXPECT_EQ(split(k, "x <|eot_id|>"), (V{"x", " ", "<|", "eot", "_", "id", "|>"}));
}

TEST(PreTokenizer, NamesAndPresets) {
  auto p = pre_tokenizer_from_name("llama-bpe");
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->kind, PreTokenizerKind::kLlama3);
  EXPECT_TRUE(p->ignore_merges);
  EXPECT_TRUE(p->add_bos);
  EXPECT_EQ(pre_tokenizer_from_name("default")->kind, PreTokenizerKind::kDefault);
  EXPECT_FALSE(pre_tokenizer_from_name("deepseek-llm").has_value());
  EXPECT_EQ(pre_tokenizer_name(PreTokenizerKind::kDefault), "default");
}

TEST(PreTokenizer, SpansCoverTheText) {
  const std::string text = "Mixed\t\t 123 数字 emoji😀 'll \r\n\r\n  end";
  for (auto k : {PreTokenizerKind::kDefault, PreTokenizerKind::kLlama3, PreTokenizerKind::kGpt2,
                 PreTokenizerKind::kQwen2, PreTokenizerKind::kQwen35, PreTokenizerKind::kStarcoder,
                 PreTokenizerKind::kFalcon}) {
    std::string joined;
    for (const auto& w : split(k, text)) {
      EXPECT_FALSE(w.empty());
      joined += w;
    }
    EXPECT_EQ(joined, text) << pre_tokenizer_name(k);
  }
}

}  // namespace
}  // namespace bitnet::tokenizer
