// I2_S projections follow bitnet.cpp's BitLinear numerics bit for bit (FACTS.md section 3):
//   m = max(1e-5, max |x|) in double; s = (float)(127 / m);
//   q = clamp(round_half_even(x * s), -128, 127); acc = sum w q in int32;
//   y = ((float)acc / s) * scale.
// First on hand-computed inputs, then against that formula written out independently here, for
// every kernel variant this CPU runs (scalar included) through the public entry points.
#include <gtest/gtest.h>

#include <bit>
#include <cfenv>
#include <cmath>
#include <vector>

#include "kernel_test_util.h"

namespace bitnet::kernels {
namespace {

using gguf::TensorType;

std::vector<Variant> runnable_variants() {
  std::vector<Variant> v;
  for (Variant x : {Variant::kScalar, Variant::kAvx2, Variant::kAvx2Vnni, Variant::kAvx512})
    if (cpu_supports(x)) v.push_back(x);
  return v;
}

// Runs the dispatched quantize + matmul with variant v.
std::vector<float> project(Variant v, const WeightMatrix& w, const std::vector<float>& x,
                           int64_t rows) {
  const Result<Kernels> k = Kernels::of(v);
  EXPECT_TRUE(k.ok()) << k.message();
  if (!k.ok()) return {};
  QuantizedActivations a;
  quantize_activations(*k, ActQuant::kPerTokenInt8, x.data(), rows, w.k, &a);
  std::vector<float> y(static_cast<size_t>(rows * w.n_out));
  matmul_ternary(*k, w, a, y.data(), nullptr);
  return y;
}

test::OwnedMatrix pack(const std::vector<int8_t>& tern, int64_t k, int64_t n_out, float scale) {
  test::OwnedMatrix m;
  m.bytes.assign(test::matrix_bytes(TensorType::I2_S, k, n_out), 0);
  EXPECT_TRUE(quant::pack_i2s(tern.data(), tern.size(), scale, m.bytes.data()).ok());
  m.w = {TensorType::I2_S, m.bytes.data(), k, n_out, scale};
  return m;
}

TEST(I2sFormula, KnownAnswer) {
  // max |x| = 127/64, so s = 64 exactly and every x * s below is exact: 127, 2.5 -> 2 (ties to
  // even), 3.5 -> 4, -2.5 -> -2, -127, 64, 0.5 -> 0, 1.5 -> 2.
  const int64_t k = 128;
  std::vector<float> x(k, 0.0f);
  const float xs[] = {1.984375f,  2.5f / 64, 3.5f / 64, -2.5f / 64,
                      -1.984375f, 1.0f,      0.5f / 64, 1.5f / 64};
  for (size_t i = 0; i < 8; ++i) x[i] = xs[i];
  // Row 0: w = [1, 1, -1, 1, -1, 0, 1, 1]: acc = 127 + 2 - 4 - 2 + 127 + 0 + 0 + 2 = 252.
  // Row 1: w = [0, 0, 0, 0, 1, 1, 0, -1] (and w[127] = 1, x = 0 there): acc = -127 + 64 - 2 = -65.
  std::vector<int8_t> tern(2 * k, 0);
  const int8_t w0[] = {1, 1, -1, 1, -1, 0, 1, 1}, w1[] = {0, 0, 0, 0, 1, 1, 0, -1};
  for (int i = 0; i < 8; ++i) tern[i] = w0[i], tern[k + i] = w1[i];
  tern[2 * k - 1] = 1;
  const auto m = pack(tern, k, 2, 0.5f);
  for (Variant v : runnable_variants()) {
    const auto y = project(v, m.w, x, 1);
    EXPECT_EQ(y[0], (252.0f / 64.0f) * 0.5f) << variant_name(v);  // 1.96875
    EXPECT_EQ(y[1], (-65.0f / 64.0f) * 0.5f) << variant_name(v);  // -0.5078125
  }
  QuantizedActivations a;
  quantize_activations_ref(ActQuant::kPerTokenInt8, x.data(), 1, k, &a);
  EXPECT_EQ(a.scales[0], 64.0f);
  const int8_t want_q[] = {127, 2, 4, -2, -127, 64, 0, 2};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(a.q[static_cast<size_t>(i)], want_q[i]) << i;
}

TEST(I2sFormula, FloorOfMax) {
  // All |x| below 1e-5: m = 1e-5, s = (float)12700000; 1e-7 * s = 1.27 -> 1.
  const int64_t k = 256;
  std::vector<float> x(k, 1e-7f);
  x[1] = -4e-6f;  // -50.8 -> -51
  QuantizedActivations a;
  quantize_activations_ref(ActQuant::kPerTokenInt8, x.data(), 1, k, &a);
  EXPECT_EQ(a.scales[0], static_cast<float>(127.0 / 1e-5));
  EXPECT_EQ(a.q[0], 1);
  EXPECT_EQ(a.q[1], -51);
}

// The formula, written out from FACTS.md (not from the reference kernel).
std::vector<float> bitnet_formula(const std::vector<int8_t>& tern, float scale,
                                  const std::vector<float>& x, int64_t rows, int64_t k,
                                  int64_t n_out) {
  EXPECT_EQ(std::fegetround(), FE_TONEAREST);
  std::vector<float> y(static_cast<size_t>(rows * n_out));
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x.data() + r * k;
    double m = 1e-5;
    for (int64_t i = 0; i < k; ++i) {
      // fmax written out (a NaN never wins either way): GCC 12's vectorizer crashes on an fmax
      // reduction for AArch64.
      const double v = std::fabs(static_cast<double>(xr[i]));
      if (v > m) m = v;
    }
    const float s = static_cast<float>(127.0 / m);
    std::vector<int> q(static_cast<size_t>(k));
    for (int64_t i = 0; i < k; ++i) {
      const float p = xr[i] * s;
      q[static_cast<size_t>(i)] =
          static_cast<int>(std::fmin(127.0f, std::fmax(-128.0f, std::rint(p))));
    }
    for (int64_t o = 0; o < n_out; ++o) {
      int32_t acc = 0;
      for (int64_t i = 0; i < k; ++i)
        acc += tern[static_cast<size_t>(o * k + i)] * q[static_cast<size_t>(i)];
      y[static_cast<size_t>(r * n_out + o)] = (static_cast<float>(acc) / s) * scale;
    }
  }
  return y;
}

TEST(I2sFormula, RandomInputsAllVariants) {
  for (int64_t k : {128, 640, 2560}) {
    const int64_t n_out = 45, rows = 5;
    std::mt19937 rng(static_cast<uint32_t>(k));
    std::vector<int8_t> tern(static_cast<size_t>(k * n_out));
    for (auto& t : tern) t = static_cast<int8_t>(static_cast<int>(rng() % 3) - 1);
    const float scale = 0.8370361328125f;
    const auto m = pack(tern, k, n_out, scale);
    for (const auto& in : test::activation_sets(rows, k, 3)) {
      const auto want = bitnet_formula(tern, scale, in.x, rows, k, n_out);
      for (Variant v : runnable_variants()) {
        EXPECT_EQ(test::first_bit_mismatch(project(v, m.w, in.x, rows), want), "")
            << variant_name(v) << " k=" << k << " " << in.name;
      }
    }
  }
}

}  // namespace
}  // namespace bitnet::kernels
