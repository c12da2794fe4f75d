#include "tokenizer/chat_template.h"

#include <string>

namespace bitnet::tokenizer {
namespace {

// Trims ASCII whitespace at both ends, as the reference's llama3 template does.
std::string_view trim_ascii(std::string_view s) {
  auto space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
  };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

Result<ChatTemplate> chat_template_from_name(std::string_view name) {
  if (name == "raw" || name == "none") return ChatTemplate::kRaw;
  if (name == "bitnet") return ChatTemplate::kBitnet;
  if (name == "llama3") return ChatTemplate::kLlama3;
  if (name == "falcon3") return ChatTemplate::kFalcon3;
  if (name == "chatml") return ChatTemplate::kChatml;
  if (name == "falcon_e") return ChatTemplate::kFalconE;
  return make_error("unknown chat template '%.*s' (known: %s)", static_cast<int>(name.size()),
                    name.data(), chat_template_names().c_str());
}

std::string_view chat_template_name(ChatTemplate t) {
  switch (t) {
    case ChatTemplate::kRaw:
      return "raw";
    case ChatTemplate::kBitnet:
      return "bitnet";
    case ChatTemplate::kLlama3:
      return "llama3";
    case ChatTemplate::kFalcon3:
      return "falcon3";
    case ChatTemplate::kChatml:
      return "chatml";
    case ChatTemplate::kFalconE:
      return "falcon_e";
  }
  return "?";
}

std::string chat_template_names() { return "bitnet, llama3, falcon3, chatml, falcon_e, raw"; }

ChatTemplate detect_chat_template(std::string_view jinja) {
  if (jinja.empty()) return ChatTemplate::kBitnet;
  auto has = [&](std::string_view s) { return jinja.find(s) != std::string_view::npos; };
  // ChatML comes first, as in llama.cpp; with <|im_sep|> (Phi-4) or <end_of_utterance> (SmolVLM)
  // the same marker starts other templates, which we do not render.
  if (has("<|im_start|>")) {
    return has("<|im_sep|>") || has("<end_of_utterance>") ? ChatTemplate::kRaw
                                                          : ChatTemplate::kChatml;
  }
  // Falcon3's Jinja writes '<|' + role + '|>' turns and ends with '</s>'. The markers it shares
  // with other families are told apart the way llama.cpp does: ChatML's <|im_start|>, Phi-3's
  // <|end|> and EXAONE's <|tool_declare|> belong to those templates, and without </s> the same
  // role markers are GLM-Edge's.
  if (has("<|assistant|>") && has("<|user|>") && has("</s>") && !has("<|im_start|>") &&
      !has("<|end|>") && !has("<|tool_declare|>")) {
    return ChatTemplate::kFalcon3;
  }
  if (has("<|start_header_id|>")) return ChatTemplate::kLlama3;
  if (has("Assistant: ") && has("<|eot_id|>")) {
    return ChatTemplate::kBitnet;
  }
  return ChatTemplate::kRaw;
}

Result<std::string> apply_chat_template(ChatTemplate t, const std::vector<ChatMessage>& messages,
                                        bool add_generation_prompt) {
  std::string out;
  for (const ChatMessage& m : messages) {
    switch (t) {
      case ChatTemplate::kRaw:
        out += m.content;
        break;
      case ChatTemplate::kBitnet: {
        const char* prefix = m.role == "system"      ? "System: "
                             : m.role == "user"      ? "User: "
                             : m.role == "assistant" ? "Assistant: "
                                                     : nullptr;
        if (prefix == nullptr) {
          return make_error("chat template bitnet: unknown role '%s'", m.role.c_str());
        }
        out += prefix;
        out += m.content;
        out += "<|eot_id|>";
        break;
      }
      case ChatTemplate::kLlama3:
        out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n";
        out += trim_ascii(m.content);
        out += "<|eot_id|>";
        break;
      case ChatTemplate::kFalcon3:
        out += "<|" + m.role + "|>\n";
        out += m.content;
        out += '\n';
        break;
      case ChatTemplate::kChatml:
        out += "<|im_start|>" + m.role + "\n";
        out += m.content;
        out += "<|im_end|>\n";
        break;
      case ChatTemplate::kFalconE:
        out += m.role;
        out += m.content;
        out += '\n';
        break;
    }
  }
  if (add_generation_prompt) {
    if (t == ChatTemplate::kBitnet) out += "Assistant: ";
    if (t == ChatTemplate::kLlama3) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
    if (t == ChatTemplate::kFalcon3) out += "<|assistant|>\n";
    if (t == ChatTemplate::kChatml) out += "<|im_start|>assistant\n";
    if (t == ChatTemplate::kFalconE) out += "assistant\n";
  }
  return out;
}

}  // namespace bitnet::tokenizer
