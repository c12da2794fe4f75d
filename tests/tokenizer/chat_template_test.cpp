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

TEST(ChatTemplate, Chatml) {
  auto s = apply_chat_template(ChatTemplate::kChatml, kChat, true);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s,
            "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n"
            "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\n Bye <|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(*chat_template_from_name("chatml"), ChatTemplate::kChatml);
  EXPECT_EQ(chat_template_name(ChatTemplate::kChatml), "chatml");
  // Phi-4 and SmolVLM also open turns with <|im_start|>; llama.cpp tells them apart by these.
  EXPECT_EQ(detect_chat_template("{{ '<|im_start|>' }}{{ '<|im_sep|>' }}"), ChatTemplate::kRaw);
  EXPECT_EQ(detect_chat_template("{{ '<|im_start|>' }}<end_of_utterance>"), ChatTemplate::kRaw);
}

// bitnet.cpp's falcon_e: role and content run together, one message a line.
TEST(ChatTemplate, FalconE) {
  auto s = apply_chat_template(ChatTemplate::kFalconE, kChat, true);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, "systemYou are helpful.\nuserHi!\nassistantHello.\nuser Bye \nassistant\n");
  EXPECT_EQ(*apply_chat_template(ChatTemplate::kFalconE, kChat, false),
            "systemYou are helpful.\nuserHi!\nassistantHello.\nuser Bye \n");
  EXPECT_EQ(*chat_template_from_name("falcon_e"), ChatTemplate::kFalconE);
  EXPECT_EQ(chat_template_name(ChatTemplate::kFalconE), "falcon_e");
}

TEST(ChatTemplate, RawAndNames) {
  EXPECT_EQ(*apply_chat_template(ChatTemplate::kRaw, kChat, true),
            "You are helpful.Hi!Hello. Bye ");
  EXPECT_EQ(*chat_template_from_name("bitnet"), ChatTemplate::kBitnet);
  EXPECT_EQ(*chat_template_from_name("llama3"), ChatTemplate::kLlama3);
  EXPECT_FALSE(chat_template_from_name("vicuna").ok());
  EXPECT_FALSE(apply_chat_template(ChatTemplate::kBitnet, {{"tool", "x"}}, false).ok());
}

TEST(ChatTemplate, Detect) {
  EXPECT_EQ(detect_chat_template(""), ChatTemplate::kBitnet);
  EXPECT_EQ(detect_chat_template("{{ '<|start_header_id|>' + role }}"), ChatTemplate::kLlama3);
  EXPECT_EQ(detect_chat_template("{{ 'Assistant: ' }}{{ '<|eot_id|>' }}"), ChatTemplate::kBitnet);
  EXPECT_EQ(detect_chat_template("{{ '<|im_start|>' }}"), ChatTemplate::kChatml);
  EXPECT_EQ(detect_chat_template("{{ '<|im_start|>' }}<|user|><|assistant|></s>"),
            ChatTemplate::kChatml);
  EXPECT_EQ(detect_chat_template("{{ '<|unknown|>' }}"), ChatTemplate::kRaw);
}

}  // namespace
}  // namespace bitnet::tokenizer
