// TQ1_0 / TQ2_0 matmuls against the pinned llama.cpp's libggml, through its public API:
//  - our Q8_K activation quantization writes the same bytes as ggml's quantize_row_q8_K_ref
//    (what the CPU backend runs on x86 to quantize the activations of a TQ matmul);
//  - matmul_ternary (every variant) agrees with ggml_mul_mat on ggml's CPU backend to within
//    float rounding of the final sum. ggml's AVX2 dot product keeps 8 partial float sums per row
//    (per lane: (float)partial_int * d, accumulated over blocks, then added horizontally) where
//    the reference sums one (float)block_int * d per block in order, so the two differ by a few
//    ulps of the sum of |terms|; the test bounds that and prints the largest difference seen.
#include <ggml-alloc.h>
#include <ggml-backend.h>
#include <ggml.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "kernel_test_util.h"
#include "kernels/kernel_support.h"

// ggml-common.h's block_q8_K (not a public header): d, 256 codes, 16 sums of 16.
struct block_q8_K_layout {
  float d;
  int8_t qs[256];
  int16_t bsums[16];
};
extern "C" void quantize_row_q8_K_ref(const float* x, block_q8_K_layout* y, int64_t k);

namespace bitnet::kernels {
namespace {

using gguf::TensorType;

TEST(GgmlParity, Q8KQuantizationBytes) {
  for (const auto& in : test::activation_sets(4, 2560, 7)) {
    const int64_t nb = 4 * 2560 / 256;
    std::vector<block_q8_K_layout> ggml_blocks(static_cast<size_t>(nb));
    std::memset(
        ggml_blocks.data(), 0,
        ggml_blocks.size() * sizeof(block_q8_K_layout));  // ggml skips bsums of all-zero blocks
    quantize_row_q8_K_ref(in.x.data(), ggml_blocks.data(), 4 * 2560);
    for (Variant v : {Variant::kScalar, Variant::kAvx2, Variant::kAvx2Vnni, Variant::kAvx512}) {
      if (!cpu_supports(v)) continue;
      const KernelTable& t = Kernels::of(v)->table();
      QuantizedActivations a;
      detail::shape_quantized(ActQuant::kQ8K, 4, 2560, &a);
      t.quantize(ActQuant::kQ8K, in.x.data(), 4, 2560, rows_from(a, 0));
      for (int64_t b = 0; b < nb; ++b) {
        const auto& g = ggml_blocks[static_cast<size_t>(b)];
        ASSERT_EQ(std::memcmp(g.qs, a.q.data() + b * 256, 256), 0)
            << variant_name(v) << " " << in.name << " block " << b;
        ASSERT_EQ(std::bit_cast<uint32_t>(g.d),
                  std::bit_cast<uint32_t>(a.scales[static_cast<size_t>(b)]))
            << variant_name(v) << " " << in.name << " block " << b;
        ASSERT_EQ(std::memcmp(g.bsums, a.bsums.data() + b * 16, 32), 0)
            << variant_name(v) << " " << in.name << " block " << b;
      }
    }
  }
}

class GgmlCpu {
 public:
  GgmlCpu() {
    ggml_backend_load_all_from_path(BITNET_REFERENCE_DIR "/lib");
    backend_ = ggml_backend_init_by_type(GGML_BACKEND_DEVICE_TYPE_CPU, nullptr);
  }
  ~GgmlCpu() {
    if (backend_ != nullptr) ggml_backend_free(backend_);
  }
  ggml_backend_t get() const { return backend_; }

