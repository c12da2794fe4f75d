// The table both ARM64 units fill (neon_kernels.cpp, neon_dotprod_kernels.cpp); each includes
// this header once, compiled with its own flags, so every function here is that unit's own copy.
//
// What runs vectorized: the ternary products on the packed layout (I2_S and TQ2_0 with
// k % 256 == 0, repacked at load), which are most of a decode step's time, the activation
// quantization, the Q8_0 head (the screened head's screen), attention and the elementwise ops.
// TQ1_0 and the float products (the exact head's rows, F16 projections) are still the scalar
// reference: bit-exact by construction, not yet fast.
#pragma once

#include <string_view>

#include "kernels/arm64/neon_attention.h"
#include "kernels/arm64/neon_elementwise.h"
#include "kernels/arm64/neon_packed_ternary.h"
#include "kernels/arm64/neon_q8_0_head.h"
#include "kernels/arm64/neon_quantize.h"
#include "kernels/kernel_table.h"

namespace bitnet::kernels {
namespace {

inline void ternary_entry(const WeightMatrix& w, const QuantizedActivations& a, float* y,
                          int64_t o_begin, int64_t o_end) {
  if (w.packed != nullptr && w.k <= detail::kMaxSimdK &&
      (w.type == gguf::TensorType::I2_S || w.type == gguf::TensorType::TQ2_0))
    return packed_ternary_impl(w, a, y, o_begin, o_end);
  matmul_ternary_ref(w, a, y, o_begin, o_end);
}

inline KernelTable arm64_table(Variant v, int64_t (*dot_loop)(int64_t),
                               std::string_view dot_instruction) {
  return KernelTable{v,
                     quantize_entry,
                     ternary_entry,
                     matmul_float_ref,
                     q8_0_head_entry,
                     scores_entry,
                     values_entry,
                     scores_group_entry,
                     values_group_entry,
                     swiglu_entry,
                     relu_sqr_mul_entry,
                     to_f16_entry,
                     rms_norm_entry,
                     round_f16_entry,
                     softmax_entry,
                     dot_loop,
                     dot_instruction};
}

}  // namespace
}  // namespace bitnet::kernels
