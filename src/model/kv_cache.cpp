#include "model/kv_cache.h"

#include <algorithm>
#include <cstring>

namespace bitnet::model {

Result<KvCache> KvCache::create(const KvCacheOptions& o) {
  if (o.n_layers < 1 || o.n_kv_heads < 1 || o.head_dim < 1)
    return make_error("KV cache: layers, KV heads and head size must be positive");
  if (o.n_ctx < 1) return make_error("KV cache: context length %d must be positive", o.n_ctx);
  if (o.n_seq_max < 1 || o.n_seq_max > 4096)
    return make_error("KV cache: sequence count %d is out of range (1..4096)", o.n_seq_max);
  return KvCache(o);
}

Status KvCache::check_seq(int seq) const {
  if (seq < 0 || seq >= o_.n_seq_max)
    return make_error("sequence id %d is out of range (0..%d)", seq, o_.n_seq_max - 1);
  return {};
}

int KvCache::n_pos(int seq) const {
  return check_seq(seq).ok() ? seqs_[static_cast<size_t>(seq)].n_pos : 0;
}

void KvCache::grow(Sequence& s, int capacity) {
  const size_t eb = element_bytes();
  const size_t dkv = static_cast<size_t>(n_embd_kv());
  if (s.layers.empty()) s.layers.resize(static_cast<size_t>(o_.n_layers));
  // One layer at a time, so that the old and new storage coexist for one layer only. The new
  // arrays are not zero-filled: pages past the positions written stay untouched.
  for (Layer& L : s.layers) {
    std::unique_ptr<uint8_t[]> k(new uint8_t[dkv * capacity * eb]);
    std::unique_ptr<uint8_t[]> v(new uint8_t[dkv * capacity * eb]);
    if (s.n_pos > 0) {
      for (size_t row = 0; row < dkv; ++row) {  // K: each element row keeps its first n_pos
        std::memcpy(k.get() + row * capacity * eb, L.k.get() + row * s.capacity * eb,
                    static_cast<size_t>(s.n_pos) * eb);
      }
      std::memcpy(v.get(), L.v.get(), static_cast<size_t>(s.n_pos) * dkv * eb);
    }
    L.k = std::move(k);
    L.v = std::move(v);
  }
  s.capacity = capacity;
}

Status KvCache::reserve(int seq, int n_pos) {
  BITNET_TRY(check_seq(seq));
  Sequence& s = seqs_[static_cast<size_t>(seq)];
  if (n_pos > o_.n_ctx) {
    return make_error("context full: %d tokens already in the cache + %d new > context length %d",
                      s.n_pos, n_pos - s.n_pos, o_.n_ctx);
  }
  if (n_pos <= s.capacity) return {};
  int cap = std::max(n_pos, s.capacity + s.capacity / 2);
  cap = (cap + kBlockPositions - 1) / kBlockPositions * kBlockPositions;
  grow(s, std::min(cap, o_.n_ctx));
  return {};
}

void KvCache::commit(int seq, int n_pos) {
  Sequence& s = seqs_[static_cast<size_t>(seq)];
  s.n_pos = std::max(s.n_pos, std::min(n_pos, s.capacity));
}

Status KvCache::remove(int seq, int p0, int p1) {
  BITNET_TRY(check_seq(seq));
  Sequence& s = seqs_[static_cast<size_t>(seq)];
  if (p1 < 0 || p1 > s.n_pos) p1 = s.n_pos;
  if (p0 < 0) p0 = 0;
  if (p0 >= p1) return {};
  if (p1 < s.n_pos) {
    return make_error(
        "KV cache: cannot remove positions %d..%d of sequence %d, which holds %d: "
        "only a suffix can be removed",
        p0, p1 - 1, seq, s.n_pos);
  }
  s.n_pos = p0;
  return {};
}

Status KvCache::copy(int src, int dst, int p0, int p1) {
  BITNET_TRY(check_seq(src));
  BITNET_TRY(check_seq(dst));
  const Sequence& from = seqs_[static_cast<size_t>(src)];
  if (p1 < 0) p1 = from.n_pos;
  if (p0 < 0 || p1 > from.n_pos || p0 > p1) {
    return make_error("KV cache: sequence %d holds %d positions, cannot copy %d..%d", src,
                      from.n_pos, p0, p1 - 1);
  }
  if (src == dst) return p0 == 0 ? remove(dst, p1) : make_error("KV cache: copy onto itself");
  if (seqs_[static_cast<size_t>(dst)].n_pos < p0) {
    return make_error(
        "KV cache: sequence %d holds %d positions, so it cannot take positions from "
        "%d on",
        dst, seqs_[static_cast<size_t>(dst)].n_pos, p0);
  }
  BITNET_TRY(remove(dst, p0));
  BITNET_TRY(reserve(dst, p1));
  Sequence& to = seqs_[static_cast<size_t>(dst)];
  const size_t eb = element_bytes();
  const size_t dkv = static_cast<size_t>(n_embd_kv());
  const size_t n = static_cast<size_t>(p1 - p0);
  for (size_t l = 0; l < to.layers.size(); ++l) {
    const Layer& a = from.layers[l];
    Layer& b = to.layers[l];
    for (size_t row = 0; row < dkv; ++row) {
      std::memcpy(b.k.get() + (row * to.capacity + p0) * eb,
                  a.k.get() + (row * from.capacity + p0) * eb, n * eb);
    }
    std::memcpy(b.v.get() + p0 * dkv * eb, a.v.get() + p0 * dkv * eb, n * dkv * eb);
  }
  to.n_pos = p1;
  return {};
}

void KvCache::clear() {
  for (Sequence& s : seqs_) s.n_pos = 0;
}

void KvCache::release() {
  for (Sequence& s : seqs_) s = Sequence{};
}

uint8_t* KvCache::k_head(int seq, int layer, int g) {
  Sequence& s = seqs_[static_cast<size_t>(seq)];
  return s.layers[static_cast<size_t>(layer)].k.get() + k_offset(s, g);
}

uint8_t* KvCache::v_row(int seq, int layer, int pos) {
  return seqs_[static_cast<size_t>(seq)].layers[static_cast<size_t>(layer)].v.get() + v_offset(pos);
}

const uint8_t* KvCache::k_head(int seq, int layer, int g) const {
  const Sequence& s = seqs_[static_cast<size_t>(seq)];
  return s.layers[static_cast<size_t>(layer)].k.get() + k_offset(s, g);
}

const uint8_t* KvCache::v_row(int seq, int layer, int pos) const {
  return seqs_[static_cast<size_t>(seq)].layers[static_cast<size_t>(layer)].v.get() + v_offset(pos);
}

size_t KvCache::allocated_bytes() const {
  size_t total = 0;
  for (const Sequence& s : seqs_)
    total += s.layers.size() * 2 * static_cast<size_t>(n_embd_kv()) * s.capacity * element_bytes();
  return total;
}

}  // namespace bitnet::model
