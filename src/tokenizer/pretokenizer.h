// Pre-tokenizers: split text into "words" before BPE, reproducing the llama.cpp regexes exactly.
//
// llama.cpp selects a list of regexes from `tokenizer.ggml.pre` and applies them in sequence, each
// one splitting the pieces left by the previous (matches and the gaps between them both become
// pieces). Some regexes have hand-written matchers there; the rest go through std::regex on a
// "collapsed" copy of the text where each non-ASCII codepoint becomes one byte naming its
// category. Both behaviours, including their corner cases, are reproduced here with hand-written
// matchers over our own Unicode tables (unicode_tables.h); no std::regex is used.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

namespace bitnet::tokenizer {

enum class PreTokenizerKind {
  kDefault,    // llama.cpp's fallback when tokenizer.ggml.pre is missing or "default"
  kLlama3,     // llama-bpe, llama3, dbrx, smaug-bpe, ...
  kGpt2,       // gpt-2, mpt, olmo, phi-2, ...
  kQwen2,      // qwen2, stablelm2, ... (llama3 regex with single digits)
  kQwen35,     // qwen35 (qwen2 with combining marks joined to letters)
  kStarcoder,  // starcoder, refact, command-r, smollm, ... (digits isolated, then gpt-2)
  kFalcon,     // falcon (punctuation runs, gpt-2, digit triples)
};

// What a `tokenizer.ggml.pre` name implies besides the regexes (the reference's per-name flags).
struct PreTokenizerPreset {
  PreTokenizerKind kind;
  bool ignore_merges;  // a word that is itself a token is emitted without running merges
  bool add_bos;        // default for add_bos before tokenizer.ggml.add_bos_token overrides it
  bool clean_spaces;   // detokenizer clean-up (" ." -> ".") is on by default for this family
};

// Maps a `tokenizer.ggml.pre` value to its preset; nullopt for names we do not implement.
std::optional<PreTokenizerPreset> pre_tokenizer_from_name(std::string_view name);
// Canonical name of a kind ("default", "llama-bpe", "gpt-2", ...).
std::string_view pre_tokenizer_name(PreTokenizerKind kind);

// Splits canonical UTF-8 (see utf8.h: canonicalize_utf8) into words, appending byte spans of
// `text` to `words` in order. The spans cover the text exactly, without overlap.
void pre_tokenize(PreTokenizerKind kind, std::string_view text,
                  std::vector<std::string_view>& words);

}  // namespace bitnet::tokenizer
