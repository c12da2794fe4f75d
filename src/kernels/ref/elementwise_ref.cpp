// Scalar references of kernels/elementwise.h.
#include "core/fp16.h"
#include "kernels/elementwise.h"
#include "kernels/ggml_math.h"

namespace bitnet::kernels {

void swiglu_ref(int64_t n, float* y, const float* x, const float* g) { ggml_swiglu(n, y, x, g); }

void fp32_to_fp16_row_ref(const float* x, int64_t n, uint16_t* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = fp32_to_fp16(x[i]);
}

}  // namespace bitnet::kernels
