// The two products of attention for one query row of one head, with ggml's portable numerics
// (the x64 CPU variant of the pinned llama.cpp):
//   scores:  s_j = (float)(sum_i (double)(q_i * k_ji)) * scale          j < n_kv
//   values:  out_i = (float)(sum_j (double)(p_j * v_ji))                 i < head_dim
// products rounded to float, sums in double in index order. With an F16 cache the caller has
// rounded q and p to f16, as ggml's F16 matrix product does (the products are then exact).
//
// Cache layouts (both per layer and KV head): K transposed, element i of position j at
// k[i * k_stride + j], so that 16 positions are one vector and a lane can run the reference's
// sequential sum; V by position, element i of position j at v[j * v_stride + i].
//
// Scalar references (ref/attention_ref.cpp) are the specification; the AVX-512 variant is
// bit-exact with them (tests/kernels/attention_test.cpp).
#pragma once

#include <cstdint>

#include "kernels/dispatch.h"

namespace bitnet::kernels {

struct AttentionHead {
  const float* q = nullptr;  // head_dim values
  const void* k = nullptr;   // uint16_t (f16) or float, transposed (see above)
  const void* v = nullptr;   // uint16_t (f16) or float, by position
  int64_t k_stride = 0;      // elements between consecutive i of K
  int64_t v_stride = 0;      // elements between consecutive positions of V
  bool f16 = true;
  int head_dim = 0;
  int n_kv = 0;
  float scale = 1.0f;
};

void attention_scores_ref(const AttentionHead& a, float* s);
void attention_values_ref(const AttentionHead& a, const float* p, float* out);

// n_q query rows against the same K and V and n_kv (the query heads that share a KV head in
// grouped-query attention): row r's query is qs[r] (a.q is not read), its scores s[r], its
// probabilities p[r] and its output out[r]; each row's results are those of the single-row
// products above. The SIMD variants convert each f16 K and V vector once for all the rows, and,
// because f16 x f16 products are exact in float (and so in double), add them with a double FMA.
// The longest head the SIMD grouped kernels keep the queries of on the stack (as double); longer
// heads take their single-row kernels.
inline constexpr int kMaxAttentionHeadDim = 256;
// How far ahead (in positions) the SIMD grouped kernels prefetch the K and V lines they will read.
// Decode reads each layer's cache once per token, far too much for the caches at long contexts,
// and in strides (K: one line per element row per block of positions; V: one row per position)
// that the hardware prefetchers do not follow across pages: without it, a 2B4T decode step at
// 1024 positions ran its attention at about a third of its in-cache speed.
inline constexpr int64_t kScorePrefetchPositions = 128, kValuePrefetchPositions = 16;
void attention_scores_group_ref(const AttentionHead& a, const float* const* qs, int n_q,
                                float* const* s);
void attention_values_group_ref(const AttentionHead& a, int n_q, const float* const* p,
                                float* const* out);

// Dispatched (k's variant).
void attention_scores(const Kernels& k, const AttentionHead& a, float* s);
void attention_values(const Kernels& k, const AttentionHead& a, const float* p, float* out);
void attention_scores_group(const Kernels& k, const AttentionHead& a, const float* const* qs,
                            int n_q, float* const* s);
void attention_values_group(const Kernels& k, const AttentionHead& a, int n_q,
                            const float* const* p, float* const* out);

}  // namespace bitnet::kernels
