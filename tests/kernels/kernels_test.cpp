// Every SIMD variant this CPU runs against the scalar references (the specification):
// activation quantization byte-identical, ternary matmuls bit-identical, float matmuls within a
// proven rounding bound; results independent of thread count and of how many rows go together.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "core/thread_pool.h"
#include "kernel_test_util.h"
#include "kernels/kernel_support.h"
#include "kernels/packed.h"

namespace bitnet::kernels {
namespace {

using gguf::TensorType;
using test::activation_sets;
using test::first_bit_mismatch;
using test::make_float;
using test::make_ternary;
using test::name_of;
using test::simd_tables;

void expect_same_quantized(const QuantizedActivations& got, const QuantizedActivations& want,
                           const std::string& what) {
  ASSERT_EQ(got.kind, want.kind) << what;
  ASSERT_EQ(got.rows, want.rows) << what;
  ASSERT_EQ(got.k, want.k) << what;
  ASSERT_EQ(got.q, want.q) << what;
  ASSERT_EQ(got.bsums, want.bsums) << what;
  ASSERT_EQ(got.scales.size(), want.scales.size()) << what;
  for (size_t i = 0; i < got.scales.size(); ++i) {
    ASSERT_EQ(std::bit_cast<uint32_t>(got.scales[i]), std::bit_cast<uint32_t>(want.scales[i]))
        << what << " scale " << i << ": " << got.scales[i] << " vs " << want.scales[i];
  }
}

TEST(Kernels, VariantsAvailable) {
  // This suite only means something if the SIMD variants run; say which ones did.
  for (const KernelTable* t : simd_tables())
    std::printf("testing variant %s\n", name_of(t).c_str());
  EXPECT_EQ(best_variant(), cpu_supports(Variant::kAvx512)        ? Variant::kAvx512
                            : cpu_supports(Variant::kAvx2Vnni)    ? Variant::kAvx2Vnni
                            : cpu_supports(Variant::kAvx2)        ? Variant::kAvx2
                            : cpu_supports(Variant::kNeonDotprod) ? Variant::kNeonDotprod
                            : cpu_supports(Variant::kNeon)        ? Variant::kNeon
                                                                  : Variant::kScalar);
#if defined(__aarch64__)
  // Advanced SIMD is in every ARMv8-A CPU: the neon variant always runs here.
  EXPECT_TRUE(cpu_supports(Variant::kNeon));
#endif
}

// A variant's quantizer into a freshly shaped QuantizedActivations.
void quantize_with(const KernelTable& t, ActQuant kind, const float* x, int64_t rows, int64_t k,
                   QuantizedActivations* out) {
  detail::shape_quantized(kind, rows, k, out);
  t.quantize(kind, x, rows, k, rows_from(*out, 0));
}

TEST(Kernels, QuantizePerTokenBitExact) {
  for (const KernelTable* t : simd_tables()) {
    for (int64_t k : {1, 7, 16, 100, 128, 2560, 6912}) {
      for (const auto& in : activation_sets(3, k, 11)) {
        QuantizedActivations want, got;
        quantize_activations_ref(ActQuant::kPerTokenInt8, in.x.data(), 3, k, &want);
        quantize_with(*t, ActQuant::kPerTokenInt8, in.x.data(), 3, k, &got);
        expect_same_quantized(got, want, name_of(t) + " " + in.name + " k=" + std::to_string(k));
      }
    }
  }
}

TEST(Kernels, QuantizeQ8KBitExact) {
  for (const KernelTable* t : simd_tables()) {
    for (int64_t k : {256, 512, 2560}) {
      for (const auto& in : activation_sets(3, k, 12)) {
        QuantizedActivations want, got;
        quantize_activations_ref(ActQuant::kQ8K, in.x.data(), 3, k, &want);
        quantize_with(*t, ActQuant::kQ8K, in.x.data(), 3, k, &got);
        expect_same_quantized(got, want, name_of(t) + " " + in.name + " k=" + std::to_string(k));
      }
    }
  }
}

// Several rows split over threads (each thread quantizes its own rows into the shared arrays)
// give the bytes of one pass over all rows.
TEST(Kernels, QuantizeThreadedEqualsReference) {
  ThreadPool pool(2);
  for (ActQuant kind : {ActQuant::kPerTokenInt8, ActQuant::kQ8K}) {
    for (int64_t rows : {2, 5, 8}) {
      const std::vector<float> x = test::gaussian(rows * 512, 21, 2.0f);
      QuantizedActivations want, got;
      quantize_activations_ref(kind, x.data(), rows, 512, &want);
      quantize_activations(Kernels::best(), kind, x.data(), rows, 512, &got, &pool);
      expect_same_quantized(got, want, "rows=" + std::to_string(rows));
    }
  }
}

// NaN and infinity: the references skip NaN in the max and convert NaN / infinite products with
// x86's cvttss2si (INT_MIN, whose low byte is 0); the SIMD variants reproduce that.
TEST(Kernels, QuantizeNonFiniteMatchesReference) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> x = test::gaussian(3 * 512, 13, 1.0f);
  x[3] = nan;
  x[600] = inf;
  x[700] = -inf;
  for (int i = 1024; i < 1536; i += 2) x[static_cast<size_t>(i)] = nan;
  for (const KernelTable* t : simd_tables()) {
    for (ActQuant kind : {ActQuant::kPerTokenInt8, ActQuant::kQ8K}) {
      QuantizedActivations want, got;
      quantize_activations_ref(kind, x.data(), 3, 512, &want);
      quantize_with(*t, kind, x.data(), 3, 512, &got);
      expect_same_quantized(got, want,
                            name_of(t) + (kind == ActQuant::kQ8K ? " q8k" : " per-token"));
    }
  }
}

// The reference itself, where C++ leaves float -> int undefined (and x86-64 and ARM64 differ):
// non-finite products give code 0, as ggml's rounding does, so both machines agree.
TEST(Kernels, QuantizeRefNonFiniteProductsAreZero) {
  const float inf = std::numeric_limits<float>::infinity();
  // A subnormal maximum: Q8_K's iscale = -127 / max overflows to infinity.
  std::vector<float> x(256, 1e-41f);
  x[5] = -2e-41f;
  x[9] = 0.0f;  // infinity x 0: NaN
  QuantizedActivations a;
  quantize_activations_ref(ActQuant::kQ8K, x.data(), 1, 256, &a);
  EXPECT_EQ(a.q, std::vector<int8_t>(256, 0));
  EXPECT_EQ(a.bsums, std::vector<int16_t>(16, 0));
  // An infinite input: per-token s = 127 / inf = 0, so that element's product is NaN.
  std::vector<float> y(64, 1.0f);
  y[7] = inf;
  quantize_activations_ref(ActQuant::kPerTokenInt8, y.data(), 1, 64, &a);
  EXPECT_EQ(a.scales[0], 0.0f);
  EXPECT_EQ(a.q, std::vector<int8_t>(64, 0));
}

struct TernaryCase {
  TensorType type;
  int64_t k;
};

std::vector<TernaryCase> ternary_cases() {
  return {{TensorType::I2_S, 128},  {TensorType::I2_S, 384},  {TensorType::I2_S, 2560},
          {TensorType::I2_S, 6912}, {TensorType::TQ2_0, 256}, {TensorType::TQ2_0, 2560},
          {TensorType::TQ1_0, 256}, {TensorType::TQ1_0, 1280}};
}

std::string type_name(TensorType t) {
  return t == TensorType::I2_S    ? "I2_S"
         : t == TensorType::TQ2_0 ? "TQ2_0"
         : t == TensorType::TQ1_0 ? "TQ1_0"
                                  : "float";
}

// y for all rows and output rows [o_begin, o_end) through one table; other outputs stay NaN.
std::vector<float> run_ternary(const KernelTable& t, const WeightMatrix& w,
                               const QuantizedActivations& a, int64_t o_begin, int64_t o_end) {
  std::vector<float> y(static_cast<size_t>(a.rows * w.n_out),
                       std::numeric_limits<float>::quiet_NaN());
  t.ternary(w, a, y.data(), o_begin, o_end);
  return y;
}

TEST(Kernels, TernaryBitExactRandomAndAdversarial) {
  for (const KernelTable* t : simd_tables()) {
    for (const TernaryCase& c : ternary_cases()) {
      for (bool raw : {false, true}) {
        const int64_t n_out = 37;  // odd: tiles with padding rows
        const auto m = make_ternary(c.type, c.k, n_out, 21 + static_cast<uint32_t>(c.k), raw);
        for (int64_t rows : {1, 2, 3, 5, 8}) {
          for (const auto& in : activation_sets(rows, c.k, 31)) {
            QuantizedActivations a;
            quantize_activations_ref(act_quant_for(c.type), in.x.data(), rows, c.k, &a);
            const std::string what = name_of(t) + " " + type_name(c.type) + (raw ? " raw" : "") +
                                     " k=" + std::to_string(c.k) + " rows=" + std::to_string(rows) +
                                     " " + in.name;
            // Whole range and an odd sub-range (what a thread's chunk sees).
            for (auto [b, e] : {std::pair<int64_t, int64_t>{0, n_out}, {5, 18}}) {
              const auto want = run_ternary(scalar_table(), m.w, a, b, e);
              const auto got = run_ternary(*t, m.w, a, b, e);
              ASSERT_EQ(first_bit_mismatch(got, want), "") << what << " range " << b << "-" << e;
            }
          }
        }
      }
    }
  }
}

// Every byte value in every position of a TQ1_0 block (canonical or not), and every code in
// every I2_S / TQ2_0 position: one weight row per byte value.
TEST(Kernels, TernaryAllByteValues) {
  for (const KernelTable* t : simd_tables()) {
    for (TensorType type : {TensorType::I2_S, TensorType::TQ2_0, TensorType::TQ1_0}) {
      const int64_t k = 256, n_out = 256;
      auto m = make_ternary(type, k, n_out, 5);
      const int64_t rb = m.w.row_bytes();
      const int64_t code_bytes = type == TensorType::I2_S    ? 64
                                 : type == TensorType::TQ2_0 ? 64
                                                             : 52;
      for (int64_t o = 0; o < n_out; ++o)
        for (int64_t j = 0; j < code_bytes; ++j)
          m.bytes[static_cast<size_t>(o * rb + j)] = static_cast<uint8_t>(o + 7 * j);
      for (const auto& in : activation_sets(2, k, 41)) {
        QuantizedActivations a;
        quantize_activations_ref(act_quant_for(type), in.x.data(), 2, k, &a);
        ASSERT_EQ(first_bit_mismatch(run_ternary(*t, m.w, a, 0, n_out),
                                     run_ternary(scalar_table(), m.w, a, 0, n_out)),
                  "")
            << name_of(t) << " " << type_name(type) << " " << in.name;
      }
    }
  }
}

// Through the public entry points: each variant, pool of 1 and 2 threads and none, decode row by
// row vs the whole prompt at once: all bit-identical (and equal to the scalar reference).
TEST(Kernels, TernaryThreadAndBatchIndependent) {
  ThreadPool pool1(1), pool2(2);
  for (const TernaryCase& c :
       {TernaryCase{TensorType::I2_S, 2560}, TernaryCase{TensorType::TQ2_0, 2560},
        TernaryCase{TensorType::TQ1_0, 2560}}) {
    const int64_t n_out = 333, rows = 7;
    const auto m = make_ternary(c.type, c.k, n_out, 77);
    const std::vector<float> x = test::gaussian(static_cast<size_t>(rows * c.k), 78, 1.0f);
    QuantizedActivations a;
    quantize_activations_ref(act_quant_for(c.type), x.data(), rows, c.k, &a);
    std::vector<float> want(static_cast<size_t>(rows * n_out));
    scalar_table().ternary(m.w, a, want.data(), 0, n_out);
    for (Variant v : {Variant::kScalar, Variant::kAvx2, Variant::kAvx2Vnni, Variant::kAvx512}) {
      if (!cpu_supports(v)) continue;
      const Result<Kernels> kern = Kernels::of(v);
      ASSERT_TRUE(kern.ok()) << kern.message();
      for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &pool1, &pool2}) {
        std::vector<float> y(want.size());
        matmul_ternary(*kern, m.w, a, y.data(), pool);
        EXPECT_EQ(first_bit_mismatch(y, want), "") << variant_name(v) << " " << type_name(c.type);
      }
      // One activation row at a time (decode) gives the same rows as the batch (prompt).
      for (int64_t r = 0; r < rows; ++r) {
        QuantizedActivations a1;
        quantize_activations(*kern, act_quant_for(c.type), x.data() + r * c.k, 1, c.k, &a1);
        std::vector<float> y1(static_cast<size_t>(n_out));
        matmul_ternary(*kern, m.w, a1, y1.data(), &pool2);
        const std::vector<float> want_row(want.begin() + r * n_out, want.begin() + (r + 1) * n_out);
        EXPECT_EQ(first_bit_mismatch(y1, want_row), "") << variant_name(v) << " row " << r;
      }
    }
  }
}