  // y[r * n + o] = ggml_mul_mat(W [k, n] of `type`, X [k, rows] F32).
  std::vector<float> mul_mat(ggml_type type, const std::vector<uint8_t>& w, int64_t k, int64_t n,
                             const std::vector<float>& x, int64_t rows) const {
    ggml_init_params params{ggml_tensor_overhead() * 8 + ggml_graph_overhead(), nullptr, true};
    ggml_context* ctx = ggml_init(params);
    ggml_tensor* tw = ggml_new_tensor_2d(ctx, type, k, n);
    ggml_tensor* tx = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, k, rows);
    ggml_tensor* ty = ggml_mul_mat(ctx, tw, tx);
    ggml_cgraph* gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf, ty);
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors(ctx, backend_);
    EXPECT_EQ(ggml_nbytes(tw), w.size());
    ggml_backend_tensor_set(tw, w.data(), 0, ggml_nbytes(tw));
    ggml_backend_tensor_set(tx, x.data(), 0, ggml_nbytes(tx));
    EXPECT_EQ(ggml_backend_graph_compute(backend_, gf), GGML_STATUS_SUCCESS);
    std::vector<float> y(static_cast<size_t>(n * rows));
    ggml_backend_tensor_get(ty, y.data(), 0, ggml_nbytes(ty));
    ggml_backend_buffer_free(buf);
    ggml_free(ctx);
    return y;
  }

 private:
  ggml_backend_t backend_ = nullptr;
};

struct Magnitudes {
  double m;      // bound on the sum of |partial terms| of either computation (see below)
  double exact;  // sum_b acc_b * d_b in double, d_b = d_act_b * d_w_b rounded to float as both do
};

// ggml's AVX2 dot product multiplies codes c in {0, 1, 2} (not c - 1) with 16-bit pair sums,
// subtracts bsums of other positions, and keeps 8 int32 lanes per block: a lane is at most
// 3 sum |q| of the block in magnitude. So M = sum_b |d_b| * 3 sum_{i in b} |q_i| bounds the
// magnitudes of all terms either sum rounds.
Magnitudes magnitudes(const WeightMatrix& w, const QuantizedActivations& a, int64_t r, int64_t o) {
  std::vector<int8_t> vals(static_cast<size_t>(w.k));
  const size_t n = static_cast<size_t>(w.k);
  const bool tq2 = w.type == TensorType::TQ2_0;
  if (!(tq2 ? quant::unpack_tq2_0(w.row(o), n, vals.data())
            : quant::unpack_tq1_0(w.row(o), n, vals.data()))
           .ok()) {
    std::abort();
  }
  Magnitudes out{0, 0};
  for (int64_t b = 0; b < w.k / 256; ++b) {
    int32_t acc = 0, abs_q = 0;
    for (int64_t i = 0; i < 256; ++i) {
      const int q = a.row(r)[b * 256 + i];
      acc += vals[static_cast<size_t>(b * 256 + i)] * q;
      abs_q += std::abs(q);
    }
    const float dw = tq2 ? quant::tq2_0_block_scale(w.row(o), static_cast<size_t>(b))
                         : quant::tq1_0_block_scale(w.row(o), static_cast<size_t>(b));
    const float d = a.scales[static_cast<size_t>(r * (w.k / 256) + b)] * dw;
    out.m += std::fabs(static_cast<double>(d)) * 3.0 * abs_q;
    out.exact += static_cast<double>(acc) * d;
  }
  return out;
}

