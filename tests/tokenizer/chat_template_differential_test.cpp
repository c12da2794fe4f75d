// Our chat templates against the pinned llama.cpp's llama_chat_apply_template: the same
// conversations rendered by name ("llama3", "falcon3", "chatml") must be byte-identical, and so
// must a template detected from a Jinja string. `bitnet` and `falcon_e` are bitnet.cpp's templates,
// which upstream llama.cpp does not have, and `raw` is ours only; none of them is compared.
#include <gtest/gtest.h>
#include <llama.h>

#include <string>
#include <vector>

#include "tokenizer/chat_template.h"

namespace bitnet::tokenizer {
namespace {

// llama.cpp's rendering; `tmpl` is a built-in name or a Jinja string it detects one from.
std::string reference_render(const std::string& tmpl, const std::vector<ChatMessage>& chat,
                             bool add_ass) {
  std::vector<llama_chat_message> msgs;
  for (const ChatMessage& m : chat) msgs.push_back({m.role.c_str(), m.content.c_str()});
  std::string buf(256, '\0');
  int32_t n = llama_chat_apply_template(tmpl.c_str(), msgs.data(), msgs.size(), add_ass, buf.data(),
                                        static_cast<int32_t>(buf.size()));
  if (n > static_cast<int32_t>(buf.size())) {
    buf.resize(n);
    n = llama_chat_apply_template(tmpl.c_str(), msgs.data(), msgs.size(), add_ass, buf.data(),
                                  static_cast<int32_t>(buf.size()));
  }
  EXPECT_GE(n, 0) << "llama.cpp does not know the template " << tmpl;
  buf.resize(n < 0 ? 0 : n);
  return buf;
}

const std::vector<std::vector<ChatMessage>>& conversations() {
  static const std::vector<std::vector<ChatMessage>> all = {
      {{"system", "You are a helpful assistant."}, {"user", "What is 2+2?"}},
      {{"user", "Hi!"},
       {"assistant", "Hello. How can I help?"},
       {"user", "Tell me a joke."},
       {"assistant", "Why did the chicken cross the road?"},
       {"user", "Why?"}},
      {{"system", ""}, {"user", ""}},                                           // empty contents
      {{"user", "  padded with spaces \n\n"}, {"assistant", "\tand a tab\t"}},  // trimming
      {{"system", "Réponds en français, s'il te plaît."},
       {"user", "Grüße aus Zürich! 東京 🚀 — “quotes” and ünïcödé"}},
      {{"user", "Markers in text: <|user|> <|eot_id|> </s> {{ role }}"}},
  };
  return all;
}

TEST(ChatTemplateDifferential, NamedTemplatesMatchLlamaCpp) {
  for (ChatTemplate t : {ChatTemplate::kLlama3, ChatTemplate::kFalcon3, ChatTemplate::kChatml}) {
    const std::string name(chat_template_name(t));
    for (size_t c = 0; c < conversations().size(); ++c) {
      for (bool add_ass : {false, true}) {
        SCOPED_TRACE(name + ", conversation " + std::to_string(c) +
                     (add_ass ? ", generation prompt" : ""));
        auto ours = apply_chat_template(t, conversations()[c], add_ass);
        ASSERT_TRUE(ours.ok()) << ours.message();
        EXPECT_EQ(*ours, reference_render(name, conversations()[c], add_ass));
      }
    }
  }
}

// Jinja strings of each family (the markers that decide detection): both engines must pick the
// same template and render the same bytes.
TEST(ChatTemplateDifferential, DetectedTemplatesMatchLlamaCpp) {
  const std::vector<std::pair<std::string, ChatTemplate>> jinja = {
      {"{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
       "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}",
       ChatTemplate::kLlama3},
      {"{% for message in messages %}{% if message['role'] == 'user' %}{{ '<|user|>\\n' + "
       "message['content'] + '\\n' }}{% elif message['role'] == 'assistant' %}{{ "
       "'<|assistant|>\\n' + message['content'] + '</s>' }}{% endif %}{% endfor %}",
       ChatTemplate::kFalcon3},
      {"{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
       "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt "
       "%}{{ '<|im_start|>assistant\\n' }}{% endif %}",
       ChatTemplate::kChatml},
  };
  for (const auto& [tmpl, expected] : jinja) {
    SCOPED_TRACE(std::string(chat_template_name(expected)));
    EXPECT_EQ(detect_chat_template(tmpl), expected);
    for (const auto& chat : conversations()) {
      auto ours = apply_chat_template(detect_chat_template(tmpl), chat, true);
      ASSERT_TRUE(ours.ok());
      EXPECT_EQ(*ours, reference_render(tmpl, chat, true));
    }
  }
}

}  // namespace
}  // namespace bitnet::tokenizer
