// Tokenizer from a Hugging Face tokenizer.json (plus tokenizer_config.json beside it, if any).
//
// tokenizer.json describes the pipeline as data: model (BPE vocab + merges), added_tokens,
// normalizer, pre_tokenizer (regex Split + ByteLevel) and post_processor (which adds BOS). We
// map it onto the same VocabSpec a GGUF file gives: the pre-tokenizer regex is recognised by
// its text and must be one we implement; a Llama 2 style file (byte fallback, U+2581 spaces)
// becomes a SentencePiece vocabulary whose scores follow the token order.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "tokenizer/tokenizer.h"

namespace bitnet::tokenizer {
namespace {

using nlohmann::json;

// Regexes as they appear in tokenizer.json files, and the matcher that reproduces each.
struct KnownRegex {
  std::string_view regex;
  PreTokenizerKind kind;
};
constexpr KnownRegex kKnownRegexes[] = {
    {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
     "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
     PreTokenizerKind::kLlama3},
    {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
     "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
     PreTokenizerKind::kQwen2},
    {"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
     PreTokenizerKind::kGpt2},
};

Result<json> read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error("%s: cannot open", path.c_str());
  std::stringstream ss;
  ss << in.rdbuf();
  json j = json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return make_error("%s: not valid JSON", path.c_str());
  return j;
}

// A member of an object, or null; by reference, so pointers into it stay valid.
const json& member(const json& obj, const char* key) {
  static const json kNull;
  if (!obj.is_object()) return kNull;
  auto it = obj.find(key);
  return it == obj.end() ? kNull : *it;
}

// Collects every object of the given "type" in a (possibly nested "Sequence") component.
void collect(const json& node, std::string_view type, std::vector<const json*>& out) {
  if (!node.is_object()) return;
  const auto t = node.find("type");
  if (t != node.end() && t->is_string() && *t == type) out.push_back(&node);
  for (const char* list : {"pretokenizers", "normalizers", "processors", "decoders"}) {
    auto it = node.find(list);
    if (it != node.end() && it->is_array()) {
      for (const json& child : *it) collect(child, type, out);
    }
  }
}

// A special-token reference in tokenizer_config.json: a string or {"content": ...}.
std::optional<std::string> token_name(const json& cfg, const char* key) {
  auto it = cfg.find(key);
  if (it == cfg.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    return (*it)["content"].get<std::string>();
  }
  return std::nullopt;
}

Status read_pre_tokenizer(const json& root, const std::string& path, VocabSpec& spec) {
  std::vector<const json*> splits, byte_levels;
  collect(member(root, "pre_tokenizer"), "Split", splits);
  collect(member(root, "pre_tokenizer"), "ByteLevel", byte_levels);
  if (splits.size() > 1) {
    return make_error("%s: %zu Split pre-tokenizers; only a single regex is supported",
                      path.c_str(), splits.size());
  }
  std::string regex;
  if (splits.size() == 1) {
    const json& pattern = member(*splits[0], "pattern");
    if (pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string()) {
      regex = pattern["Regex"].get<std::string>();
    } else {
      return make_error("%s: Split pre-tokenizer without a regex pattern", path.c_str());
    }
  } else if (!byte_levels.empty() && byte_levels[0]->value("use_regex", true)) {
    regex = std::string(kKnownRegexes[2].regex);  // ByteLevel's built-in GPT-2 regex
  }
  for (const KnownRegex& k : kKnownRegexes) {
    if (regex == k.regex) {
      spec.pre = k.kind;
      spec.pre_name = std::string(pre_tokenizer_name(k.kind));
      spec.pre_origin = "tokenizer.json regex (" + spec.pre_name + ")";
      return {};
    }
  }
  return make_error("%s: unsupported pre-tokenizer regex '%s'", path.c_str(), regex.c_str());
}

}  // namespace

