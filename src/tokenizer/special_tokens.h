// Splitting text around special tokens before normal tokenisation.
//
// Which tokens take part: control and unknown tokens only when the caller asks to parse special
// text (so "<|eot_id|>" typed by a user stays plain text by default); user-defined tokens always.
// The reference handles them one token at a time, longest text first, each splitting every
// remaining text fragment at all its occurrences; that order decides overlaps, so we keep it.
// To stay fast with hundreds of special tokens, one trie pass over the text first finds which
// tokens occur at all, and only those are applied.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/vocab.h"

namespace bitnet::tokenizer {

struct Fragment {
  TokenId token;  // kNoToken for text
  size_t begin;   // text fragments: byte range in the input
  size_t length;
};

class SpecialTokenSplitter {
 public:
  SpecialTokenSplitter() = default;
  explicit SpecialTokenSplitter(const std::vector<TokenData>& tokens);

  // Replaces `out` with the fragments of `text` (text fragments are never empty).
  void split(std::string_view text, bool parse_special, std::vector<Fragment>& out) const;

  size_t size() const { return specials_.size(); }

 private:
  struct Special {
    TokenId id;
    std::string_view text;  // points into the vocabulary, which outlives this
    uint32_t attr;
  };
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> children;  // sorted by byte
    int32_t special = -1;                               // index into specials_ ending here
  };
  int32_t child(int32_t node, uint8_t byte) const;

  std::vector<Special> specials_;  // in application order: longest first
  std::vector<Node> trie_;
};

}  // namespace bitnet::tokenizer
