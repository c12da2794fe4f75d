// Attention products (kernels/attention.h): every SIMD variant bit-exact with the scalar
// reference, F16 and F32 caches, head dims that are and are not multiples of 16, cache lengths
// around the 16- and 64-position blocks, strides larger than the lengths (as in a real cache).
#include "kernels/attention.h"

#include <gtest/gtest.h>

#include <vector>

#include "core/fp16.h"
#include "kernel_test_util.h"

namespace bitnet::kernels {
namespace {

using test::first_bit_mismatch;

TEST(Attention, BitExactWithReference) {
  for (const KernelTable* t : test::simd_tables()) {
    for (bool f16 : {true, false}) {
      for (int hd : {64, 100, 128, 256}) {
        for (int n_kv : {1, 15, 16, 17, 63, 64, 65, 130}) {
          const int64_t k_stride = 131, v_stride = hd + 7;  // room for 130 positions
          std::vector<float> q = test::gaussian(hd, 1 + hd, 1.0f);
          std::vector<float> kf =
              test::gaussian(static_cast<size_t>(hd * k_stride), 2 + n_kv, 1.0f);
          std::vector<float> vf =
              test::gaussian(static_cast<size_t>(130 * v_stride), 3 + n_kv, 1.0f);
          std::vector<float> p = test::gaussian(static_cast<size_t>(n_kv), 4, 0.1f);
          std::vector<uint16_t> k16(kf.size()), v16(vf.size());
          if (f16) {  // the session's operands: f16 cache, f16-rounded q and p
            for (size_t i = 0; i < kf.size(); ++i) k16[i] = fp32_to_fp16(kf[i]);
            for (size_t i = 0; i < vf.size(); ++i) v16[i] = fp32_to_fp16(vf[i]);
            for (float& x : q) x = fp16_to_fp32(fp32_to_fp16(x));
            for (float& x : p) x = fp16_to_fp32(fp32_to_fp16(x));
          }
          AttentionHead a;
          a.q = q.data();
          a.k = f16 ? static_cast<const void*>(k16.data()) : kf.data();
          a.v = f16 ? static_cast<const void*>(v16.data()) : vf.data();
          a.k_stride = k_stride;
          a.v_stride = v_stride;
          a.f16 = f16;
          a.head_dim = hd;
          a.n_kv = n_kv;
          a.scale = 0.0883883f;
          std::vector<float> want(static_cast<size_t>(n_kv) + 3, -7.0f), got(want);
          attention_scores_ref(a, want.data());
          t->scores(a, got.data());
          ASSERT_EQ(first_bit_mismatch(got, want), "")
              << test::name_of(t) << " scores f16=" << f16 << " hd=" << hd << " n_kv=" << n_kv;
          std::vector<float> want_v(static_cast<size_t>(hd) + 5, -7.0f), got_v(want_v);
          attention_values_ref(a, p.data(), want_v.data());
          t->values(a, p.data(), got_v.data());
          ASSERT_EQ(first_bit_mismatch(got_v, want_v), "")
              << test::name_of(t) << " values f16=" << f16 << " hd=" << hd << " n_kv=" << n_kv;
        }
      }
    }
  }
}

}  // namespace
}  // namespace bitnet::kernels
