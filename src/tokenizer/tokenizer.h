// Text <-> token ids for the models this engine runs, with the reference engine's exact ids.
//
//   BITNET_ASSIGN_OR_RETURN(auto tok, Tokenizer::load("model.gguf"));
//   std::vector<TokenId> ids = tok.encode("Hello", {.add_special = true});
//   std::string text = tok.decode(ids);
//
// Supported: byte-level BPE ("gpt2" GGUF model, Llama 3 / BitNet 2B4T vocabulary) with the
// pre-tokenizers listed in pretokenizer.h, and SentencePiece BPE ("llama" model, Llama 2
// vocabulary). Sources: GGUF metadata, or a Hugging Face tokenizer.json.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "tokenizer/vocab.h"

namespace bitnet::gguf {
class File;
}

namespace bitnet::tokenizer {

struct LoadOptions {
  // Forces a pre-tokenizer (byte-level BPE only), e.g. "default" to reproduce bitnet.cpp with
  // a tokenizer.json, or "llama-bpe" for a GGUF file that lacks tokenizer.ggml.pre.
  std::optional<std::string> pre_tokenizer;
};

struct EncodeOptions {
  bool add_special = true;     // BOS/EOS as the vocabulary asks (add_bos / add_eos)
  bool parse_special = false;  // text such as "<|eot_id|>" becomes that control token
};

struct DecodeOptions {
  bool remove_special = false;  // drop a leading BOS / trailing EOS the vocabulary adds
  bool render_special = true;   // control tokens print their text (else nothing)
  // The reference's clean-up of spaces before punctuation (" ." -> "."), which it applies by
  // default for many byte-level vocabularies. Off here: decode(encode(x)) == x.
  bool clean_spaces = false;
};

// What is in use, for --verbose and run receipts.
struct TokenizerInfo {
  std::string model;                 // "gpt2 (byte-level BPE)" / "llama (SentencePiece BPE)"
  std::string source;                // path
  std::string source_kind;           // "gguf" / "tokenizer.json"
  std::string pre_tokenizer;         // e.g. "default"; "" for SentencePiece
  std::string pre_tokenizer_origin;  // e.g. "tokenizer.ggml.pre missing: llama.cpp default"
  size_t n_tokens = 0;
  size_t n_merges = 0;
  size_t n_special = 0;
  TokenId bos = kNoToken;
  TokenId eos = kNoToken;
  TokenId eot = kNoToken;
  bool add_bos = false;
  bool add_eos = false;
  bool add_space_prefix = false;
  bool clean_spaces = false;
};

class Tokenizer {
 public:
  // A GGUF model/vocabulary file, or a tokenizer.json (chosen by the .json extension).
  static Result<Tokenizer> load(const std::string& path, const LoadOptions& options = {});
  static Result<Tokenizer> from_gguf(const gguf::File& file, const LoadOptions& options = {});
  static Result<Tokenizer> from_hf_json(const std::string& path, const LoadOptions& options = {});
  static Result<Tokenizer> from_spec(VocabSpec spec);

  std::vector<TokenId> encode(std::string_view text, const EncodeOptions& options = {}) const;
  void encode(std::string_view text, const EncodeOptions& options,
              std::vector<TokenId>& out) const;  // appends

  std::string decode(std::span<const TokenId> ids, const DecodeOptions& options = {}) const;
  // The bytes one token stands for (may be part of a UTF-8 character). Unknown ids give "".
  std::string_view token_to_piece(TokenId id, bool render_special = true) const;
  // The token's stored text (GPT-2 mapped characters / U+2581 for spaces).
  const std::string& token_text(TokenId id) const;
  uint32_t token_attr(TokenId id) const;
  std::optional<TokenId> find_token(std::string_view stored_text) const;

  size_t n_tokens() const;
  TokenId bos() const;
  TokenId eos() const;
  TokenId eot() const;
  bool is_eog(TokenId id) const;
  const std::vector<TokenId>& eog_tokens() const;
  bool add_bos() const;
  // The vocabulary as loaded, without its merges (dropped once the encoder holds them).
  const VocabSpec& spec() const;

  TokenizerInfo info() const;
  std::string describe() const;  // one line

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

// The vocabulary a tokenizer.json (and the tokenizer_config.json beside it) describes, as read
// (before finalize_special_tokens): what `bitnet convert` writes as GGUF tokenizer keys.
Result<VocabSpec> read_hf_tokenizer_json(const std::string& path, const LoadOptions& options = {});
// The Split regex a tokenizer.json carries for a pre-tokenizer kind (nullopt: none we write).
std::optional<std::string_view> hf_pre_tokenizer_regex(PreTokenizerKind kind);

}  // namespace bitnet::tokenizer
