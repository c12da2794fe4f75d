#include "tokenizer/spm.h"

#include <algorithm>
#include <cstdio>
#include <queue>

#include "tokenizer/utf8.h"

namespace bitnet::tokenizer {

Result<SentencePieceEncoder> SentencePieceEncoder::build(const std::vector<TokenData>& tokens,
                                                         TokenId unk) {
  SentencePieceEncoder e;
  e.unk_ = unk;
  e.text_to_id_.reserve(tokens.size());
  e.scores_.reserve(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    e.text_to_id_.insert(tokens[i].text, static_cast<int32_t>(i), /*overwrite=*/true);
    e.scores_.push_back(tokens[i].score);
  }
  for (int b = 0; b < 256; ++b) {
    char hex[8];
    std::snprintf(hex, sizeof(hex), "<0x%02X>", b);
    TokenId id = e.find(hex);
    if (id < 0) {
      const char c = static_cast<char>(b);
      id = e.find(std::string_view(&c, 1));
    }
    e.byte_token_[b] = id;
  }
  return e;
}

void SentencePieceEncoder::encode(std::string_view text, std::vector<TokenId>& out) const {
  if (text.empty()) return;
  struct Symbol {
    uint32_t begin;
    uint32_t len;  // 0 once merged into the left neighbour
    int32_t prev;
    int32_t next;
  };
  struct Candidate {
    float score;
    int32_t left;
    int32_t right;
    uint32_t size;
    bool operator<(const Candidate& o) const {  // highest score first, then leftmost
      return score < o.score || (score == o.score && left > o.left);
    }
  };
  thread_local std::vector<Symbol> syms;
  syms.clear();
  // Characters by their lead byte only: a malformed sequence still yields some split, and the
  // byte fallback below then emits its bytes one by one.
  for (size_t off = 0; off < text.size();) {
    const size_t len =
        std::min(utf8_length_from_lead(static_cast<uint8_t>(text[off])), text.size() - off);
    const auto idx = static_cast<int32_t>(syms.size());
    syms.push_back({static_cast<uint32_t>(off), static_cast<uint32_t>(len), idx - 1,
                    off + len == text.size() ? -1 : idx + 1});
    off += len;
  }
  thread_local std::vector<Candidate> storage;
  storage.clear();
  std::priority_queue<Candidate, std::vector<Candidate>> queue(std::less<Candidate>(),
                                                               std::move(storage));
  auto consider = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const uint32_t size = syms[l].len + syms[r].len;
    const TokenId id = find(text.substr(syms[l].begin, size));
    if (id < 0) return;
    queue.push({scores_[id], l, r, size});
  };
  for (int32_t i = 1; i < static_cast<int32_t>(syms.size()); ++i) consider(i - 1, i);
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    Symbol& left = syms[c.left];
    Symbol& right = syms[c.right];
    if (left.len == 0 || right.len == 0 || left.len + right.len != c.size) continue;
    left.len += right.len;
    right.len = 0;
    left.next = right.next;
    if (right.next >= 0) syms[right.next].prev = c.left;
    consider(left.prev, c.left);
    consider(c.left, left.next);
  }
  for (int32_t i = 0; i >= 0; i = syms[i].next) {
    const std::string_view piece = text.substr(syms[i].begin, syms[i].len);
    const TokenId id = find(piece);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    for (char c : piece) {
      const TokenId b = byte_token_[static_cast<uint8_t>(c)];
      // The reference has no answer for a byte without a token (it throws); use <unk>.
      if (b >= 0) {
        out.push_back(b);
      } else if (unk_ >= 0) {
        out.push_back(unk_);
      }
    }
  }
}

}  // namespace bitnet::tokenizer
