#include "tokenizer/bpe.h"

#include <algorithm>
#include <climits>
#include <queue>

#include "tokenizer/byte_mapping.h"
#include "tokenizer/utf8.h"

namespace bitnet::tokenizer {

Result<BytePairEncoder> BytePairEncoder::build(
    const std::vector<TokenData>& tokens,
    const std::vector<std::pair<std::string, std::string>>& merges) {
  if (tokens.size() >= static_cast<size_t>(INT32_MAX / 2)) {
    return make_error("vocabulary too large (%zu tokens)", tokens.size());
  }
  BytePairEncoder e;
  e.n_tokens_ = static_cast<int32_t>(tokens.size());
  e.raw_to_id_.reserve(tokens.size() + merges.size() / 4);
  std::fill(std::begin(e.single_char_token_), std::end(e.single_char_token_), kNoToken);
  for (int32_t i = 0; i < e.n_tokens_; ++i) {
    const std::string& text = tokens[i].text;
    // Later duplicates win, like the reference's text -> id map.
    if (auto raw = decode_byte_level(text)) e.raw_to_id_.insert(*raw, i, /*overwrite=*/true);
    if (text.size() == 1) e.single_char_token_[static_cast<uint8_t>(text[0])] = i;
  }
  int32_t next_virtual = e.n_tokens_;
  auto id_of = [&](std::string_view raw) {
    int32_t id = e.raw_to_id_.find(raw);
    if (id < 0) {
      id = next_virtual++;
      e.raw_to_id_.insert(raw, id, false);
    }
    return id;
  };
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    e.byte_symbol_[b] = id_of(std::string_view(&c, 1));
  }
  e.merges_.reserve(merges.size());
  std::string joined;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    auto left = decode_byte_level(merges[rank].first);
    auto right = decode_byte_level(merges[rank].second);
    // A side that is not made of mapped characters can never equal a symbol.
    if (!left || !right || left->empty() || right->empty()) continue;
    joined = *left + *right;
    const int32_t l = id_of(*left);
    const int32_t r = id_of(*right);
    const int32_t result = id_of(joined);
    e.merges_.insert(l, r, {static_cast<int32_t>(rank), result});
  }
  return e;
}

void BytePairEncoder::emit_symbol(const Symbol& sym, std::string_view word, uint32_t begin,
                                  std::vector<TokenId>& out) const {
  if (sym.id < n_tokens_) {
    out.push_back(sym.id);
    return;
  }
  // Not a token (a vocabulary whose merges produce strings it lacks). The reference then looks
  // up each byte of the symbol's stored-text form as a one-byte token and drops the misses.
  std::string stored;
  for (uint32_t i = 0; i < sym.len; ++i) {
    stored.clear();
    append_utf8(stored, byte_to_codepoint(static_cast<uint8_t>(word[begin + i])));
    for (char c : stored) {
      const TokenId t = single_char_token_[static_cast<uint8_t>(c)];
      if (t != kNoToken) out.push_back(t);
    }
  }
}

// Lowest rank first, leftmost first among equal ranks: a linear scan over cached pair ranks.
// Used for short words, where it beats a heap.
void BytePairEncoder::merge_small(std::vector<Symbol>& syms) const {
  const int n = static_cast<int>(syms.size());
  constexpr int kMaxSmall = 64;
  MergeMap::Merge pair[kMaxSmall];
  auto lookup = [&](int i) {
    const int j = syms[i].next;
    if (j < 0) return MergeMap::Merge{INT_MAX, -1};
    const MergeMap::Merge* m = merges_.find(syms[i].id, syms[j].id);
    return m ? *m : MergeMap::Merge{INT_MAX, -1};
  };
  for (int i = 0; i < n; ++i) pair[i] = lookup(i);
  while (true) {
    int best = -1;
    int32_t best_rank = INT_MAX;
    for (int i = 0; i >= 0; i = syms[i].next) {
      if (pair[i].rank < best_rank) {
        best_rank = pair[i].rank;
        best = i;
      }
    }
    if (best < 0) break;
    Symbol& left = syms[best];
    Symbol& right = syms[left.next];
    left.id = pair[best].result;
    left.len += right.len;
    right.len = 0;
    left.next = right.next;
    if (right.next >= 0) syms[right.next].prev = best;
    pair[best] = lookup(best);
    if (left.prev >= 0) pair[left.prev] = lookup(left.prev);
  }
}

// Same order as merge_small, with a heap and lazy invalidation for long words.
void BytePairEncoder::merge_heap(std::vector<Symbol>& syms) const {
  struct Candidate {
    int32_t rank;
    int32_t left;
    int32_t right;
    int32_t left_id;
    int32_t right_id;
    int32_t result;
    bool operator<(const Candidate& o) const {  // priority_queue pops the "largest"
      return rank != o.rank ? rank > o.rank : left > o.left;
    }
  };
  std::priority_queue<Candidate> queue;
  auto consider = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const MergeMap::Merge* m = merges_.find(syms[l].id, syms[r].id);
    if (m) queue.push({m->rank, l, r, syms[l].id, syms[r].id, m->result});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(syms.size()); ++i) consider(i, i + 1);
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    Symbol& left = syms[c.left];
    Symbol& right = syms[c.right];
    // Stale when either side was merged since (ids only change by growing).
    if (left.len == 0 || right.len == 0 || left.id != c.left_id || right.id != c.right_id) {
      continue;
    }
    left.id = c.result;
    left.len += right.len;
    right.len = 0;
    left.next = right.next;
    if (right.next >= 0) syms[right.next].prev = c.left;
    consider(left.prev, c.left);
    consider(c.left, left.next);
  }
}

void BytePairEncoder::encode_word(std::string_view word, bool ignore_merges,
                                  std::vector<TokenId>& out) const {
  if (word.empty()) return;
  if (ignore_merges) {
    const int32_t id = raw_to_id_.find(word);
    if (id >= 0 && id < n_tokens_) {
      out.push_back(id);
      return;
    }
  }
  if (word.size() == 1) {
    emit_symbol({byte_symbol_[static_cast<uint8_t>(word[0])], -1, -1, 1}, word, 0, out);
    return;
  }
  thread_local std::vector<Symbol> syms;
  syms.resize(word.size());
  const auto n = static_cast<int32_t>(word.size());
  for (int32_t i = 0; i < n; ++i) {
    syms[i] = {byte_symbol_[static_cast<uint8_t>(word[i])], i - 1, i + 1 < n ? i + 1 : -1, 1};
  }
  if (n <= 64) {
    merge_small(syms);
  } else {
    merge_heap(syms);
  }
  for (int32_t i = 0; i >= 0; i = syms[i].next) {
    emit_symbol(syms[i], word, static_cast<uint32_t>(i), out);
  }
}

}  // namespace bitnet::tokenizer
