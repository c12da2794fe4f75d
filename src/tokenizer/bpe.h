// Byte-level BPE (tokenizer.ggml.model = "gpt2"): merges applied by rank inside each word.
//
// The reference works on token texts (GPT-2 mapped characters) and looks merges up by string
// pairs. We map everything to raw bytes and integer ids once at load time: every string that
// can appear as a symbol (each single byte, both sides and the result of each merge) gets an
// id - the token id when it is a token, otherwise a "virtual" id past the vocabulary - and the
// merge table is keyed by id pairs. The merge order (lowest rank first, leftmost first on ties)
// and the fallbacks for symbols that are not tokens are the reference's.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.h"
#include "tokenizer/hash_maps.h"
#include "tokenizer/vocab.h"

namespace bitnet::tokenizer {

class BytePairEncoder {
 public:
  static Result<BytePairEncoder> build(
      const std::vector<TokenData>& tokens,
      const std::vector<std::pair<std::string, std::string>>& merges);

  // Appends the ids for one pre-tokenized word (raw bytes, non-empty).
  void encode_word(std::string_view word, bool ignore_merges, std::vector<TokenId>& out) const;

  // Token whose raw bytes are `bytes`, or kNoToken.
  TokenId find_raw(std::string_view bytes) const { return raw_to_id_.find(bytes); }
  size_t n_merges() const { return merges_.size(); }

 private:
  struct Symbol {
    int32_t id;  // token id, or a virtual id >= n_tokens_
    int32_t prev;
    int32_t next;
    uint32_t len;  // bytes; 0 once merged into the left neighbour
  };
  void emit_symbol(const Symbol& sym, std::string_view word, uint32_t begin,
                   std::vector<TokenId>& out) const;
  void merge_small(std::vector<Symbol>& syms) const;
  void merge_heap(std::vector<Symbol>& syms) const;

  int32_t n_tokens_ = 0;
  StringIdMap raw_to_id_;                // raw bytes of tokens and of virtual symbols
  int32_t byte_symbol_[256] = {};        // symbol id of each single byte
  TokenId single_char_token_[256] = {};  // token whose stored text is exactly this one byte
  MergeMap merges_;
};

}  // namespace bitnet::tokenizer
