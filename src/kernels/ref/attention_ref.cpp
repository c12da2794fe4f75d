#include "core/fp16.h"
#include "kernels/attention.h"

namespace bitnet::kernels {

void attention_scores_ref(const AttentionHead& a, float* s) {
  const auto* k16 = static_cast<const uint16_t*>(a.k);
  const auto* k32 = static_cast<const float*>(a.k);
  for (int j = 0; j < a.n_kv; ++j) {
    double dot = 0.0;
    for (int i = 0; i < a.head_dim; ++i) {
      const int64_t at = i * a.k_stride + j;
      const float kv = a.f16 ? fp16_to_fp32(k16[at]) : k32[at];
      dot += static_cast<double>(a.q[i] * kv);
    }
    s[j] = static_cast<float>(dot) * a.scale;
  }
}

void attention_values_ref(const AttentionHead& a, const float* p, float* out) {
  const auto* v16 = static_cast<const uint16_t*>(a.v);
  const auto* v32 = static_cast<const float*>(a.v);
  for (int i = 0; i < a.head_dim; ++i) {
    double acc = 0.0;
    for (int j = 0; j < a.n_kv; ++j) {
      const int64_t at = j * a.v_stride + i;
      acc += static_cast<double>(p[j] * (a.f16 ? fp16_to_fp32(v16[at]) : v32[at]));
    }
    out[i] = static_cast<float>(acc);
  }
}

void attention_scores_group_ref(const AttentionHead& a, const float* const* qs, int n_q,
                                float* const* s) {
  AttentionHead row = a;
  for (int r = 0; r < n_q; ++r) {
    row.q = qs[r];
    attention_scores_ref(row, s[r]);
  }
}

void attention_values_group_ref(const AttentionHead& a, int n_q, const float* const* p,
                                float* const* out) {
  for (int r = 0; r < n_q; ++r) attention_values_ref(a, p[r], out[r]);
}

}  // namespace bitnet::kernels
