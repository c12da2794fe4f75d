#include "tokenizer/vocab.h"

#include <algorithm>
#include <cctype>
#include <initializer_list>
#include <set>
#include <string_view>
#include <unordered_map>

namespace bitnet::tokenizer {

uint32_t attr_from_gguf_token_type(int32_t type) {
  switch (static_cast<GgufTokenType>(type)) {
    case GgufTokenType::kUnknown:
      return tokattr::kUnknown;
    case GgufTokenType::kUnused:
      return tokattr::kUnused;
    case GgufTokenType::kNormal:
      return tokattr::kNormal;
    case GgufTokenType::kControl:
      return tokattr::kControl;
    case GgufTokenType::kUserDefined:
      return tokattr::kUserDefined;
    case GgufTokenType::kByte:
      return tokattr::kByte;
    default:
      return tokattr::kUndefined;
  }
}

namespace {

bool is_one_of(std::string_view s, std::initializer_list<std::string_view> names) {
  return std::find(names.begin(), names.end(), s) != names.end();
}

bool contains_any(std::string_view s, std::initializer_list<std::string_view> parts) {
  for (std::string_view p : parts) {
    if (s.find(p) != std::string_view::npos) return true;
  }
  return false;
}

}  // namespace

void finalize_special_tokens(VocabSpec& spec) {
  auto& tokens = spec.tokens;
  const auto n = static_cast<TokenId>(tokens.size());
  auto mark_control = [&](TokenId id) { tokens[id].attr |= tokattr::kControl; };

  // Token-text lookup; a later duplicate wins, as in the reference's map.
  std::unordered_map<std::string_view, TokenId> by_text;
  by_text.reserve(tokens.size());
  for (TokenId i = 0; i < n; ++i) by_text[tokens[i].text] = i;

  // Converters do not always record these ids; the reference recognises them by their text and
  // makes sure they are control tokens (so they are neither split nor printed by accident).
  auto detect = [&](TokenId& id, std::initializer_list<std::string_view> names) {
    if (id != kNoToken) return;
    for (std::string_view name : names) {
      auto it = by_text.find(name);
      if (it == by_text.end()) continue;
      id = it->second;
      mark_control(id);
      return;
    }
  };
  // Iterating names in the given order rather than in hash order; with one such token per
  // vocabulary (the normal case) the result is the same.
  detect(spec.eot, {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                    "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]",
                    "<\xEF\xBD\x9C"
                    "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
                    "<end_of_utterance>"});
  detect(spec.eom, {"<|eom_id|>"});
  TokenId fim_pre = kNoToken, fim_suf = kNoToken, fim_mid = kNoToken;
  TokenId fim_pad = kNoToken, fim_rep = kNoToken, fim_sep = kNoToken;
  detect(fim_pre, {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<PRE>", "\xE2\x96\x81<PRE>",
                   "<|code_prefix|>", "<|prefix|>"});
  detect(fim_suf, {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<SUF>", "\xE2\x96\x81<SUF>",
                   "<|code_suffix|>", "<|suffix|>"});
  detect(fim_mid, {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<MID>", "\xE2\x96\x81<MID>",
                   "<|code_middle|>", "<|middle|>"});
  detect(fim_pad, {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"});
  detect(fim_rep, {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"});
  detect(fim_sep, {"<|file_sep|>"});

  // Control tokens named "unused..." are placeholders.
  for (TokenId i = 0; i < n; ++i) {
    auto& t = tokens[i];
    if ((t.attr & tokattr::kControl) && t.text.find("unused") != std::string::npos) {
      t.attr |= tokattr::kUnused;
    }
  }

  std::set<TokenId> eog;
  for (TokenId id : {fim_pad, fim_rep, fim_sep}) {
    if (id != kNoToken) eog.insert(id);
  }
  for (TokenId i = 0; i < n; ++i) {
    if (is_one_of(tokens[i].text, {"<|eot_id|>",
                                   "<|im_end|>",
                                   "<|end|>",
                                   "<|return|>",
                                   "<|call|>",
                                   "<|flush|>",
                                   "<|calls|>",
                                   "<end_of_turn>",
                                   "<|endoftext|>",
                                   "</s>",
                                   "<|eom_id|>",
                                   "<EOT>",
                                   "_<EOT>",
                                   "[EOT]",
                                   "[EOS]",
                                   "<|end_of_text|>",
                                   "<end_of_utterance>",
                                   "<eos>",
                                   "<turn|>",
                                   "<|tool_response>",
                                   "<\xEF\xBD\x9C"
                                   "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
                                   "[e~["})) {
      eog.insert(i);
      mark_control(i);
    }
  }
  // gpt-oss channel markers are always rendered.
  for (TokenId i = 0; i < n; ++i) {
    if (is_one_of(tokens[i].text, {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"})) {
      tokens[i].attr = tokattr::kUserDefined;
    }
  }
  for (TokenId id : {spec.eos, spec.eot, spec.eom}) {
    if (id != kNoToken) eog.insert(id);
  }
  // Harmony / solar-open: "<|end|>" separates messages there and must not stop generation.
  {
    bool has_return = false, has_call = false, has_flush = false;
    TokenId end_id = kNoToken;
    for (TokenId id : eog) {
      const std::string& t = tokens[id].text;
      if (t == "<|return|>") has_return = true;
      if (t == "<|call|>" || t == "<|calls|>") has_call = true;
      if (t == "<|flush|>") has_flush = true;
      if (t == "<|end|>") end_id = id;
    }
    if (end_id != kNoToken && has_call && (has_return || has_flush)) {
      eog.erase(end_id);
      tokens[end_id].attr = tokattr::kUserDefined;
    }
  }
  spec.eog.assign(eog.begin(), eog.end());

  // Attributes the reference keys on model names.
  std::string name = spec.general_name;
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto set_attr = [&](std::string_view text, uint32_t attr, bool on) {
    auto it = by_text.find(text);
    if (it == by_text.end()) return;
    auto& a = tokens[it->second].attr;
    a = on ? (a | attr) : (a & ~attr);
  };
  if (contains_any(spec.pre_name, {"jina-v2-de", "jina-v2-es", "jina-v2-code"})) {
    set_attr("<mask>", tokattr::kLstrip, true);
  } else if (contains_any(name, {"phi-3", "phi3"})) {
    for (auto& t : tokens) {
      if (t.attr & (tokattr::kControl | tokattr::kUserDefined | tokattr::kUnknown)) {
        t.attr |= tokattr::kRstrip;
      }
    }
    set_attr("</s>", tokattr::kRstrip, true);
    for (std::string_view t : {"<unk>", "<s>", "<|endoftext|>"}) {
      set_attr(t, tokattr::kRstrip, false);
    }
  } else if (contains_any(name, {"modern-bert"})) {
    set_attr("[MASK]", tokattr::kLstrip, true);
  }
}

}  // namespace bitnet::tokenizer
