// The KV cache of a context: the keys and values of every evaluated position, per sequence.
//
// Each sequence (seq_id 0 .. n_seq_max-1) owns the cells of its positions 0 .. n_pos(seq)-1, a
// contiguous prefix: a batch appends positions at the end, remove() cuts a suffix (a chat turn
// or a server slot going back to the prefix it shares with a new prompt), copy() forks another
// sequence's prefix. Storage grows on demand in blocks of positions, so memory follows the
// positions in use rather than the context length; asking for more than the context length, or
// for a sequence id out of range, is an error.
//
// Layouts are the ones the attention kernels read (kernels/attention.h), per sequence and layer:
// K transposed per KV head, element i of position j at k[(g * head_dim + i) * stride + j] (16
// positions are one vector), V by position, v[j * n_embd_kv + g * head_dim + i]. Elements are
// f16 bits (as both reference engines store them) or f32.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/result.h"

namespace bitnet::model {

struct KvCacheOptions {
  int n_layers = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  bool f16 = true;
  int n_ctx = 0;      // positions per sequence at most
  int n_seq_max = 1;  // sequence ids 0 .. n_seq_max-1
};

class KvCache {
 public:
  // Positions are allocated in multiples of this (and grow by half again when they run out).
  static constexpr int kBlockPositions = 64;

  static Result<KvCache> create(const KvCacheOptions& o);

  const KvCacheOptions& options() const { return o_; }
  int n_ctx() const { return o_.n_ctx; }
  int n_seq_max() const { return o_.n_seq_max; }
  bool f16() const { return o_.f16; }
  size_t element_bytes() const { return o_.f16 ? 2 : 4; }
  int64_t n_embd_kv() const { return static_cast<int64_t>(o_.n_kv_heads) * o_.head_dim; }

  // Positions held for `seq` (its cells are positions 0 .. n_pos-1); 0 for a bad id.
  int n_pos(int seq) const;
  // Checks that `seq` can take positions up to n_pos - 1, allocating them; the sequence's
  // content is unchanged (its n_pos moves only with commit()).
  Status reserve(int seq, int n_pos);
  // Marks positions 0 .. n_pos-1 of `seq` as written (after a forward pass stored them).
  void commit(int seq, int n_pos);
  // Forgets positions [p0, p1) of `seq` (p1 < 0: to the end). Only a suffix can go: positions
  // past p1 would otherwise be left without the ones before them.
  Status remove(int seq, int p0, int p1 = -1);
  // Makes dst hold src's positions [p0, p1) (p1 < 0: to src's end) after its own positions
  // below p0, which it must have; whatever dst held from p0 on is dropped.
  Status copy(int src, int dst, int p0, int p1 = -1);
  // Every sequence empty (storage kept).
  void clear();
  // Every sequence empty and its storage returned.
  void release();

  // The cells of (seq, layer): K of KV head g starts at k_head(seq, layer, g), with k_stride(seq)
  // elements between consecutive i; V of position j starts at v_row(seq, layer, j).
  int64_t k_stride(int seq) const { return seqs_[static_cast<size_t>(seq)].capacity; }
  uint8_t* k_head(int seq, int layer, int g);
  uint8_t* v_row(int seq, int layer, int pos);
  const uint8_t* k_head(int seq, int layer, int g) const;
  const uint8_t* v_row(int seq, int layer, int pos) const;

  // Bytes allocated for cells (every sequence and layer).
  size_t allocated_bytes() const;

 private:
  explicit KvCache(const KvCacheOptions& o) : o_(o), seqs_(static_cast<size_t>(o.n_seq_max)) {}
  struct Layer {
    std::unique_ptr<uint8_t[]> k, v;
  };
  struct Sequence {
    int n_pos = 0;
    int capacity = 0;
    std::vector<Layer> layers;
  };
  Status check_seq(int seq) const;
  // Reallocates seq's storage for `capacity` positions, keeping its first n_pos.
  void grow(Sequence& s, int capacity);
  size_t k_offset(const Sequence& s, int g) const {
    return static_cast<size_t>(g) * o_.head_dim * s.capacity * element_bytes();
  }
  size_t v_offset(int pos) const {
    return static_cast<size_t>(pos) * n_embd_kv() * element_bytes();
  }

  KvCacheOptions o_;
  std::vector<Sequence> seqs_;
};

}  // namespace bitnet::model
