// Chat prompts as text, to be tokenised with parse_special = true (the markers below are
// special tokens). BOS is not part of the text: the tokenizer adds it (add_bos).
//
//   bitnet  System: {sys}<|eot_id|>User: {msg}<|eot_id|>Assistant: {reply}<|eot_id|>...
//           (bitnet.cpp's template for BitNet b1.58 2B4T; generation prompt "Assistant: ")
//   llama3  <|start_header_id|>{role}<|end_header_id|>\n\n{trimmed content}<|eot_id|>...
//           (generation prompt "<|start_header_id|>assistant<|end_header_id|>\n\n")
//   falcon3 <|{role}|>\n{content}\n... (Falcon3 Instruct, its 1.58-bit versions included;
//           generation prompt "<|assistant|>\n"; the content is not trimmed)
//   raw     the contents concatenated, nothing added
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace bitnet::tokenizer {

// kChatml: <|im_start|>role ... <|im_end|> turns (the Jinja of Falcon-E instruct files, among
// many). kFalconE: bitnet.cpp's "falcon_e" (role and content on one line, no markers); its fork
// reaches it only by name, and so do we.
enum class ChatTemplate { kRaw, kBitnet, kLlama3, kFalcon3, kChatml, kFalconE };

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

Result<ChatTemplate> chat_template_from_name(std::string_view name);
std::string_view chat_template_name(ChatTemplate t);
// All names accepted by chat_template_from_name, for help text.
std::string chat_template_names();

// Picks a template from a GGUF/HF Jinja template string; kBitnet when the string is empty (the
// official 2B4T GGUF), raw when it is not recognised.
ChatTemplate detect_chat_template(std::string_view jinja);

Result<std::string> apply_chat_template(ChatTemplate t, const std::vector<ChatMessage>& messages,
                                        bool add_generation_prompt);

}  // namespace bitnet::tokenizer
