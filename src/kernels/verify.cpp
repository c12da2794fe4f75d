#include "kernels/verify.h"

#include <bit>
#include <vector>

#include "kernels/dispatch.h"
#include "kernels/elementwise.h"
#include "kernels/q8_0_head.h"

namespace bitnet::kernels {

Status verify_sample_rows(const Kernels& k, const WeightMatrix& w, const QuantizedActivations* a,
                          const float* x, int64_t rows, const float* out, uint64_t salt,
                          int n_samples) {
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
            std::string(k.name()).c_str(), got, static_cast<long long>(o),
            static_cast<long long>(r), std::string(gguf::tensor_type_name(w.type)).c_str(),
            static_cast<long long>(w.k), static_cast<long long>(w.n_out), ref[r]);
      }
    }
  }
  return {};
}

namespace {

Status mismatch(const Kernels& k, const char* what, int64_t at, double got, double want) {
  return make_error(
      "kernel verification failed: the %s %s kernel gave %.9g at index %lld, the scalar "
      "reference %.9g; rerun with --kernels scalar and please report this CPU",
      std::string(k.name()).c_str(), what, got, static_cast<long long>(at), want);
}

bool same_bits(float a, float b) {
  return std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b);
}

}  // namespace

Status verify_quantized(const Kernels& kern, const float* x, int64_t rows, int64_t k,
                        const QuantizedActivations& got, uint64_t salt) {
  const int64_t r = static_cast<int64_t>((salt * 0x9e3779b97f4a7c15ull) % rows);
  QuantizedActivations want;
  quantize_activations_ref(got.kind, x + r * k, 1, k, &want);
  for (int64_t i = 0; i < k; ++i) {
    if (got.row(r)[i] != want.q[i])
      return mismatch(kern, "activation quantization", r * k + i, got.row(r)[i], want.q[i]);
  }
  const int64_t n_scales = static_cast<int64_t>(want.scales.size());
  for (int64_t i = 0; i < n_scales; ++i) {
    const float g = got.scales[r * n_scales + i];
    if (!same_bits(g, want.scales[i]))
      return mismatch(kern, "activation scale", r * n_scales + i, g, want.scales[i]);
  }
  const int64_t n_sums = static_cast<int64_t>(want.bsums.size());
  for (int64_t i = 0; i < n_sums; ++i) {
    const int16_t g = got.bsums[r * n_sums + i];
    if (g != want.bsums[i])
      return mismatch(kern, "activation block sum", r * n_sums + i, g, want.bsums[i]);
  }
  return {};
}

Status verify_swiglu(const Kernels& k, const float* x, const float* g, const float* got,
                     int64_t n) {
  std::vector<float> want(static_cast<size_t>(n));
  swiglu_ref(n / 4 * 4, want.data(), x, g);  // whole groups of 4, as in the full call
  for (int64_t i = 0; i < n / 4 * 4; ++i) {
    if (!same_bits(got[i], want[i])) return mismatch(k, "SwiGLU", i, got[i], want[i]);
  }
  return {};
}

Status verify_relu_sqr_mul(const Kernels& k, const float* x, const float* g, const float* got,
                           int64_t n) {
  std::vector<float> want(static_cast<size_t>(n));
  relu_sqr_mul_ref(n, want.data(), x, g);
  for (int64_t i = 0; i < n; ++i) {
    if (!same_bits(got[i], want[i])) return mismatch(k, "ReLU^2", i, got[i], want[i]);
  }
  return {};
}

Status verify_rms_norm(const Kernels& k, const float* x, const float* w, int64_t n, float eps,
                       const float* got) {
  std::vector<float> want(static_cast<size_t>(n));
  rms_norm_ref(x, w, n, eps, want.data());
  for (int64_t i = 0; i < n; ++i) {
    if (!same_bits(got[i], want[i])) return mismatch(k, "RMSNorm", i, got[i], want[i]);
  }
  return {};
}

Status verify_to_f16(const Kernels& k, const float* x, const uint16_t* got, int64_t n,
                     int64_t got_stride) {
  std::vector<uint16_t> want(static_cast<size_t>(n));
  fp32_to_fp16_row_ref(x, n, want.data());
  for (int64_t i = 0; i < n; ++i) {
    if (got[i * got_stride] != want[i])
      return mismatch(k, "f16 conversion", i, got[i * got_stride], want[i]);
  }
  return {};
}

Status verify_attention(const Kernels& k, const AttentionHead& a,
                        void (*softmax)(float* s, int64_t n_kv, bool round), bool round,
                        const float* probs, const float* out) {
  std::vector<float> s(static_cast<size_t>(a.n_kv)), o(static_cast<size_t>(a.head_dim));
  attention_scores_ref(a, s.data());
  softmax(s.data(), a.n_kv, round);
  for (int j = 0; j < a.n_kv; ++j) {
    if (!same_bits(probs[j], s[j])) return mismatch(k, "attention scores", j, probs[j], s[j]);
  }
  attention_values_ref(a, s.data(), o.data());
  for (int i = 0; i < a.head_dim; ++i) {
    if (!same_bits(out[i], o[i])) return mismatch(k, "attention values", i, out[i], o[i]);
  }
  return {};
}

}  // namespace bitnet::kernels
