// Dispatched elementwise ops: the caller's variant's (kernel_table.h).
#include "kernels/elementwise.h"

#include "kernels/kernel_table.h"

namespace bitnet::kernels {

void swiglu(const Kernels& k, int64_t n, float* y, const float* x, const float* g) {
  k.table().swiglu(n, y, x, g);
}

void relu_sqr_mul(const Kernels& k, int64_t n, float* y, const float* x, const float* g) {
  k.table().relu_sqr_mul(n, y, x, g);
}
void fp32_to_fp16_row(const Kernels& k, const float* x, int64_t n, uint16_t* y) {
  k.table().to_f16(x, n, y);
}
void rms_norm(const Kernels& k, const float* x, const float* w, int64_t n, float eps, float* y) {
  k.table().rms_norm(x, w, n, eps, y);
}
void round_to_f16(const Kernels& k, float* x, int64_t n) { k.table().round_f16(x, n); }
void softmax_probs(const Kernels& k, float* s, int64_t n, bool round_f16) {
  k.table().softmax(s, n, round_f16);
}

}  // namespace bitnet::kernels
