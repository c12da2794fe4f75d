#include "tokenizer/chat_template.h"

#include <gtest/gtest.h>

namespace bitnet::tokenizer {
namespace {

const std::vector<ChatMessage> kChat = {
    {"system", "You are helpful."}, {"user", "Hi!"}, {"assistant", "Hello."}, {"user", " Bye "}};

TEST(ChatTemplate, Bitnet) {
  auto s = apply_chat_template(ChatTemplate::kBitnet, kChat, true);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s,
            "System: You are helpful.<|eot_id|>User: Hi!<|eot_id|>Assistant: Hello.<|eot_id|>"
            "User:  Bye <|eot_id|>Assistant: ");
}

TEST(ChatTemplate, Llama3) {
  auto s = apply_chat_template(ChatTemplate::kLlama3, {{"user", " Bye "}}, true);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s,
            "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplate, Falcon3) {
  auto s = apply_chat_template(ChatTemplate::kFalcon3, kChat, true);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s,
            "<|system|>\nYou are helpful.\n<|user|>\nHi!\n<|assistant|>\nHello.\n"
            "<|user|>\n Bye \n<|assistant|>\n");
  EXPECT_EQ(*chat_template_from_name("falcon3"), ChatTemplate::kFalcon3);
  EXPECT_EQ(chat_template_name(ChatTemplate::kFalcon3), "falcon3");
  // Detected as llama.cpp does: the role markers with </s>, and not those of ChatML or Phi-3.
  EXPECT_EQ(detect_chat_template("{{ '<|user|>\n' }}{{ '<|assistant|>\n' }}{{ '</s>' }}"),
            ChatTemplate::kFalcon3);
  EXPECT_EQ(detect_chat_template("{{ '<|user|>' }}{{ '<|assistant|>' }}{{ '<|end|>' }}</s>"),
            ChatTemplate::kRaw);
  EXPECT_EQ(detect_chat_template("{{ '<|user|>' }}{{ '<|assistant|>' }}"), ChatTemplate::kRaw);
}

TEST(ChatTemplate, RawAndNames) {
  EXPECT_EQ(*apply_chat_template(ChatTemplate::kRaw, kChat, true),
            "You are helpful.Hi!Hello. Bye ");
  EXPECT_EQ(*chat_template_from_name("bitnet"), ChatTemplate::kBitnet);
  EXPECT_EQ(*chat_template_from_name("llama3"), ChatTemplate::kLlama3);
  EXPECT_FALSE(chat_template_from_name("chatml").ok());
  EXPECT_FALSE(apply_chat_template(ChatTemplate::kBitnet, {{"tool", "x"}}, false).ok());
}

TEST(ChatTemplate, Detect) {
  EXPECT_EQ(detect_chat_template(""), ChatTemplate::kBitnet);
  EXPECT_EQ(detect_chat_template("{{ '<|start_header_id|>' + role }}"), ChatTemplate::kLlama3);
  EXPECT_EQ(detect_chat_template("{{ 'Assistant: ' }}{{ '<|eot_id|>' }}"), ChatTemplate::kBitnet);
  EXPECT_EQ(detect_chat_template("{{ '<|im_start|>' }}"), ChatTemplate::kRaw);
}

}  // namespace
}  // namespace bitnet::tokenizer
