// Tokenizer from GGUF metadata (tokenizer.ggml.*), with the defaults and per-name presets the
// reference applies, so that a file means the same vocabulary here as there.
#include <string>

#include "gguf/reader.h"
#include "tokenizer/tokenizer.h"

namespace bitnet::tokenizer {
namespace {

constexpr const char* kModelKey = "tokenizer.ggml.model";
constexpr const char* kPreKey = "tokenizer.ggml.pre";
constexpr const char* kTokensKey = "tokenizer.ggml.tokens";
constexpr const char* kScoresKey = "tokenizer.ggml.scores";
constexpr const char* kTypesKey = "tokenizer.ggml.token_type";
constexpr const char* kMergesKey = "tokenizer.ggml.merges";

std::optional<bool> get_bool(const gguf::File& f, const char* key) {
  const gguf::Value* v = f.find(key);
  return v ? v->as_bool() : std::nullopt;
}

// An array of strings, or an error naming the key.
Result<const gguf::Array*> string_array(const gguf::File& f, const char* key) {
  const gguf::Value* v = f.find(key);
  if (v == nullptr) return make_error("%s: missing metadata key '%s'", f.path().c_str(), key);
  const gguf::Array* a = v->as_array();
  if (a == nullptr || a->element_type != gguf::ValueType::STRING) {
    return make_error("%s: metadata key '%s' is not an array of strings", f.path().c_str(), key);
  }
  return a;
}

}  // namespace

Result<Tokenizer> Tokenizer::from_gguf(const gguf::File& f, const LoadOptions& options) {
  VocabSpec spec;
  spec.source = f.path();
  spec.source_kind = "gguf";
  BITNET_ASSIGN_OR_RETURN(spec.model_name, f.get_string(kModelKey));
  if (const gguf::Value* v = f.find("general.name"); v && v->as_string()) {
    spec.general_name = *v->as_string();
  }
  if (const gguf::Value* v = f.find("tokenizer.chat_template"); v && v->as_string()) {
    spec.chat_template = *v->as_string();
  }

  if (spec.model_name == "gpt2") {
    spec.model = TokenizerModel::kBytePairBpe;
    spec.bos = 11;  // the reference's defaults for this model, normally overridden below
    spec.eos = 11;
    spec.clean_spaces = true;
    const gguf::Value* pre = f.find(kPreKey);
    if (pre && !pre->as_string()) {
      return make_error("%s: metadata key '%s' is not a string", f.path().c_str(), kPreKey);
    }
    spec.pre_name = pre ? *pre->as_string() : "";
    std::string chosen = spec.pre_name.empty() ? "default" : spec.pre_name;
    if (spec.pre_name.empty()) {
      // The 2B4T GGUF has no pre-tokenizer name; the reference then uses its "default" regexes.
      spec.pre_origin = std::string(kPreKey) + " missing: llama.cpp default";
    } else {
      spec.pre_origin = std::string(kPreKey) + " = " + spec.pre_name;
    }
    if (options.pre_tokenizer) {
      chosen = *options.pre_tokenizer;
      spec.pre_origin = "forced by option (file: " +
                        (spec.pre_name.empty() ? std::string("none") : spec.pre_name) + ")";
    }
    auto preset = pre_tokenizer_from_name(chosen);
    if (!preset) {
      return make_error("%s: unsupported pre-tokenizer '%s'", f.path().c_str(), chosen.c_str());
    }
    spec.pre = preset->kind;
    spec.ignore_merges = preset->ignore_merges;
    spec.add_bos = preset->add_bos;
    spec.clean_spaces = preset->clean_spaces;
    BITNET_ASSIGN_OR_RETURN(const gguf::Array* merges, string_array(f, kMergesKey));
    spec.merges.reserve(merges->items.size());
    for (const gguf::Value& m : merges->items) {
      // "left right", split at the first space after the first byte (a side may be a space
      // character's mapped form, never a raw space).
      const std::string& s = *m.as_string();
      const size_t space = s.size() > 1 ? s.find(' ', 1) : std::string::npos;
      if (space == std::string::npos) {
        spec.merges.emplace_back();
      } else {
        spec.merges.emplace_back(s.substr(0, space), s.substr(space + 1));
      }
    }
  } else if (spec.model_name == "llama") {
    spec.model = TokenizerModel::kSentencePiece;
    spec.bos = 1;
    spec.eos = 2;
    spec.unk = 0;
    spec.add_space_prefix = true;
    spec.add_bos = true;
  } else {
    return make_error("%s: unsupported tokenizer model '%s' (supported: gpt2, llama)",
                      f.path().c_str(), spec.model_name.c_str());
  }
  if (auto b = get_bool(f, "tokenizer.ggml.add_space_prefix")) spec.add_space_prefix = *b;

  BITNET_ASSIGN_OR_RETURN(const gguf::Array* tokens, string_array(f, kTokensKey));
  const size_t n = tokens->items.size();
  if (n == 0) return make_error("%s: '%s' is empty", f.path().c_str(), kTokensKey);
  if (n >= static_cast<size_t>(INT32_MAX)) {
    return make_error("%s: too many tokens (%zu)", f.path().c_str(), n);
  }
  const gguf::Array* scores = nullptr;
  if (const gguf::Value* v = f.find(kScoresKey)) {
    scores = v->as_array();
    if (!scores || (scores->element_type != gguf::ValueType::F32 &&
                    scores->element_type != gguf::ValueType::I32)) {
      return make_error("%s: '%s' is not an f32 or i32 array", f.path().c_str(), kScoresKey);
    }
    if (scores->items.size() < n) {
      return make_error("%s: '%s' has %zu entries for %zu tokens", f.path().c_str(), kScoresKey,
                        scores->items.size(), n);
    }
  }
  const gguf::Array* types = nullptr;
  if (const gguf::Value* v = f.find(kTypesKey)) {
    types = v->as_array();
    if (!types || types->element_type != gguf::ValueType::I32) {
      return make_error("%s: '%s' is not an i32 array", f.path().c_str(), kTypesKey);
    }
    if (types->items.size() < n) {
      return make_error("%s: '%s' has %zu entries for %zu tokens", f.path().c_str(), kTypesKey,
                        types->items.size(), n);
    }
  }
  spec.tokens.resize(n);
  for (size_t i = 0; i < n; ++i) {
    TokenData& t = spec.tokens[i];
    t.text = *tokens->items[i].as_string();
    if (t.text.empty()) t.text = "[EMPTY_" + std::to_string(i) + "]";  // as the reference does
    if (scores) t.score = static_cast<float>(scores->items[i].as_number().value_or(0.0));
    t.attr =
        types
            ? attr_from_gguf_token_type(static_cast<int32_t>(types->items[i].as_int().value_or(0)))
            : tokattr::kNormal;
  }

  // Special ids: defaults out of range are dropped; a key overrides when it is in range.
  auto special_id = [&](const char* key, TokenId& id) {
    if (id >= 0 && static_cast<size_t>(id) >= n) id = kNoToken;
    const gguf::Value* v = f.find(key);
    if (!v) return;
    auto u = v->as_uint();
    if (u && *u < n) id = static_cast<TokenId>(*u);
  };
  special_id("tokenizer.ggml.bos_token_id", spec.bos);
  special_id("tokenizer.ggml.eos_token_id", spec.eos);
  special_id("tokenizer.ggml.eot_token_id", spec.eot);
  special_id("tokenizer.ggml.eom_token_id", spec.eom);
  special_id("tokenizer.ggml.unknown_token_id", spec.unk);
  special_id("tokenizer.ggml.seperator_token_id", spec.sep);
  special_id("tokenizer.ggml.padding_token_id", spec.pad);
  if (auto b = get_bool(f, "tokenizer.ggml.add_bos_token")) spec.add_bos = *b;
  if (auto b = get_bool(f, "tokenizer.ggml.add_eos_token")) spec.add_eos = *b;

  finalize_special_tokens(spec);
  return from_spec(std::move(spec));
}

Result<Tokenizer> Tokenizer::load(const std::string& path, const LoadOptions& options) {
  if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0) {
    return from_hf_json(path, options);
  }
  BITNET_ASSIGN_OR_RETURN(auto file, gguf::File::open(path));
  return from_gguf(file, options);
}

}  // namespace bitnet::tokenizer
