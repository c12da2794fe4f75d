// The table both ARM64 units fill (neon_kernels.cpp, neon_dotprod_kernels.cpp); each includes
// this header once, compiled with its own flags, so every function here is that unit's own copy.
//
// What runs vectorized: the ternary products on the packed layout (I2_S and TQ2_0 with
// k % 256 == 0, repacked at load), which are most of a decode step's time, the activation
// quantization, and the Q8_0 head (the screened head's screen). Every other entry (TQ1_0, the
// float head and F16 projections, attention, the elementwise ops) is the scalar reference:
// bit-exact by construction, not yet fast.
#pragma once

#include <string_view>

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
                     attention_scores_ref,
                     attention_values_ref,
                     attention_scores_group_ref,
                     attention_values_group_ref,
                     swiglu_ref,
                     relu_sqr_mul_ref,
                     fp32_to_fp16_row_ref,
                     rms_norm_ref,
                     round_to_f16_ref,
                     softmax_probs_ref,
                     dot_loop,
                     dot_instruction};
}

}  // namespace
}  // namespace bitnet::kernels
