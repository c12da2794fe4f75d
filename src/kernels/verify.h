// --verify-kernels: recomputes a few output rows of a product with the scalar reference and
// compares bit for bit (every variant is specified to be bit-exact with it). A mismatch means a
// broken SIMD path on this CPU, which should stop the run rather than produce garbage.
#pragma once

#include <cstdint>

#include "core/result.h"
#include "kernels/matmul.h"

namespace bitnet::kernels {

// `out` holds rows x w.n_out results of the dispatched kernel, for `a` (ternary weights) or
// `x` (float weights). Checks `n_samples` output rows chosen from `salt`.
Status verify_sample_rows(const WeightMatrix& w, const QuantizedActivations* a, const float* x,
                          int64_t rows, const float* out, uint64_t salt, int n_samples = 4);

}  // namespace bitnet::kernels