// Several matrices in one parallel pass (q/k/v, gate/up): each output equal to its own
// matmul_ternary, for shapes with and without whole chunks, one to five matrices (more than
// kMaxFusedProducts runs them one by one), packed copies or not, every pool.
TEST(Kernels, TernaryManyEqualsOneByOne) {
  ThreadPool pool1(1), pool2(2), pool3(3);
  for (TensorType t : {TensorType::I2_S, TensorType::TQ2_0, TensorType::TQ1_0}) {
    const int64_t k = 512, rows = 3;
    const int64_t n_outs[5] = {333, 64, 1000, 17, 128};
    std::vector<test::OwnedMatrix> ms;
    std::vector<std::vector<uint8_t>> packed(5);
    for (int i = 0; i < 5; ++i) ms.push_back(make_ternary(t, k, n_outs[i], 90 + i));
    const std::vector<float> x = test::gaussian(static_cast<size_t>(rows * k), 79, 1.0f);
    QuantizedActivations a;
    quantize_activations_ref(act_quant_for(t), x.data(), rows, k, &a);
    for (Variant v : {Variant::kScalar, Variant::kAvx2, Variant::kAvx2Vnni, Variant::kAvx512}) {
      if (!cpu_supports(v)) continue;
      const Result<Kernels> kern = Kernels::of(v);
      ASSERT_TRUE(kern.ok()) << kern.message();
      for (bool pack : {false, true}) {
        for (int i = 0; i < 5; ++i) {
          ms[i].w.packed = nullptr;
          if (pack && v == Variant::kAvx512 && packable(ms[i].w)) {
            packed[i].assign(packed_size(ms[i].w), 0);
            pack_tiles(ms[i].w, packed[i].data(), 0, packed_tiles(ms[i].w));
            ms[i].w.packed = packed[i].data();
          }
        }
        for (size_t n = 1; n <= 5; ++n) {
          for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &pool1, &pool2, &pool3}) {
            std::vector<std::vector<float>> want(n), got(n);
            std::vector<TernaryProduct> products;
            for (size_t i = 0; i < n; ++i) {
              want[i].assign(static_cast<size_t>(rows * n_outs[i]), -1.0f);
              got[i].assign(want[i].size(), -2.0f);
              matmul_ternary(*kern, ms[i].w, a, want[i].data(), nullptr);
              products.push_back({&ms[i].w, got[i].data()});
            }
            matmul_ternary_many(*kern, products, a, pool);
            for (size_t i = 0; i < n; ++i) {
              EXPECT_EQ(first_bit_mismatch(got[i], want[i]), "")
                  << variant_name(v) << " " << type_name(t) << " pack=" << pack << " n=" << n
                  << " matrix " << i;
            }
          }
        }
      }
      for (auto& m : ms) m.w.packed = nullptr;
    }
  }
}