TEST(GgmlParity, TernaryMulMat) {
  GgmlCpu ggml;
  ASSERT_NE(ggml.get(), nullptr) << "could not load ggml's CPU backend from " BITNET_REFERENCE_DIR
                                    "/lib";
  for (TensorType type : {TensorType::TQ2_0, TensorType::TQ1_0}) {
    const ggml_type gtype = type == TensorType::TQ2_0 ? GGML_TYPE_TQ2_0 : GGML_TYPE_TQ1_0;
    for (int64_t k : {256, 2560, 6912}) {
      const int64_t n = 48;
      // Weights as llama.cpp's own quantizer writes them (quantize_tq*_0 is byte-identical).
      const std::vector<float> wf =
          test::gaussian(static_cast<size_t>(k * n), 17 + static_cast<uint32_t>(k), 0.02f);
      std::vector<uint8_t> bytes(test::matrix_bytes(type, k, n));
      ASSERT_TRUE((type == TensorType::TQ2_0
                       ? quant::quantize_tq2_0(wf.data(), wf.size(), bytes.data())
                       : quant::quantize_tq1_0(wf.data(), wf.size(), bytes.data()))
                      .ok());
      const WeightMatrix w{type, bytes.data(), k, n, 1.0f};
      for (int64_t rows : {1, 3}) {
        for (const auto& in : test::activation_sets(rows, k, 23)) {
          const std::vector<float> want = ggml.mul_mat(gtype, bytes, k, n, in.x, rows);
          QuantizedActivations a;
          quantize_activations_ref(ActQuant::kQ8K, in.x.data(), rows, k, &a);
          std::vector<Magnitudes> mags;
          for (int64_t r = 0; r < rows; ++r)
            for (int64_t o = 0; o < n; ++o) mags.push_back(magnitudes(w, a, r, o));
          double max_diff = 0, max_rel = 0, ours_err = 0, ggml_err = 0;
          int overflowed = 0;
          for (Variant v :
               {Variant::kScalar, Variant::kAvx2, Variant::kAvx2Vnni, Variant::kAvx512}) {
            if (!cpu_supports(v)) continue;
            const Result<Kernels> kern = Kernels::of(v);
            ASSERT_TRUE(kern.ok()) << kern.message();
            std::vector<float> got(want.size());
            matmul_ternary(*kern, w, a, got.data(), nullptr);
            for (int64_t r = 0; r < rows; ++r) {
              for (int64_t o = 0; o < n; ++o) {
                const size_t i = static_cast<size_t>(r * n + o);
                if (got[i] == want[i]) continue;  // incl. equal infinities
                // Sums near FLT_MAX ("max magnitude" activations): the order of the additions
                // decides whether they overflow, so an infinity on one side says nothing.
                if (!std::isfinite(got[i]) || !std::isfinite(want[i])) {
                  ++overflowed;
                  continue;
                }
                const double diff = std::fabs(static_cast<double>(got[i]) - want[i]);
                const Magnitudes& mg = mags[i];
                const double mag = mg.m;
                // Ours: a rounded product per block and k/256 additions, error <= (k/256 + 1) u M;
                // ggml: a rounded product per lane and block, k/256 additions per lane and 3 to
                // add the lanes, error <= (k/256 + 4) u M (u = 2^-24, first order).
                const double bound =
                    static_cast<double>(2 * (k / 256) + 8) * std::ldexp(1.0, -24) * mag;
                ASSERT_LE(diff, bound)
                    << variant_name(v) << " " << in.name << " k=" << k << " r=" << r << " o=" << o
                    << ": " << got[i] << " vs ggml " << want[i];
                max_diff = std::max(max_diff, diff);
                if (mag > 0) max_rel = std::max(max_rel, diff / mag);
                if (mg.exact != 0) {
                  ours_err = std::max(ours_err, std::fabs(got[i] - mg.exact) / std::fabs(mg.exact));
                  ggml_err =
                      std::max(ggml_err, std::fabs(want[i] - mg.exact) / std::fabs(mg.exact));
                }
              }
            }
          }
          if (in.name != "max magnitude" && in.name != "huge") {
            EXPECT_EQ(overflowed, 0) << in.name;
          }
          if (overflowed > 0)
            std::printf("%s k=%lld %s: %d outputs (over all variants) overflow on one side\n",
                        type == TensorType::TQ2_0 ? "TQ2_0" : "TQ1_0", static_cast<long long>(k),
                        in.name.c_str(), overflowed);
          if (in.name == "gaussian") {
            std::printf(
                "%s k=%lld rows=%lld %s: max |ours - ggml| = %.3g (%.3g of M); max relative error "
                "vs "
                "exact: ours %.3g, ggml %.3g\n",
                type == TensorType::TQ2_0 ? "TQ2_0" : "TQ1_0", static_cast<long long>(k),
                static_cast<long long>(rows), in.name.c_str(), max_diff, max_rel, ours_err,
                ggml_err);
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace bitnet::kernels
