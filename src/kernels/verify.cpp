#include "kernels/verify.h"

#include <bit>
#include <vector>

#include "kernels/dispatch.h"
#include "kernels/q8_0_head.h"

namespace bitnet::kernels {

Status verify_sample_rows(const WeightMatrix& w, const QuantizedActivations* a, const float* x,
                          int64_t rows, const float* out, uint64_t salt, int n_samples) {
  std::vector<float> ref(static_cast<size_t>(rows));
  for (int s = 0; s < n_samples; ++s) {
    const int64_t o = static_cast<int64_t>((salt * 0x9e3779b97f4a7c15ull + s * 7919ull) % w.n_out);
    // A one-row view of the matrix, so the reference writes `rows` values only.
    WeightMatrix row = w;
    row.data = w.row(o);
    row.n_out = 1;
    if (w.type == gguf::TensorType::Q8_0) {  // the Q8_0 head: a tiled layout, no row view
      QuantizedActivations qa;
      quantize_q8_0_ref(x, rows, w.k, &qa);
      for (int64_t r = 0; r < rows; ++r)
        ref[static_cast<size_t>(r)] = q8_0_head_row_ref(w, o, qa, r);
    } else if (is_ternary(w.type)) {
      matmul_ternary_ref(row, *a, ref.data(), 0, 1);
    } else {
      matmul_float_ref(row, x, rows, ref.data(), 0, 1);
    }
    for (int64_t r = 0; r < rows; ++r) {
      const float got = out[r * w.n_out + o];
      if (std::bit_cast<uint32_t>(got) != std::bit_cast<uint32_t>(ref[r])) {
        return make_error(
            "kernel verification failed: the %s kernel gave %.9g for output row %lld "
            "(activation row %lld) of a %s [%lld x %lld] product, the scalar reference "
            "%.9g; rerun with --kernels scalar and please report this CPU",
            std::string(variant_name(active_variant())).c_str(), got, static_cast<long long>(o),
            static_cast<long long>(r), std::string(gguf::tensor_type_name(w.type)).c_str(),
            static_cast<long long>(w.k), static_cast<long long>(w.n_out), ref[r]);
      }
    }
  }
  return {};
}

}  // namespace bitnet::kernels
