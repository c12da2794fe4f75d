// Packed layouts (kernels/packed.h): the AVX2, AVX-512 and ARM64 kernels reading them are bit-exact
// with the scalar reference reading the file layout, for every shape the packing accepts (partial
// last tiles, sub-ranges of rows as a thread's chunk sees them, 1 to 15 activation rows, random raw
// code bytes including code 3), and the layout itself is what packed.h describes.
#include "kernels/packed.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "core/fp16.h"
#include "core/thread_pool.h"
#include "kernel_test_util.h"
#include "kernels/q8_0_head.h"
#if defined(__x86_64__)
#include "kernels/x86/avx2_packed_entries.h"
#include "kernels/x86/avx2_vnni_entries.h"
#include "kernels/x86/avx512_packed_entries.h"
#endif
#if defined(__aarch64__)
#include "kernels/arm64/neon_entries.h"
#endif

namespace bitnet::kernels {
namespace {

using gguf::TensorType;
using test::first_bit_mismatch;

struct PackedCopy {
  std::unique_ptr<uint8_t, decltype(&std::free)> buf{nullptr, &std::free};
};

// Packs m.w in two halves (as two threads would) and points m.w.packed at the copy.
PackedCopy pack(test::OwnedMatrix* m) {
  PackedCopy p;
  const size_t n = packed_size(m->w);
  p.buf.reset(static_cast<uint8_t*>(std::aligned_alloc(64, (n + 63) / 64 * 64)));
  const int64_t tiles = packed_tiles(m->w);
  pack_tiles(m->w, p.buf.get(), 0, tiles / 2);
  pack_tiles(m->w, p.buf.get(), tiles / 2, tiles);
  m->w.packed = p.buf.get();
  return p;
}

TEST(Packed, WhatPacks) {
  WeightMatrix w;
  w.n_out = 5;
  w.k = 256;
  for (TensorType t : {TensorType::I2_S, TensorType::TQ2_0, TensorType::F16}) {
    w.type = t;
    EXPECT_TRUE(packable(w)) << gguf::tensor_type_name(t);
  }
  w.type = TensorType::TQ1_0;
  EXPECT_FALSE(packable(w));
  w.type = TensorType::I2_S;
  w.k = 128;  // I2_S rows of 128 elements: not whole 256-blocks
  EXPECT_FALSE(packable(w));
  // Same bytes as the file (TQ2_0 66 bytes per block and row, I2_S codes without the scale).
  w.k = 512;
  w.n_out = 32;
  w.type = TensorType::TQ2_0;
  EXPECT_EQ(packed_size(w), static_cast<size_t>(32 * 2 * 66));
  w.type = TensorType::I2_S;
  EXPECT_EQ(packed_size(w), static_cast<size_t>(32 * 512 / 4));
  w.type = TensorType::F16;
  w.n_out = 17;  // two tiles, the second padded
  EXPECT_EQ(packed_size(w), static_cast<size_t>(32 * 512 * 2));
}

// The documented layout, element by element: code of (row r, element i) sits in tile r/16,
// block i/256, vector (i%64)/4, lane r%16, byte i%4, bits 2 * ((i%256)/64).
TEST(Packed, TernaryLayoutAsDocumented) {
  for (TensorType t : {TensorType::I2_S, TensorType::TQ2_0}) {
    auto m = test::make_ternary(t, 512, 19, 5, /*raw=*/true);
    const auto p = pack(&m);
    std::vector<int8_t> vals(static_cast<size_t>(512 * 19));
    const Status st = t == TensorType::I2_S
                          ? quant::unpack_i2s(m.w.data, vals.size(), vals.data())
                          : quant::unpack_tq2_0(m.w.data, vals.size(), vals.data());
    ASSERT_TRUE(st.ok());
    for (int64_t r = 0; r < 19; ++r) {
      for (int64_t i = 0; i < 512; ++i) {
        const int64_t b = i / 256, e = i % 256, g = e / 64, j = e % 64;
        const uint8_t byte =
            packed_codes(m.w, r / 16)[b * kPackedBlockBytes + (j / 4) * 64 + (r % 16) * 4 + j % 4];
        ASSERT_EQ(((byte >> (2 * g)) & 3) - 1, vals[static_cast<size_t>(r * 512 + i)])
            << "row " << r << " element " << i;
      }
      if (t == TensorType::TQ2_0) {
        for (int64_t b = 0; b < 2; ++b) {
          uint16_t d;
          std::memcpy(&d, m.w.row(r) + b * 66 + 64, 2);
          EXPECT_EQ(packed_block_scales(m.w, r / 16)[b * 16 + r % 16], d);
        }
      }
    }
    // Padding rows of the last tile are weight 0.
    const uint8_t* last = packed_codes(m.w, 1);
    EXPECT_EQ(last[(5 * 4 + 2) + 64 * 3], 0x55);
  }
}

// Every packed ternary kernel this CPU runs, each called directly: AVX2's (with and without
// AVX-VNNI), AVX-512's both ways of
// taking the codes' fields apart (a mask; VBMI's byte permute where the CPU has it: the table
// entry uses the second wherever it can), ARM64's with SMLAL and with SDOT.
TEST(Packed, TernaryBitExactWithReference) {
  using Entry =
      void (*)(const WeightMatrix&, const QuantizedActivations&, float*, int64_t, int64_t);
  std::vector<std::pair<std::string, Entry>> entries;
#if defined(__x86_64__)
  if (cpu_supports(Variant::kAvx2)) entries.emplace_back("avx2", &avx2::packed_ternary);
  if (cpu_supports(Variant::kAvx2Vnni))
    entries.emplace_back("avx2-vnni", &avx2vnni::packed_ternary);
  if (cpu_supports(Variant::kAvx512)) entries.emplace_back("masked", &avx512::packed_ternary);
  if (cpu_supports(Variant::kAvx512) && avx512::has_vbmi())
    entries.emplace_back("vbmi", &avx512::packed_ternary_vbmi);
#elif defined(__aarch64__)
  if (cpu_supports(Variant::kNeon)) entries.emplace_back("neon", &neon::packed_ternary);
  if (cpu_supports(Variant::kNeonDotprod))
    entries.emplace_back("neon-dotprod", &neon_dotprod::packed_ternary);
#endif
  if (entries.empty()) GTEST_SKIP() << "no packed ternary kernel runs on this CPU";
  for (const auto& [how, ternary] : entries) {
    for (TensorType type : {TensorType::I2_S, TensorType::TQ2_0}) {
      for (int64_t k : {256, 512, 2560, 6912}) {
        for (bool raw : {false, true}) {
          // 3 full tiles + a partial one; with k = 512 also 7 + 1 (decode splits a range in two
          // streams of tiles, with an odd one left over).
          const int64_t n_out = k == 512 && raw ? 117 : 53;
          auto m = test::make_ternary(type, k, n_out, static_cast<uint32_t>(k + raw), raw);
          const auto p = pack(&m);
          for (int64_t rows : {1, 2, 3, 4, 5, 8, 9, 15}) {
            for (const auto& in : test::activation_sets(rows, k, 7)) {
              QuantizedActivations a;
              quantize_activations_ref(act_quant_for(type), in.x.data(), rows, k, &a);
              std::vector<float> want(static_cast<size_t>(rows * n_out)), got(want.size(), -1.0f);
              matmul_ternary_ref(m.w, a, want.data(), 0, n_out);
              ternary(m.w, a, got.data(), 0, n_out);
              ASSERT_EQ(first_bit_mismatch(got, want), "")
                  << how << " " << gguf::tensor_type_name(type) << " k=" << k << " rows=" << rows
                  << " raw=" << raw << " " << in.name;
              // A sub-range not aligned to tiles leaves everything outside it alone.
              std::vector<float> part(want.size(), 0.0f), want_part(want.size(), 0.0f);
              matmul_ternary_ref(m.w, a, want_part.data(), 5, 37);
              ternary(m.w, a, part.data(), 5, 37);
              ASSERT_EQ(first_bit_mismatch(part, want_part), "")
                  << how << " sub-range rows=" << rows;
            }
          }
        }
      }
    }
  }
}

TEST(Packed, F16BitExactWithReference) {
  if (!cpu_supports(Variant::kAvx512))
    GTEST_SKIP() << "no AVX-512 here: the packed kernels do not run";
  const KernelTable* t = avx512_table();
  for (int64_t k : {1, 15, 16, 64, 100, 129, 2560}) {
    const int64_t n_out = 85;  // 5 full tiles + a partial one: the 4-tile decode path and its tail
    auto m = test::make_float(TensorType::F16, k, n_out, static_cast<uint32_t>(k));
    const auto p = pack(&m);
    for (int64_t rows : {1, 3, 4, 6, 9}) {
      for (FloatSums sums : {FloatSums::kDouble, FloatSums::kBlocks}) {
        m.w.float_sums = sums;
        for (const auto& in : test::activation_sets(rows, k, 8)) {
          for (bool round_input : {false, true}) {  // f16-rounded inputs: the head's usual case
            std::vector<float> x = in.x;
            if (round_input)
              for (float& v : x) v = fp16_to_fp32(fp32_to_fp16(v));
            std::vector<float> want(static_cast<size_t>(rows * n_out)), got(want.size(), -1.0f);
            matmul_float_ref(m.w, x.data(), rows, want.data(), 0, n_out);
            t->flt(m.w, x.data(), rows, got.data(), 0, n_out);
            ASSERT_EQ(first_bit_mismatch(got, want), "")
                << "k=" << k << " rows=" << rows << " " << in.name
                << (sums == FloatSums::kBlocks ? " kBlocks" : " kDouble");
            std::vector<float> part(want.size(), 0.0f), want_part(want.size(), 0.0f);
            matmul_float_ref(m.w, x.data(), rows, want_part.data(), 3, 70);
            t->flt(m.w, x.data(), rows, part.data(), 3, 70);
            ASSERT_EQ(first_bit_mismatch(part, want_part), "")
                << "sub-range k=" << k << " rows=" << rows;
          }
        }
      }
    }
    for (int64_t r = 0; r < n_out; r += 7) {
      for (int64_t i = 0; i < k; i += 3) {
        uint16_t h;
        std::memcpy(&h, m.w.row(r) + 2 * i, 2);
        ASSERT_EQ(packed_f16_at(m.w, r, i), h);
      }
    }
  }
}

// Through the threaded entry point, as the forward pass calls it, with every variant (each SIMD
// one reads the packed layout).
TEST(Packed, ThreadedEntryPointsMatch) {
  ThreadPool pool(2);
  auto m = test::make_ternary(TensorType::TQ2_0, 2560, 700, 3);
  const auto p = pack(&m);
  const auto x = test::gaussian(2 * 2560, 4, 1.0f);
  QuantizedActivations a;
  quantize_activations_ref(ActQuant::kQ8K, x.data(), 2, 2560, &a);
  std::vector<float> want(2 * 700);
  matmul_ternary_ref(m.w, a, want.data(), 0, 700);
  for (const KernelTable* t : test::simd_tables()) {
    std::vector<float> got(want.size());
    matmul_ternary(*Kernels::of(t->variant), m.w, a, got.data(), &pool);
    EXPECT_EQ(first_bit_mismatch(got, want), "") << test::name_of(t);
  }
}

// share_start (the weights ThreadPool::warm_after_next_job fetches): the start of each thread's
// share, a whole number of 64-row chunks into the stream the kernels read (packed or file), in
// order over the threads, inside the weights, and about half way for the second of two threads.
TEST(Packed, ShareStartsForWarmHints) {
  for (bool packed : {false, true}) {
    auto q = test::make_ternary(TensorType::TQ2_0, 2560, 2560, 1);
    auto k = test::make_ternary(TensorType::TQ2_0, 2560, 640, 2);
    auto f = test::make_float(TensorType::F16, 512, 1000, 3);
    PackedCopy pq, pk, pf;
    if (packed) {
      pq = pack(&q);
      pk = pack(&k);
      pf = pack(&f);
    }
    // Bytes per row of the stream: packed ternary tiles keep 2-bit codes only (scales apart).
    const int64_t q_row = packed ? 2560 / 4 : q.w.row_bytes();
    const uint8_t* q_base = packed ? q.w.packed : q.w.data;
    const uint8_t* k_base = packed ? k.w.packed : k.w.data;
    const TernaryProduct products[] = {{&q.w, nullptr}, {&k.w, nullptr}};
    const auto one = share_start(products, 0, 1, 1 << 20);
    EXPECT_EQ(one.data(), q_base);
    EXPECT_EQ(one.size(), size_t{1} << 20);
    EXPECT_EQ(share_start(products, 0, 1, 100).size(), 100u);
    for (int n : {2, 3, 4}) {
      const uint8_t* prev = nullptr;
      bool in_k = false;
      for (int i = 0; i < n; ++i) {
        const auto r = share_start(products, i, n, 1 << 20);
        ASSERT_NE(r.data(), nullptr) << n << " " << i;
        const bool k_part = r.data() >= k_base && r.data() < k_base + 640 * q_row;
        const uint8_t* base = k_part ? k_base : q_base;
        const int64_t rows = k_part ? 640 : 2560;
        ASSERT_TRUE(k_part || (r.data() >= q_base && r.data() < q_base + 2560 * q_row))
            << n << " " << i;
        EXPECT_EQ((r.data() - base) % (64 * q_row), 0) << n << " " << i;
        EXPECT_LE(r.data() - base + static_cast<int64_t>(r.size()), rows * q_row) << n << " " << i;
        EXPECT_TRUE(!in_k || k_part) << "shares go q then k";
        if (!k_part && prev != nullptr && !in_k) {
          EXPECT_GT(r.data(), prev);
        }
        in_k = in_k || k_part;
        prev = r.data();
      }
      EXPECT_EQ(share_start(products, n, n, 1 << 20).size(), 0u) << "no thread n";
    }
    // One F16 matrix, two threads: the second starts within a chunk of half way.
    const uint8_t* f_base = packed ? f.w.packed : f.w.data;
    const auto h = share_start(f.w, 1, 2, 1 << 30);
    const int64_t row = (h.data() - f_base) / (512 * 2);
    EXPECT_EQ((h.data() - f_base) % (64 * 512 * 2), 0);
    EXPECT_NEAR(static_cast<double>(row), 500.0, 128.0);
    EXPECT_EQ(h.size(), static_cast<size_t>((1000 - row) * 512 * 2));
  }
}

// ---------------------------------------------------------------- the optional Q8_0 head

struct Q8Head {
  std::unique_ptr<uint8_t, decltype(&std::free)> buf{nullptr, &std::free};
  WeightMatrix w;
};

Q8Head make_q8_head(const test::OwnedMatrix& src) {
  Q8Head h;
  const size_t n = kernels::q8_0_head_size(src.w.k, src.w.n_out);
  h.buf.reset(static_cast<uint8_t*>(std::aligned_alloc(64, (n + 63) / 64 * 64)));
  const int64_t tiles = (src.w.n_out + 15) / 16;
  q8_0_head_pack_tiles(src.w, h.buf.get(), 0, 1);  // in pieces, as threads do
  q8_0_head_pack_tiles(src.w, h.buf.get(), 1, tiles);
  h.w = q8_0_head_view(h.buf.get(), src.w.k, src.w.n_out);
  return h;
}

// ggml's Q8_0 per block: d = amax / 127 stored as f16, codes roundf(w / d); reading the layout
// back gives each weight within half a step of d.
TEST(Q8_0Head, QuantizesAsGgmlAndLaysOutAsDocumented) {
  const auto src = test::make_float(TensorType::F16, 96, 21, 31);
  const Q8Head h = make_q8_head(src);
  for (int64_t r = 0; r < 21; ++r) {
    for (int64_t b = 0; b < 3; ++b) {
      float amax = 0.0f, w[32];
      for (int64_t e = 0; e < 32; ++e) {
        uint16_t x;
        std::memcpy(&x, src.w.row(r) + 2 * (32 * b + e), 2);
        w[e] = fp16_to_fp32(x);
        amax = std::max(amax, std::fabs(w[e]));
      }
      const float d = amax / 127.0f;
      ASSERT_EQ(q8_0_scales(h.w, r / 16)[b * 16 + r % 16], fp32_to_fp16(d));
      for (int64_t e = 0; e < 32; ++e) {
        const int code =
            q8_0_codes(h.w, r / 16)[b * 512 + (e / 4) * 64 + (r % 16) * 4 + e % 4] - 128;
        ASSERT_EQ(code, static_cast<int>(std::round(w[e] * (1.0f / d))))
            << "row " << r << " element " << 32 * b + e;
      }
    }
  }
}

TEST(Q8_0Head, KernelsBitExactWithReference) {
  const auto src = test::make_float(TensorType::F16, 2560, 53, 32);
  const Q8Head h = make_q8_head(src);
  for (const KernelTable* t : test::simd_tables()) {
    for (int64_t rows : {1, 2, 4, 5, 8, 11}) {
      for (const auto& in : test::activation_sets(rows, 2560, 33)) {
        QuantizedActivations a;
        quantize_q8_0_ref(in.x.data(), rows, 2560, &a);
        std::vector<float> want(static_cast<size_t>(rows * 53)), got(want.size(), -1.0f);
        matmul_q8_0_head_ref(h.w, a, want.data(), 0, 53);
        t->q8_0_head(h.w, a, got.data(), 0, 53);
        ASSERT_EQ(first_bit_mismatch(got, want), "")
            << test::name_of(t) << " rows=" << rows << " " << in.name;
        std::vector<float> part(want.size(), 0.0f), want_part(want.size(), 0.0f);
        matmul_q8_0_head_ref(h.w, a, want_part.data(), 7, 40);
        t->q8_0_head(h.w, a, part.data(), 7, 40);
        ASSERT_EQ(first_bit_mismatch(part, want_part), "") << "sub-range rows=" << rows;
      }
    }
  }
  // Threaded entry point, and close to the F16 product it approximates.
  ThreadPool pool(2);
  const auto x = test::gaussian(2560, 34, 1.0f);
  QuantizedActivations scratch;
  std::vector<float> y(53), exact(53);
  matmul_q8_0_head(Kernels::best(), h.w, x.data(), 1, y.data(), &pool, &scratch);
  matmul_float_ref(src.w, x.data(), 1, exact.data(), 0, 53);
  // Products have a spread of about 0.05 * sqrt(2560) = 2.5; both quantizations together add an
  // error of about 0.025 (half a step of each, summed over 2560 products): 0.15 is six of those.
  for (int64_t o = 0; o < 53; ++o) EXPECT_NEAR(y[o], exact[o], 0.15f) << o;
}

}  // namespace
}  // namespace bitnet::kernels
