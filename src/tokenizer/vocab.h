// The vocabulary as loaded from a GGUF file or a tokenizer.json, before lookup structures are
// built: token texts, scores, attributes, merges, special ids and the flags that steer encoding.
// Both loaders fill a VocabSpec; Tokenizer::create turns it into something that can encode.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/pretokenizer.h"

namespace bitnet::tokenizer {

using TokenId = int32_t;
constexpr TokenId kNoToken = -1;

enum class TokenizerModel {
  kBytePairBpe,    // tokenizer.ggml.model = "gpt2": GPT-2 byte mapping, merges by rank
  kSentencePiece,  // tokenizer.ggml.model = "llama": SentencePiece BPE, merges by score
};

// Token attributes; same meaning (and bit values) as the reference's llama_token_attr.
namespace tokattr {
constexpr uint32_t kUndefined = 0;
constexpr uint32_t kUnknown = 1u << 0;
constexpr uint32_t kUnused = 1u << 1;
constexpr uint32_t kNormal = 1u << 2;
constexpr uint32_t kControl = 1u << 3;
constexpr uint32_t kUserDefined = 1u << 4;
constexpr uint32_t kByte = 1u << 5;
constexpr uint32_t kNormalized = 1u << 6;
constexpr uint32_t kLstrip = 1u << 7;  // a special token swallows whitespace on its left
constexpr uint32_t kRstrip = 1u << 8;  // ... and on its right
constexpr uint32_t kSingleWord = 1u << 9;
}  // namespace tokattr

// GGUF tokenizer.ggml.token_type values.
enum class GgufTokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};
uint32_t attr_from_gguf_token_type(int32_t type);

struct TokenData {
  std::string text;  // as stored (byte-level BPE: GPT-2 mapped characters; SPM: with U+2581)
  float score = 0.0f;
  uint32_t attr = tokattr::kNormal;
};

struct VocabSpec {
  TokenizerModel model = TokenizerModel::kBytePairBpe;
  std::string model_name;   // "gpt2" / "llama"
  std::string source;       // file it came from, for messages and receipts
  std::string source_kind;  // "gguf" or "tokenizer.json"

  PreTokenizerKind pre = PreTokenizerKind::kDefault;  // byte-level BPE only
  std::string pre_name;    // as declared ("" when the file declares none)
  std::string pre_origin;  // why this pre-tokenizer runs, for --verbose and receipts

  std::vector<TokenData> tokens;
  std::vector<std::pair<std::string, std::string>> merges;  // rank order, stored text form

  TokenId bos = kNoToken;
  TokenId eos = kNoToken;
  TokenId eot = kNoToken;
  TokenId eom = kNoToken;
  TokenId unk = kNoToken;
  TokenId sep = kNoToken;
  TokenId pad = kNoToken;
  std::vector<TokenId> eog;  // every token that ends generation, sorted

  bool add_bos = false;
  bool add_eos = false;
  bool add_space_prefix = false;  // SPM: prepend a space to text at the start / after a special
  bool ignore_merges = false;     // BPE: whole-word vocabulary hit skips merges (llama3)
  bool clean_spaces = false;      // detokenizer clean-up the reference applies by default

  std::string general_name;   // general.name (the reference keys some attributes on it)
  std::string chat_template;  // tokenizer.chat_template, if present
};

// Steps the reference applies after reading any vocabulary: find EOT/EOM/FIM tokens by their
// text (marking them control), mark "unused" control tokens, collect the end-of-generation set,
// and apply per-model token attributes. `fill_missing_ids` false keeps ids already set.
void finalize_special_tokens(VocabSpec& spec);

}  // namespace bitnet::tokenizer
