// SentencePiece-style BPE (tokenizer.ggml.model = "llama", the Llama 2 vocabulary): start from
// UTF-8 characters and repeatedly merge the adjacent pair whose concatenation is the token with
// the highest score (leftmost first on ties); characters left without a token fall back to
// <0xXX> byte tokens. Whitespace has already been replaced by U+2581 by the caller.
#pragma once

#include <string_view>
#include <vector>

#include "core/result.h"
#include "tokenizer/hash_maps.h"
#include "tokenizer/vocab.h"

namespace bitnet::tokenizer {

class SentencePieceEncoder {
 public:
  static Result<SentencePieceEncoder> build(const std::vector<TokenData>& tokens, TokenId unk);

  void encode(std::string_view text, std::vector<TokenId>& out) const;

 private:
  TokenId find(std::string_view text) const { return text_to_id_.find(text); }

  StringIdMap text_to_id_;
  std::vector<float> scores_;
  TokenId byte_token_[256] = {};  // <0xXX>, else the one-byte text, else kNoToken
  TokenId unk_ = kNoToken;
};

}  // namespace bitnet::tokenizer
