// Small open-addressing hash maps for the tokenizer's hot lookups: byte string -> token id, and
// (left id, right id) -> merge. std::unordered_map allocates per node and hashes slowly; these
// keep everything in flat arrays, which is what makes encoding faster than the reference.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace bitnet::tokenizer {

inline uint64_t mix64(uint64_t x) {
  x ^= x >> 32;
  x *= 0xD6E8FEB86659FD93ull;
  x ^= x >> 32;
  x *= 0xD6E8FEB86659FD93ull;
  x ^= x >> 32;
  return x;
}

inline uint64_t hash_bytes(std::string_view s) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ s.size();
  const char* p = s.data();
  size_t n = s.size();
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = mix64(h ^ w) + 0x9E3779B97F4A7C15ull;
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = mix64(h ^ w ^ (static_cast<uint64_t>(n) << 56));
  }
  return h;
}

// Byte string -> int32 value. Keys are copied into one arena. Insert keeps the first value for
// a key unless `overwrite`.
class StringIdMap {
 public:
  void reserve(size_t n) { rehash(capacity_for(n)); }

  void insert(std::string_view key, int32_t value, bool overwrite) {
    if ((size_ + 1) * 4 > slots_.size() * 3) rehash(capacity_for(size_ + 1) * 2);
    const uint64_t h = hash_bytes(key);
    size_t i = h & mask_;
    while (slots_[i].value != kEmpty) {
      Slot& s = slots_[i];
      if (s.hash == h && key_of(s) == key) {
        if (overwrite) s.value = value;
        return;
      }
      i = (i + 1) & mask_;
    }
    Slot& s = slots_[i];
    s.hash = h;
    s.offset = static_cast<uint32_t>(arena_.size());
    s.length = static_cast<uint32_t>(key.size());
    s.value = value;
    arena_.append(key.data(), key.size());
    ++size_;
  }

  // Returns the value, or -1 when absent.
  int32_t find(std::string_view key) const {
    if (size_ == 0) return -1;
    const uint64_t h = hash_bytes(key);
    size_t i = h & mask_;
    while (slots_[i].value != kEmpty) {
      const Slot& s = slots_[i];
      if (s.hash == h && s.length == key.size() &&
          std::memcmp(arena_.data() + s.offset, key.data(), key.size()) == 0) {
        return s.value;
      }
      i = (i + 1) & mask_;
    }
    return -1;
  }

  size_t size() const { return size_; }

 private:
  static constexpr int32_t kEmpty = INT32_MIN;
  struct Slot {
    uint64_t hash = 0;
    uint32_t offset = 0;
    uint32_t length = 0;
    int32_t value = kEmpty;
  };
  static size_t capacity_for(size_t n) {
    size_t c = 16;
    while (c * 3 < n * 4 + 4) c *= 2;
    return c;
  }
  std::string_view key_of(const Slot& s) const {
    return std::string_view(arena_.data() + s.offset, s.length);
  }
  void rehash(size_t capacity) {
    if (capacity <= slots_.size()) return;
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(capacity, Slot{});
    mask_ = capacity - 1;
    for (const Slot& s : old) {
      if (s.value == kEmpty) continue;
      size_t i = s.hash & mask_;
      while (slots_[i].value != kEmpty) i = (i + 1) & mask_;
      slots_[i] = s;
    }
  }

  std::vector<Slot> slots_;
  std::string arena_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

// (left, right) symbol ids -> merge rank and resulting symbol id.
class MergeMap {
 public:
  struct Merge {
    int32_t rank;
    int32_t result;
  };

  void reserve(size_t n) { rehash(capacity_for(n)); }

  // Keeps the first merge for a pair, as the reference does.
  void insert(int32_t left, int32_t right, Merge m) {
    if ((size_ + 1) * 4 > slots_.size() * 3) rehash(capacity_for(size_ + 1) * 2);
    const uint64_t key = pack(left, right);
    size_t i = mix64(key) & mask_;
    while (slots_[i].merge.rank >= 0) {
      if (slots_[i].key == key) return;
      i = (i + 1) & mask_;
    }
    slots_[i].key = key;
    slots_[i].merge = m;
    ++size_;
  }

  // Returns nullptr when the pair does not merge.
  const Merge* find(int32_t left, int32_t right) const {
    if (size_ == 0) return nullptr;
    const uint64_t key = pack(left, right);
    size_t i = mix64(key) & mask_;
    while (slots_[i].merge.rank >= 0) {
      if (slots_[i].key == key) return &slots_[i].merge;
      i = (i + 1) & mask_;
    }
    return nullptr;
  }

  size_t size() const { return size_; }

 private:
  struct Slot {
    uint64_t key = 0;
    Merge merge{-1, -1};
  };
  static uint64_t pack(int32_t l, int32_t r) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(l)) << 32) | static_cast<uint32_t>(r);
  }
  // At most 3/4 full, as StringIdMap: 280k merges take 512k slots (8 MB).
  static size_t capacity_for(size_t n) {
    size_t c = 16;
    while (c * 3 < n * 4 + 4) c *= 2;
    return c;
  }
  void rehash(size_t capacity) {
    if (capacity <= slots_.size()) return;
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(capacity, Slot{});
    mask_ = capacity - 1;
    for (const Slot& s : old) {
      if (s.merge.rank < 0) continue;
      size_t i = mix64(s.key) & mask_;
      while (slots_[i].merge.rank >= 0) i = (i + 1) & mask_;
      slots_[i] = s;
    }
  }

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

}  // namespace bitnet::tokenizer
