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

}  // namespace bitnet::kernels