namespace {

Result<VocabSpec> read_spec(const std::string& path, const LoadOptions& options) {
  BITNET_ASSIGN_OR_RETURN(json root, read_json(path));
  if (!root.is_object() || !root.contains("model") || !root["model"].is_object()) {
    return make_error("%s: no \"model\" object; not a tokenizer.json", path.c_str());
  }
  const json& model = root["model"];
  const std::string type = model.value("type", std::string("BPE"));
  if (type != "BPE") {
    return make_error("%s: unsupported tokenizer model type '%s' (supported: BPE)", path.c_str(),
                      type.c_str());
  }
  if (!model.contains("vocab") || !model["vocab"].is_object()) {
    return make_error("%s: model.vocab missing", path.c_str());
  }
  VocabSpec spec;
  spec.source = path;
  spec.source_kind = "tokenizer.json";

  // Ids: the vocab plus added tokens; holes (rare) become unused placeholders.
  size_t n = 0;
  for (const auto& [text, id] : model["vocab"].items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= INT32_MAX) {
      return make_error("%s: bad id for token '%s'", path.c_str(), text.c_str());
    }
    n = std::max<size_t>(n, id.get<size_t>() + 1);
  }
  const json added = root.value("added_tokens", json::array());
  for (const json& t : added) {
    if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() ||
        !t.contains("content") || !t["content"].is_string() || t["id"].get<int64_t>() < 0 ||
        t["id"].get<int64_t>() >= INT32_MAX) {
      return make_error("%s: malformed entry in added_tokens", path.c_str());
    }
    n = std::max<size_t>(n, t["id"].get<size_t>() + 1);
  }
  // Real vocabularies are dense; a few holes are fine, but an id far beyond the entry count
  // would make us allocate placeholders for every id below it (found by fuzz/).
  const size_t entries = model["vocab"].size() + added.size();
  if (n > 2 * entries + 1024) {
    return make_error("%s: token ids leave too many gaps (highest id %zu for %zu tokens)",
                      path.c_str(), n - 1, entries);
  }
  spec.tokens.resize(n);
  std::vector<bool> filled(n, false);
  for (const auto& [text, id] : model["vocab"].items()) {
    spec.tokens[id.get<size_t>()].text = text;
    filled[id.get<size_t>()] = true;
  }
  for (size_t i = 0; i < n; ++i) {
    if (!filled[i]) spec.tokens[i] = {"[PAD" + std::to_string(i) + "]", 0.0f, tokattr::kUnused};
  }
  for (const json& t : added) {
    TokenData& d = spec.tokens[t["id"].get<size_t>()];
    d.text = t["content"].get<std::string>();
    d.attr = t.value("special", false) ? tokattr::kControl : tokattr::kUserDefined;
    if (t.value("lstrip", false)) d.attr |= tokattr::kLstrip;
    if (t.value("rstrip", false)) d.attr |= tokattr::kRstrip;
  }

  std::vector<const json*> byte_levels;
  collect(member(root, "pre_tokenizer"), "ByteLevel", byte_levels);
  collect(member(root, "decoder"), "ByteLevel", byte_levels);
  const bool byte_level = !byte_levels.empty();
  if (byte_level) {
    spec.model = TokenizerModel::kBytePairBpe;
    spec.model_name = "gpt2";
    spec.clean_spaces = true;
    spec.ignore_merges = model.value("ignore_merges", false);
    BITNET_TRY(read_pre_tokenizer(root, path, spec));
    if (options.pre_tokenizer) {
      auto preset = pre_tokenizer_from_name(*options.pre_tokenizer);
      if (!preset) {
        return make_error("%s: unsupported pre-tokenizer '%s'", path.c_str(),
                          options.pre_tokenizer->c_str());
      }
      spec.pre = preset->kind;
      spec.pre_origin = "forced by option (file: " + spec.pre_name + ")";
    }
  } else {
    // Llama 2 style: SentencePiece pieces with U+2581 for spaces and <0xXX> byte fallback.
    // Scores are not in the file; they are derived from the merges below.
    spec.model = TokenizerModel::kSentencePiece;
    spec.model_name = "llama";
    std::vector<const json*> prepends;
    collect(member(root, "normalizer"), "Prepend", prepends);
    spec.add_space_prefix = !prepends.empty() || member(root, "normalizer").is_null();
    for (size_t i = 0; i < n; ++i) {
      TokenData& d = spec.tokens[i];
      if (d.attr != tokattr::kNormal) continue;
      if (d.text.size() == 6 && d.text.compare(0, 3, "<0x") == 0 && d.text[5] == '>') {
        d.attr = tokattr::kByte;
      }
    }
  }
  if (model.contains("unk_token") && model["unk_token"].is_string()) {
    for (size_t i = 0; i < n; ++i) {
      if (spec.tokens[i].text == model["unk_token"].get<std::string>()) {
        spec.unk = static_cast<TokenId>(i);
        spec.tokens[i].attr = tokattr::kUnknown;
      }
    }
  }

  {
    const json merges = model.value("merges", json::array());
    spec.merges.reserve(merges.size());
    for (const json& m : merges) {
      if (m.is_string()) {
        const std::string s = m.get<std::string>();
        const size_t space = s.size() > 1 ? s.find(' ', 1) : std::string::npos;
        if (space == std::string::npos) {
          spec.merges.emplace_back();
        } else {
          spec.merges.emplace_back(s.substr(0, space), s.substr(space + 1));
        }
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        spec.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      } else {
        return make_error("%s: malformed entry in model.merges", path.c_str());
      }
    }
  }

  if (spec.model == TokenizerModel::kSentencePiece) {
    // SentencePiece merges the pair making the highest-scoring piece; Hugging Face ranks merges.
    // A piece's score is minus the rank of the first merge producing it (pieces made by no
    // merge, or files without merges, fall back to minus the id: SentencePiece stores pieces in
    // score order).
    std::unordered_map<std::string, size_t> first_rank;
    for (size_t r = 0; r < spec.merges.size(); ++r) {
      first_rank.emplace(spec.merges[r].first + spec.merges[r].second, r);
    }
    for (size_t i = 0; i < n; ++i) {
      TokenData& d = spec.tokens[i];
      if (d.attr != tokattr::kNormal) continue;
      auto it = first_rank.find(d.text);
      d.score = it != first_rank.end() ? -static_cast<float>(it->second)
                                       : -static_cast<float>(spec.merges.size() + i);
    }
    spec.merges.clear();
  }

  // BOS/EOS: the post-processor template adds them; tokenizer_config.json names them.
  auto id_of = [&](const std::string& text) -> TokenId {
    for (size_t i = n; i-- > 0;) {
      if (spec.tokens[i].text == text) return static_cast<TokenId>(i);
    }
    return kNoToken;
  };
  std::vector<const json*> templates;
  collect(member(root, "post_processor"), "TemplateProcessing", templates);
  if (!templates.empty() && (*templates[0]).contains("single") &&
      (*templates[0])["single"].is_array()) {
    bool seen_text = false;
    for (const json& item : (*templates[0])["single"]) {
      if (item.contains("Sequence")) {
        seen_text = true;
      } else if (item.contains("SpecialToken") && item["SpecialToken"].contains("id")) {
        const TokenId id = id_of(item["SpecialToken"]["id"].get<std::string>());
        if (id == kNoToken) continue;
        if (seen_text) {
          spec.eos = id;
          spec.add_eos = true;
        } else {
          spec.bos = id;
          spec.add_bos = true;
        }
      }
    }
  }
  const auto config_path = std::filesystem::path(path).parent_path() / "tokenizer_config.json";
  if (std::filesystem::exists(config_path)) {
    BITNET_ASSIGN_OR_RETURN(json cfg, read_json(config_path.string()));
    if (auto name = token_name(cfg, "bos_token"); name && id_of(*name) != kNoToken) {
      spec.bos = id_of(*name);
    }
    if (auto name = token_name(cfg, "eos_token"); name && id_of(*name) != kNoToken) {
      spec.eos = id_of(*name);
    }
    if (cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean()) {
      spec.add_bos = cfg["add_bos_token"].get<bool>();
    }
    if (cfg.contains("add_eos_token") && cfg["add_eos_token"].is_boolean()) {
      spec.add_eos = cfg["add_eos_token"].get<bool>();
    }
    if (cfg.contains("chat_template") && cfg["chat_template"].is_string()) {
      spec.chat_template = cfg["chat_template"].get<std::string>();
    }
  }
  if (spec.eos == kNoToken) {
    for (const char* name : {"<|end_of_text|>", "<|endoftext|>", "</s>", "<|im_end|>"}) {
      if ((spec.eos = id_of(name)) != kNoToken) break;
    }
  }
  if (spec.model == TokenizerModel::kSentencePiece && spec.bos == kNoToken) {
    spec.bos = id_of("<s>");
    spec.add_bos = spec.bos != kNoToken;
  }

  return spec;
}

Result<Tokenizer> load_hf_json(const std::string& path, const LoadOptions& options) {
  BITNET_ASSIGN_OR_RETURN(VocabSpec spec, read_spec(path, options));
  finalize_special_tokens(spec);
  return Tokenizer::from_spec(std::move(spec));
}

}  // namespace

Result<VocabSpec> read_hf_tokenizer_json(const std::string& path, const LoadOptions& options) {
  try {
    return read_spec(path, options);
  } catch (const nlohmann::json::exception& e) {
    return make_error("%s: unexpected content: %s", path.c_str(), e.what());
  }
}

std::optional<std::string_view> hf_pre_tokenizer_regex(PreTokenizerKind kind) {
  for (const KnownRegex& k : kKnownRegexes) {
    if (k.kind == kind) return k.regex;
  }
  return std::nullopt;
}

Result<Tokenizer> Tokenizer::from_hf_json(const std::string& path, const LoadOptions& options) {
  // nlohmann::json throws on a value of an unexpected type; keep that inside the library.
  try {
    return load_hf_json(path, options);
  } catch (const nlohmann::json::exception& e) {
    return make_error("%s: unexpected content: %s", path.c_str(), e.what());
  }
}

}  // namespace bitnet::tokenizer
