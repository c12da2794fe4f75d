#include "tokenizer/special_tokens.h"

#include <algorithm>

namespace bitnet::tokenizer {
namespace {

bool is_ascii_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

}  // namespace

SpecialTokenSplitter::SpecialTokenSplitter(const std::vector<TokenData>& tokens) {
  constexpr uint32_t kSplitting = tokattr::kControl | tokattr::kUserDefined | tokattr::kUnknown;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if ((tokens[i].attr & kSplitting) && !tokens[i].text.empty()) {
      specials_.push_back({static_cast<TokenId>(i), tokens[i].text, tokens[i].attr});
    }
  }
  // The reference sorts by length only, with an unstable sort; ties keep id order here. Ties can
  // only matter for two equally long special texts that overlap in the input.
  std::stable_sort(specials_.begin(), specials_.end(), [](const Special& a, const Special& b) {
    return a.text.size() > b.text.size();
  });
  trie_.emplace_back();
  for (size_t s = 0; s < specials_.size(); ++s) {
    int32_t node = 0;
    for (char ch : specials_[s].text) {
      const auto byte = static_cast<uint8_t>(ch);
      int32_t next = child(node, byte);
      if (next < 0) {
        next = static_cast<int32_t>(trie_.size());
        auto& kids = trie_[node].children;
        kids.insert(std::upper_bound(kids.begin(), kids.end(), std::make_pair(byte, INT32_MIN)),
                    {byte, next});
        trie_.emplace_back();  // may reallocate: `kids` is not used after this
      }
      node = next;
    }
    if (trie_[node].special < 0) trie_[node].special = static_cast<int32_t>(s);
  }
}

int32_t SpecialTokenSplitter::child(int32_t node, uint8_t byte) const {
  for (const auto& [b, next] : trie_[node].children) {
    if (b == byte) return next;
    if (b > byte) break;
  }
  return -1;
}

void SpecialTokenSplitter::split(std::string_view text, bool parse_special,
                                 std::vector<Fragment>& out) const {
  out.clear();
  if (text.empty()) return;
  out.push_back({kNoToken, 0, text.size()});
  if (specials_.empty()) return;

  // Which special tokens occur anywhere in the text (a fragment is a substring of the text).
  thread_local std::vector<uint8_t> present;
  present.assign(specials_.size(), 0);
  bool any = false;
  const auto& root = trie_[0].children;
  for (size_t i = 0; i < text.size(); ++i) {
    if (root.empty()) break;
    int32_t node = child(0, static_cast<uint8_t>(text[i]));
    for (size_t j = i + 1; node >= 0; ++j) {
      if (trie_[node].special >= 0) {
        present[trie_[node].special] = 1;
        any = true;
      }
      if (j >= text.size()) break;
      node = child(node, static_cast<uint8_t>(text[j]));
    }
  }
  if (!any) return;

  thread_local std::vector<Fragment> next;
  for (size_t s = 0; s < specials_.size(); ++s) {
    if (!present[s]) continue;
    const Special& sp = specials_[s];
    if (!parse_special && (sp.attr & (tokattr::kControl | tokattr::kUnknown))) continue;
    next.clear();
    for (const Fragment& f : out) {
      if (f.token != kNoToken) {
        next.push_back(f);
        continue;
      }
      size_t begin = f.begin;
      size_t length = f.length;
      while (length > 0) {
        const size_t match = text.substr(0, begin + length).find(sp.text, begin);
        if (match == std::string_view::npos) {
          next.push_back({kNoToken, begin, length});
          break;
        }
        size_t left = match - begin;
        if (sp.attr & tokattr::kLstrip) {
          while (left > 0 && is_ascii_space(text[begin + left - 1])) --left;
        }
        if (left > 0) next.push_back({kNoToken, begin, left});
        next.push_back({sp.id, 0, 0});
        size_t right_begin = match + sp.text.size();
        size_t right_length = begin + length - right_begin;
        if (sp.attr & tokattr::kRstrip) {
          while (right_length > 0 && is_ascii_space(text[right_begin])) {
            ++right_begin;
            --right_length;
          }
        }
        begin = right_begin;
        length = right_length;
      }
    }
    out.swap(next);
  }
}

}  // namespace bitnet::tokenizer
