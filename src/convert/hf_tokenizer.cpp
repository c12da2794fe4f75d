#include "convert/hf_tokenizer.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"

namespace bitnet::convert {

using gguf::Value;
using nlohmann::ordered_json;
namespace fs = std::filesystem;
namespace tk = tokenizer;

namespace {

int32_t gguf_token_type(uint32_t attr) {
  using tk::GgufTokenType;
  namespace a = tk::tokattr;
  GgufTokenType t = GgufTokenType::kNormal;
  if (attr & a::kUnknown) t = GgufTokenType::kUnknown;
  if (attr & a::kUnused) t = GgufTokenType::kUnused;
  if (attr & a::kControl) t = GgufTokenType::kControl;
  if (attr & a::kUserDefined) t = GgufTokenType::kUserDefined;
  if (attr & a::kByte) t = GgufTokenType::kByte;
  return static_cast<int32_t>(t);
}

// The keys of tokenizer_config.json that decide whether add_*_token is written.
Result<ordered_json> read_config(const fs::path& path) {
  if (!fs::exists(path)) return ordered_json::object();
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  ordered_json j = ordered_json::parse(ss.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return make_error("%s: not a JSON object", path.string().c_str());
  }
  return j;
}

const Value* find(const std::vector<gguf::KeyValue>& keys, std::string_view key) {
  for (const auto& kv : keys) {
    if (kv.key == key) return &kv.value;
  }
  return nullptr;
}

}  // namespace

Result<std::vector<gguf::KeyValue>> read_hf_tokenizer(const std::string& dir,
                                                      const HfTokenizerOptions& o) {
  const fs::path json_path = fs::path(dir) / "tokenizer.json";
  if (!fs::exists(json_path)) {
    return make_error(
        "%s: no tokenizer.json (pass --vocab FILE.gguf to take the tokenizer from "
        "a GGUF file)",
        dir.c_str());
  }
  BITNET_ASSIGN_OR_RETURN(tk::VocabSpec spec, tk::read_hf_tokenizer_json(json_path.string()));
  BITNET_ASSIGN_OR_RETURN(ordered_json cfg, read_config(fs::path(dir) / "tokenizer_config.json"));
  const bool spm = spec.model == tk::TokenizerModel::kSentencePiece;
  size_t n = spec.tokens.size();
  // generation_config.json names the ids generation starts and stops with; it wins over the
  // tokenizer files (an EOS list: its first id; the tokenizer finds EOT and the other
  // end-of-generation tokens by their text when it loads the file).
  BITNET_ASSIGN_OR_RETURN(ordered_json gen, read_config(fs::path(dir) / "generation_config.json"));
  for (auto [key, id] : {std::pair{"bos_token_id", &spec.bos}, {"eos_token_id", &spec.eos}}) {
    if (!gen.contains(key) || gen[key].is_null()) continue;
    const ordered_json& v = gen[key].is_array() && !gen[key].empty() ? gen[key][0] : gen[key];
    if (!v.is_number_integer() || v.get<int64_t>() < 0 ||
        v.get<int64_t>() >= static_cast<int64_t>(n)) {
      return make_error("%s/generation_config.json: %s is not a token id", dir.c_str(), key);
    }
    *id = static_cast<tk::TokenId>(v.get<int64_t>());
  }
  if (o.pad_to != 0 && o.pad_to < n) {
    return make_error("%s: %zu tokens, more than config.json's vocab_size %u", json_path.c_str(), n,
                      o.pad_to);
  }
  std::vector<std::string> texts;
  std::vector<int32_t> types;
  std::vector<float> scores;
  for (const tk::TokenData& t : spec.tokens) {
    texts.push_back(t.text);
    types.push_back(gguf_token_type(t.attr));
    scores.push_back(t.score);
  }
  for (; n < o.pad_to; ++n) {
    texts.push_back("[PAD" + std::to_string(n) + "]");
    types.push_back(static_cast<int32_t>(tk::GgufTokenType::kUnused));
    scores.push_back(-1000.0f);
  }
  std::vector<gguf::KeyValue> keys;
  keys.push_back({"tokenizer.ggml.model", Value(spec.model_name)});
  if (spm) {
    keys.push_back({"tokenizer.ggml.pre", Value(o.pre.value_or("default"))});
  } else if (!o.omit_pre || o.pre) {
    const std::string pre = o.pre.value_or(spec.pre_name);
    if (!tk::pre_tokenizer_from_name(pre)) {
      return make_error("--pre: unknown pre-tokenizer '%s'", pre.c_str());
    }
    keys.push_back({"tokenizer.ggml.pre", Value(pre)});
  }
  keys.push_back({"tokenizer.ggml.tokens", gguf::make_string_array(texts)});
  if (spm) keys.push_back({"tokenizer.ggml.scores", gguf::make_f32_array(scores)});
  keys.push_back({"tokenizer.ggml.token_type", gguf::make_i32_array(types)});
  if (!spm) {
    std::vector<std::string> merges;
    merges.reserve(spec.merges.size());
    for (const auto& [a, b] : spec.merges) merges.push_back(a + " " + b);
    keys.push_back({"tokenizer.ggml.merges", gguf::make_string_array(merges)});
  }
  auto id = [](tk::TokenId t) { return Value(static_cast<uint32_t>(t)); };
  if (spec.bos != tk::kNoToken) keys.push_back({"tokenizer.ggml.bos_token_id", id(spec.bos)});
  if (spec.eos != tk::kNoToken) keys.push_back({"tokenizer.ggml.eos_token_id", id(spec.eos)});
  if (spec.unk != tk::kNoToken) keys.push_back({"tokenizer.ggml.unknown_token_id", id(spec.unk)});
  if (cfg.contains("add_bos_token") || spec.add_bos) {
    keys.push_back({"tokenizer.ggml.add_bos_token", Value(spec.add_bos)});
  }
  if (cfg.contains("add_eos_token")) {
    keys.push_back({"tokenizer.ggml.add_eos_token", Value(spec.add_eos)});
  }
  if (!spec.chat_template.empty()) {
    keys.push_back({"tokenizer.chat_template", Value(spec.chat_template)});
  }
  return keys;
}

Status write_hf_tokenizer(const std::vector<gguf::KeyValue>& keys, const std::string& dir) {
  const Value* model = find(keys, "tokenizer.ggml.model");
  if (model == nullptr || model->as_string() == nullptr || *model->as_string() != "gpt2") {
    return make_error(
        "tokenizer.json: only byte-level BPE vocabularies (tokenizer.ggml.model gpt2) are "
        "written");
  }
  const Value* tokens = find(keys, "tokenizer.ggml.tokens");
  const Value* types = find(keys, "tokenizer.ggml.token_type");
  const Value* merges = find(keys, "tokenizer.ggml.merges");
  if (tokens == nullptr || tokens->as_array() == nullptr || types == nullptr ||
      types->as_array() == nullptr || merges == nullptr || merges->as_array() == nullptr ||
      types->as_array()->items.size() != tokens->as_array()->items.size()) {
    return make_error("tokenizer.json: tokens, token_type and merges are needed");
  }
  const Value* pre_v = find(keys, "tokenizer.ggml.pre");
  const std::string pre =
      pre_v && pre_v->as_string() ? *pre_v->as_string() : std::string("llama-bpe");
  const auto preset = tk::pre_tokenizer_from_name(pre);
  const auto regex = preset ? tk::hf_pre_tokenizer_regex(preset->kind) : std::nullopt;
  if (!regex) {
    return make_error("tokenizer.json: no regex known for pre-tokenizer '%s'", pre.c_str());
  }
  const auto& tok = tokens->as_array()->items;
  const auto& typ = types->as_array()->items;
  // nlohmann::json (keys in a std::map, so written sorted): json looks keys up
  // linearly, which made 128K vocabulary insertions quadratic.
  using nlohmann::json;
  json vocab = json::object(), added = json::array();
  using tk::GgufTokenType;
  for (size_t i = 0; i < tok.size(); ++i) {
    const std::string& text = *tok[i].as_string();
    const auto type = static_cast<GgufTokenType>(typ[i].as_int().value_or(1));
    if (type == GgufTokenType::kUnused && text.rfind("[PAD", 0) == 0) continue;  // padding
    if (type == GgufTokenType::kControl || type == GgufTokenType::kUserDefined) {
      added.push_back({{"id", i},
                       {"content", text},
                       {"single_word", false},
                       {"lstrip", false},
                       {"rstrip", false},
                       {"normalized", false},
                       {"special", type == GgufTokenType::kControl}});
    } else {
      vocab[text] = i;
    }
  }
  json merge_list = json::array();
  for (const Value& m : merges->as_array()->items) merge_list.push_back(*m.as_string());
  auto id_text = [&](const char* key) -> std::optional<std::string> {
    const Value* v = find(keys, key);
    if (v == nullptr || !v->as_uint() || *v->as_uint() >= tok.size()) return std::nullopt;
    return *tok[static_cast<size_t>(*v->as_uint())].as_string();
  };
  const Value* add_bos = find(keys, "tokenizer.ggml.add_bos_token");
  const Value* add_eos = find(keys, "tokenizer.ggml.add_eos_token");
  const auto bos = id_text("tokenizer.ggml.bos_token_id");
  const auto eos = id_text("tokenizer.ggml.eos_token_id");

  json root;
  root["version"] = "1.0";
  root["truncation"] = nullptr;
  root["padding"] = nullptr;
  root["added_tokens"] = added;
  root["normalizer"] = nullptr;
  root["pre_tokenizer"] = {{"type", "Sequence"},
                           {"pretokenizers",
                            {{{"type", "Split"},
                              {"pattern", {{"Regex", std::string(*regex)}}},
                              {"behavior", "Isolated"},
                              {"invert", false}},
                             {{"type", "ByteLevel"},
                              {"add_prefix_space", false},
                              {"trim_offsets", true},
                              {"use_regex", false}}}}};
  if (bos && add_bos && add_bos->as_bool().value_or(false)) {
    root["post_processor"] = {{"type", "TemplateProcessing"},
                              {"single",
                               {{{"SpecialToken", {{"id", *bos}, {"type_id", 0}}}},
                                {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}}};
  } else {
    root["post_processor"] = nullptr;
  }
  root["decoder"] = {{"type", "ByteLevel"},
                     {"add_prefix_space", true},
                     {"trim_offsets", true},
                     {"use_regex", true}};
  root["model"] = {{"type", "BPE"},
                   {"dropout", nullptr},
                   {"unk_token", nullptr},
                   {"continuing_subword_prefix", nullptr},
                   {"end_of_word_suffix", nullptr},
                   {"fuse_unk", false},
                   {"byte_fallback", false},
                   {"ignore_merges", preset->ignore_merges},
                   {"vocab", vocab},
                   {"merges", merge_list}};

  json cfg = json::object();
  if (add_bos && add_bos->as_bool()) cfg["add_bos_token"] = *add_bos->as_bool();
  if (add_eos && add_eos->as_bool()) cfg["add_eos_token"] = *add_eos->as_bool();
  if (bos) cfg["bos_token"] = *bos;
  if (eos) cfg["eos_token"] = *eos;
  if (const Value* t = find(keys, "tokenizer.chat_template"); t && t->as_string()) {
    cfg["chat_template"] = *t->as_string();
  }
  cfg["tokenizer_class"] = "PreTrainedTokenizerFast";

  for (const auto& [name, j] :
       {std::pair{"tokenizer.json", &root}, {"tokenizer_config.json", &cfg}}) {
    const fs::path p = fs::path(dir) / name;
    std::ofstream out(p, std::ios::binary);
    out << j->dump(2) << '\n';
    if (!out) return make_error("%s: cannot write", p.string().c_str());
  }
  return {};
}

}  // namespace bitnet::convert
