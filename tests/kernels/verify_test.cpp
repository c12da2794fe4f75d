// --verify-kernels' checks (kernels/verify.h) beyond the products: each passes on what the
// dispatched kernel (the best variant here) computed and names the kernel and its variant when
// one bit of its output is flipped.
#include "kernels/verify.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/fp16.h"
#include "kernel_test_util.h"
#include "kernels/elementwise.h"

namespace bitnet::kernels {
namespace {

const Kernels kBest = Kernels::best();

void expect_caught(const Status& st, const std::string& what) {
  ASSERT_FALSE(st.ok()) << what;
  EXPECT_NE(st.message().find("kernel verification failed"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find(what), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("the " + std::string(kBest.name()) + " "), std::string::npos)
      << st.message();
}

TEST(Verify, QuantizedActivations) {
  for (ActQuant kind : {ActQuant::kPerTokenInt8, ActQuant::kQ8K}) {
    const int64_t rows = 3, k = 512;
    const std::vector<float> x = test::gaussian(rows * k, 5, 1.0f);
    QuantizedActivations a;
    quantize_activations(kBest, kind, x.data(), rows, k, &a);
    for (uint64_t salt = 0; salt < 3; ++salt)
      EXPECT_TRUE(verify_quantized(kBest, x.data(), rows, k, a, salt).ok());
    // The row salt 0 picks is row 0: flip a code, then a scale.
    QuantizedActivations bad = a;
    bad.q[7] ^= 1;
    expect_caught(verify_quantized(kBest, x.data(), rows, k, bad, 0), "activation quantization");
    bad = a;
    bad.scales[0] = std::nextafter(bad.scales[0], 1e9f);
    expect_caught(verify_quantized(kBest, x.data(), rows, k, bad, 0), "activation scale");
  }
}

TEST(Verify, SwigluAndF16) {
  const int64_t n = 66;  // 64 in whole groups of 4, then a tail the check leaves alone
  const std::vector<float> x = test::gaussian(n, 6, 3.0f), g = test::gaussian(n, 7, 1.0f);
  std::vector<float> y(n);
  swiglu(kBest, n, y.data(), x.data(), g.data());
  EXPECT_TRUE(verify_swiglu(kBest, x.data(), g.data(), y.data(), n).ok());
  y[13] = std::nextafter(y[13], 1e9f);
  expect_caught(verify_swiglu(kBest, x.data(), g.data(), y.data(), n), "SwiGLU");

  relu_sqr_mul(kBest, n, y.data(), x.data(), g.data());
  EXPECT_TRUE(verify_relu_sqr_mul(kBest, x.data(), g.data(), y.data(), n).ok());
  y[65] = std::nextafter(y[65], 1e9f);
  expect_caught(verify_relu_sqr_mul(kBest, x.data(), g.data(), y.data(), n), "ReLU^2");

  std::vector<uint16_t> h(2 * n);  // every other slot: a strided column, as K in the cache
  for (int64_t i = 0; i < n; ++i) fp32_to_fp16_row(kBest, x.data() + i, 1, h.data() + 2 * i);
  EXPECT_TRUE(verify_to_f16(kBest, x.data(), h.data(), n, 2).ok());
  h[2 * 40] ^= 1;
  expect_caught(verify_to_f16(kBest, x.data(), h.data(), n, 2), "f16 conversion");
}

TEST(Verify, RmsNorm) {
  const int64_t n = 300;
  const std::vector<float> x = test::gaussian(n, 8, 2.0f), w = test::gaussian(n, 9, 1.0f);
  std::vector<float> y(n);
  rms_norm(kBest, x.data(), w.data(), n, 1e-5f, y.data());
  EXPECT_TRUE(verify_rms_norm(kBest, x.data(), w.data(), n, 1e-5f, y.data()).ok());
  y[n - 1] = std::nextafter(y[n - 1], 1e9f);
  expect_caught(verify_rms_norm(kBest, x.data(), w.data(), n, 1e-5f, y.data()), "RMSNorm");
}

void softmax(float* s, int64_t n, bool round) {
  float max = -INFINITY;
  for (int j = 0; j < n; ++j) max = std::max(max, s[j]);
  double sum = 0;
  for (int j = 0; j < n; ++j) sum += s[j] = std::exp(s[j] - max);
  for (int j = 0; j < n; ++j) {
    s[j] = static_cast<float>(s[j] / sum);
    if (round) s[j] = fp16_to_fp32(fp32_to_fp16(s[j]));
  }
}

TEST(Verify, Attention) {
  const int hd = 64, n_kv = 20;
  std::vector<float> q = test::gaussian(hd, 8, 1.0f), kf = test::gaussian(hd * n_kv, 9, 1.0f),
                     vf = test::gaussian(hd * n_kv, 10, 1.0f);
  std::vector<uint16_t> k16(kf.size()), v16(vf.size());
  for (size_t i = 0; i < kf.size(); ++i) k16[i] = fp32_to_fp16(kf[i]);
  for (size_t i = 0; i < vf.size(); ++i) v16[i] = fp32_to_fp16(vf[i]);
  for (float& v : q) v = fp16_to_fp32(fp32_to_fp16(v));
  AttentionHead a;
  a.q = q.data();
  a.k = k16.data();
  a.v = v16.data();
  a.k_stride = n_kv;
  a.v_stride = hd;
  a.head_dim = hd;
  a.n_kv = n_kv;
  a.scale = 0.125f;
  std::vector<float> p(n_kv), out(hd);
  attention_scores(kBest, a, p.data());
  softmax(p.data(), n_kv, true);
  attention_values(kBest, a, p.data(), out.data());
  EXPECT_TRUE(verify_attention(kBest, a, &softmax, true, p.data(), out.data()).ok());
  std::vector<float> bad = p;
  bad[3] = std::nextafter(bad[3], 1e9f);
  expect_caught(verify_attention(kBest, a, &softmax, true, bad.data(), out.data()),
                "attention scores");
  bad = out;
  bad[5] = std::nextafter(bad[5], 1e9f);
  expect_caught(verify_attention(kBest, a, &softmax, true, p.data(), bad.data()),
                "attention values");
}

}  // namespace
}  // namespace bitnet::kernels