// ---------------------------------------------------------------- float weights

// The float kernels put output rows in lanes and sum each in the reference's order, so they
// are bit-exact too: both FloatSums, F16 / BF16 / F32 weights, odd k (tails; block boundaries
// of kBlocks at 64 and 128), odd row counts (padding), several activation rows (the GEMM
// tiles), random and adversarial activations.
TEST(Kernels, FloatBitExact) {
  for (const KernelTable* t : simd_tables()) {
    for (FloatSums sums : {FloatSums::kDouble, FloatSums::kBlocks}) {
      for (TensorType type : {TensorType::F16, TensorType::BF16, TensorType::F32}) {
        for (int64_t k : {1, 15, 16, 64, 100, 129, 2560}) {
          const int64_t n_out = 37;
          auto m = make_float(type, k, n_out, 91);
          m.w.float_sums = sums;
          for (int64_t rows : {1, 3, 4, 6}) {
            for (const auto& in : activation_sets(rows, k, 92)) {
              std::vector<float> want(static_cast<size_t>(rows * n_out)), got(want.size());
              scalar_table().flt(m.w, in.x.data(), rows, want.data(), 0, n_out);
              t->flt(m.w, in.x.data(), rows, got.data(), 0, n_out);
              ASSERT_EQ(first_bit_mismatch(got, want), "")
                  << name_of(t) << " " << type_name(type) << " k=" << k << " rows=" << rows << " "
                  << in.name << (sums == FloatSums::kBlocks ? " kBlocks" : " kDouble");
              // A sub-range, as a thread's chunk sees it.
              std::vector<float> part(want.size(), 0.0f), want_part(want.size(), 0.0f);
              scalar_table().flt(m.w, in.x.data(), rows, want_part.data(), 3, 20);
              t->flt(m.w, in.x.data(), rows, part.data(), 3, 20);
              ASSERT_EQ(first_bit_mismatch(part, want_part), "") << name_of(t) << " sub-range";
            }
          }
        }
      }
    }
  }
}

