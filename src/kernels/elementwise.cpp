// Dispatched elementwise ops: the active variant's (kernel_table.h).
#include "kernels/elementwise.h"

#include "kernels/kernel_table.h"

namespace bitnet::kernels {

void swiglu(int64_t n, float* y, const float* x, const float* g) {
  active_table().swiglu(n, y, x, g);
}
void fp32_to_fp16_row(const float* x, int64_t n, uint16_t* y) { active_table().to_f16(x, n, y); }
void rms_norm(const float* x, const float* w, int64_t n, float eps, float* y) {
  active_table().rms_norm(x, w, n, eps, y);
}
void round_to_f16(float* x, int64_t n) { active_table().round_f16(x, n); }
void softmax_probs(float* s, int64_t n, bool round_f16) { active_table().softmax(s, n, round_f16); }

}  // namespace bitnet::kernels
