// Attention products (kernels/attention.h): every SIMD variant bit-exact with the scalar
// reference, F16 and F32 caches, head dims that are and are not multiples of 16, cache lengths
// around the 16- and 64-position blocks, strides larger than the lengths (as in a real cache).
#include "kernels/attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "core/fp16.h"
#include "kernel_test_util.h"

namespace bitnet::kernels {
namespace {

using test::first_bit_mismatch;

// A head over the test's K and V (f16 or float copies), no query yet.
AttentionHead head_over(bool f16, const std::vector<uint16_t>& k16, const std::vector<float>& kf,
                        const std::vector<uint16_t>& v16, const std::vector<float>& vf,
                        int64_t k_stride, int64_t v_stride, int hd, int n_kv) {
  AttentionHead a;
  a.k = f16 ? static_cast<const void*>(k16.data()) : kf.data();
  a.v = f16 ? static_cast<const void*>(v16.data()) : vf.data();
  a.k_stride = k_stride;
  a.v_stride = v_stride;
  a.f16 = f16;
  a.head_dim = hd;
  a.n_kv = n_kv;
  a.scale = 0.0883883f;
  return a;
}

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
          AttentionHead a = head_over(f16, k16, kf, v16, vf, k_stride, v_stride, hd, n_kv);
          a.q = q.data();
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

// Groups of query rows sharing K and V (grouped-query attention): each row's scores and outputs
// are the single-row reference's, for groups of 1-9 rows (the SIMD kernels take 4 at a time),
// both caches, and f16 operands that include the format's largest value, infinities, a NaN and
// zeros (inf * 0 makes a NaN in the sums).
TEST(Attention, GroupsBitExactWithReference) {
  for (const KernelTable* t : test::simd_tables()) {
    for (bool f16 : {true, false}) {
      for (int hd : {64, 100, 128}) {
        for (int n_kv : {1, 16, 17, 33, 64, 130}) {
          for (int n_q : {1, 3, 4, 5, 9}) {
            const int64_t k_stride = 131, v_stride = hd + 7;
            std::vector<float> kf =
                test::gaussian(static_cast<size_t>(hd * k_stride), 2 + n_kv, 2.0f);
            std::vector<float> vf =
                test::gaussian(static_cast<size_t>(130 * v_stride), 3 + n_kv, 2.0f);
            if (n_q == 5) {  // special operands in one configuration per shape
              const float inf = std::numeric_limits<float>::infinity();
              kf[3] = 65504.0f;
              kf[static_cast<size_t>(5 * k_stride)] = inf;
              vf[7] = -inf;
              vf[static_cast<size_t>(v_stride + 2)] = std::nanf("");
            }
            std::vector<uint16_t> k16(kf.size()), v16(vf.size());
            std::vector<std::vector<float>> q(static_cast<size_t>(n_q)), p(q.size());
            for (int r = 0; r < n_q; ++r) {
              q[r] = test::gaussian(static_cast<size_t>(hd), 10 + r, 3.0f);
              p[r] = test::gaussian(static_cast<size_t>(n_kv), 20 + r, 0.1f);
              if (r == 1) q[r][5] = 0.0f;  // meets the infinity of K above
              if (r == 2) p[r][0] = 0.0f;
            }
            if (f16) {
              for (size_t i = 0; i < kf.size(); ++i) k16[i] = fp32_to_fp16(kf[i]);
              for (size_t i = 0; i < vf.size(); ++i) v16[i] = fp32_to_fp16(vf[i]);
              for (auto& row : q)
                for (float& x : row) x = fp16_to_fp32(fp32_to_fp16(x));
              for (auto& row : p)
                for (float& x : row) x = fp16_to_fp32(fp32_to_fp16(x));
            }
            AttentionHead a = head_over(f16, k16, kf, v16, vf, k_stride, v_stride, hd, n_kv);
            std::vector<const float*> qs, ps;
            std::vector<std::vector<float>> want(q.size()), got(q.size()), want_v(q.size()),
                got_v(q.size());
            std::vector<float*> wp, gp, wvp, gvp;
            for (int r = 0; r < n_q; ++r) {
              qs.push_back(q[r].data());
              ps.push_back(p[r].data());
              want[r].assign(static_cast<size_t>(n_kv) + 3, -7.0f);
              got[r] = want[r];
              want_v[r].assign(static_cast<size_t>(hd) + 5, -7.0f);
              got_v[r] = want_v[r];
              wp.push_back(want[r].data());
              gp.push_back(got[r].data());
              wvp.push_back(want_v[r].data());
              gvp.push_back(got_v[r].data());
            }
            attention_scores_group_ref(a, qs.data(), n_q, wp.data());
            t->scores_group(a, qs.data(), n_q, gp.data());
            attention_values_group_ref(a, n_q, ps.data(), wvp.data());
            t->values_group(a, n_q, ps.data(), gvp.data());
            for (int r = 0; r < n_q; ++r) {
              ASSERT_EQ(first_bit_mismatch(got[r], want[r]), "")
                  << test::name_of(t) << " scores f16=" << f16 << " hd=" << hd << " n_kv=" << n_kv
                  << " n_q=" << n_q << " row " << r;
              ASSERT_EQ(first_bit_mismatch(got_v[r], want_v[r]), "")
                  << test::name_of(t) << " values f16=" << f16 << " hd=" << hd << " n_kv=" << n_kv
                  << " n_q=" << n_q << " row " << r;
              // And the group reference is the single-row reference, row by row.
              a.q = q[r].data();
              std::vector<float> one(want[r].size(), -7.0f);
              attention_scores_ref(a, one.data());
              ASSERT_EQ(first_bit_mismatch(one, want[r]), "");
            }
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace bitnet::kernels