// The two FloatSums on a case worked by hand (F32 weights of 1, k = 130, x = 2^24 then 129
// ones; float's spacing at 2^24 is 2). kDouble: 2^24 + 129 exactly in double, rounded to float
// (a tie, to even) = 2^24 + 128. kBlocks: in block 0 every 2^24 + 1 rounds back to 2^24 (ties to
// even), block 1 sums to 64 and block 2 to 2, so 2^24 + 66.
TEST(Kernels, FloatSumsWorkedExample) {
  const int64_t k = 130;
  std::vector<float> ones(static_cast<size_t>(k), 1.0f), x(static_cast<size_t>(k), 1.0f);
  x[0] = 16777216.0f;
  WeightMatrix w;
  w.type = TensorType::F32;
  w.data = reinterpret_cast<const uint8_t*>(ones.data());
  w.k = k;
  w.n_out = 1;
  std::vector<const KernelTable*> tables = simd_tables();
  tables.push_back(&scalar_table());
  for (const KernelTable* t : tables) {
    float y = 0;
    t->flt(w, x.data(), 1, &y, 0, 1);
    EXPECT_EQ(y, 16777216.0f + 128.0f) << name_of(t) << " kDouble";
    w.float_sums = FloatSums::kBlocks;
    t->flt(w, x.data(), 1, &y, 0, 1);
    EXPECT_EQ(y, 16777216.0f + 66.0f) << name_of(t) << " kBlocks";
    w.float_sums = FloatSums::kDouble;
  }
}

