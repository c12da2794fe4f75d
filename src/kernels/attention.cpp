// Dispatched attention products: the caller's variant's (kernel_table.h).
#include "kernels/attention.h"

#include "kernels/kernel_table.h"

namespace bitnet::kernels {

void attention_scores(const Kernels& k, const AttentionHead& a, float* s) {
  k.table().scores(a, s);
}
void attention_values(const Kernels& k, const AttentionHead& a, const float* p, float* out) {
  k.table().values(a, p, out);
}
void attention_scores_group(const Kernels& k, const AttentionHead& a, const float* const* qs,
                            int n_q, float* const* s) {
  k.table().scores_group(a, qs, n_q, s);
}
void attention_values_group(const Kernels& k, const AttentionHead& a, int n_q,
                            const float* const* p, float* const* out) {
  k.table().values_group(a, n_q, p, out);
}

}  // namespace bitnet::kernels
