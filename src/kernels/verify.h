// --verify-kernels: recomputes samples of what the SIMD kernels computed with the scalar
// references and compares bit for bit (every variant is specified to be bit-exact with them): a
// few output rows of each product, one row of each activation quantization and RMSNorm, a window
// of each SwiGLU and f16 conversion, one head of each attention. A mismatch means a broken SIMD
// path on this CPU, which should stop the run rather than produce garbage. Each check takes the
// Kernels that computed what it checks, to name them in its message.
#pragma once

#include <cstdint>

#include "core/result.h"
#include "kernels/attention.h"
#include "kernels/dispatch.h"
#include "kernels/matmul.h"

namespace bitnet::kernels {

// `out` holds rows x w.n_out results of the dispatched kernel, for `a` (ternary weights) or
// `x` (float weights). Checks `n_samples` output rows chosen from `salt`.
Status verify_sample_rows(const Kernels& k, const WeightMatrix& w, const QuantizedActivations* a,
                          const float* x, int64_t rows, const float* out, uint64_t salt,
                          int n_samples = 4);

// `got` holds the dispatched quantization of rows x k values x; checks one row chosen from salt.
Status verify_quantized(const Kernels& kern, const float* x, int64_t rows, int64_t k,
                        const QuantizedActivations& got, uint64_t salt);

// got[i] for i < n: the dispatched SwiGLU of x[i], g[i] where i lies in whole groups of 4 of the
// full call (ggml_math.h: the tail of fewer than 4 takes another formula).
Status verify_swiglu(const Kernels& k, const float* x, const float* g, const float* got, int64_t n);
// got[i] for i < n: the dispatched relu(x[i])^2 * g[i].
Status verify_relu_sqr_mul(const Kernels& k, const float* x, const float* g, const float* got,
                           int64_t n);

// got[i] for i < n: the dispatched RMSNorm of the row x with weights w.
Status verify_rms_norm(const Kernels& k, const float* x, const float* w, int64_t n, float eps,
                       const float* got);

// got[i * got_stride] for i < n: the dispatched f16 conversion of x[i].
Status verify_to_f16(const Kernels& k, const float* x, const uint16_t* got, int64_t n,
                     int64_t got_stride);

// One head of one query row: `probs` are the probabilities the forward pass made from the
// dispatched scores (with the dispatched softmax), `out` the dispatched values product. Recomputes
// both with the references, `softmax` (in place) standing for the softmax's.
Status verify_attention(const Kernels& k, const AttentionHead& a,
                        void (*softmax)(float* s, int64_t n_kv, bool round), bool round,
                        const float* probs, const float* out);

}  // namespace bitnet::kernels