TEST(Kernels, FloatThreadAndBatchIndependent) {
  ThreadPool pool1(1), pool2(2);
  const int64_t k = 2560, n_out = 301, rows = 6;
  const auto m = make_float(TensorType::F16, k, n_out, 93);
  const std::vector<float> x = test::gaussian(static_cast<size_t>(rows * k), 94, 1.0f);
  for (Variant v : {Variant::kScalar, Variant::kAvx2, Variant::kAvx2Vnni, Variant::kAvx512}) {
    if (!cpu_supports(v)) continue;
    const Result<Kernels> kern = Kernels::of(v);
    ASSERT_TRUE(kern.ok()) << kern.message();
    std::vector<float> want(static_cast<size_t>(rows * n_out));
    matmul_float(*kern, m.w, x.data(), rows, want.data(), nullptr);
    for (ThreadPool* pool : {&pool1, &pool2}) {
      std::vector<float> y(want.size());
      matmul_float(*kern, m.w, x.data(), rows, y.data(), pool);
      EXPECT_EQ(first_bit_mismatch(y, want), "") << variant_name(v);
    }
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<float> y1(static_cast<size_t>(n_out));
      matmul_float(*kern, m.w, x.data() + r * k, 1, y1.data(), &pool2);
      const std::vector<float> want_row(want.begin() + r * n_out, want.begin() + (r + 1) * n_out);
      EXPECT_EQ(first_bit_mismatch(y1, want_row), "") << variant_name(v) << " row " << r;
    }
  }
}

// Choosing a variant: by name or value, unknown names and variants this CPU cannot run are
// errors (with the messages the CLI shows), and each Kernels runs its own variant's table.
TEST(Kernels, ChoosingAVariant) {
  const auto unknown = Kernels::named("avx9000");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.message().find("unknown kernel variant 'avx9000'"), std::string::npos)
      << unknown.message();
  const auto scalar = Kernels::named("scalar");
  ASSERT_TRUE(scalar.ok()) << scalar.message();
  EXPECT_EQ(scalar->variant(), Variant::kScalar);
  EXPECT_EQ(scalar->name(), "scalar");
  EXPECT_EQ(&scalar->table(), &scalar_table());
  EXPECT_EQ(Kernels::best().variant(), best_variant());
  ASSERT_TRUE(Kernels::of(best_variant()).ok());
  EXPECT_EQ(*Kernels::of(best_variant()), Kernels::best());
  for (Variant v : {Variant::kScalar, Variant::kAvx2, Variant::kAvx2Vnni, Variant::kAvx512}) {
    const auto k = Kernels::of(v);
    const auto by_name = Kernels::named(variant_name(v));
    EXPECT_EQ(k.ok(), cpu_supports(v)) << variant_name(v);
    EXPECT_EQ(by_name.ok(), cpu_supports(v)) << variant_name(v);
    if (k.ok()) {
      EXPECT_EQ(k->variant(), v);
      EXPECT_EQ(k->table().variant, v);
      EXPECT_TRUE(by_name.ok() && *by_name == *k) << variant_name(v);
      EXPECT_EQ(*k == *scalar, v == Variant::kScalar) << variant_name(v);
    } else {
      EXPECT_NE(k.message().find("cannot run on this CPU"), std::string::npos) << k.message();
    }
  }
}

}  // namespace
}  // namespace bitnet::kernels
