// Dispatched attention products: the active variant's (kernel_table.h).
#include "kernels/attention.h"

#include "kernels/kernel_table.h"

namespace bitnet::kernels {

void attention_scores(const AttentionHead& a, float* s) { active_table().scores(a, s); }
void attention_values(const AttentionHead& a, const float* p, float* out) {
  active_table().values(a, p, out);
}

}  // namespace bitnet::kernels
