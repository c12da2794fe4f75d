// Packed layouts (kernels/packed.h): the AVX-512 kernels reading them are bit-exact with the
// scalar reference reading the file layout, for every shape the packing accepts (partial last
// tiles, sub-ranges of rows as a thread's chunk sees them, 1 to 9 activation rows, random raw
// code bytes including code 3), and the layout itself is what packed.h describes.
#include "kernels/packed.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>

#include "core/fp16.h"
#include "core/thread_pool.h"
#include "kernel_test_util.h"

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

TEST(Packed, TernaryBitExactWithReference) {
  if (!cpu_supports(Variant::kAvx512))
    GTEST_SKIP() << "no AVX-512 here: the packed kernels do not run";
  const KernelTable* t = avx512_table();
  for (TensorType type : {TensorType::I2_S, TensorType::TQ2_0}) {
    for (int64_t k : {256, 512, 2560, 6912}) {
      for (bool raw : {false, true}) {
        const int64_t n_out = 53;  // 3 full tiles + a partial one
        auto m = test::make_ternary(type, k, n_out, static_cast<uint32_t>(k + raw), raw);
        const auto p = pack(&m);
        for (int64_t rows : {1, 2, 3, 4, 5, 9}) {
          for (const auto& in : test::activation_sets(rows, k, 7)) {
            QuantizedActivations a;
            quantize_activations_ref(act_quant_for(type), in.x.data(), rows, k, &a);
            std::vector<float> want(static_cast<size_t>(rows * n_out)), got(want.size(), -1.0f);
            matmul_ternary_ref(m.w, a, want.data(), 0, n_out);
            t->ternary(m.w, a, got.data(), 0, n_out);
            ASSERT_EQ(first_bit_mismatch(got, want), "")
                << gguf::tensor_type_name(type) << " k=" << k << " rows=" << rows << " raw=" << raw
                << " " << in.name;
            // A sub-range not aligned to tiles leaves everything outside it alone.
            std::vector<float> part(want.size(), 0.0f), want_part(want.size(), 0.0f);
            matmul_ternary_ref(m.w, a, want_part.data(), 5, 37);
            t->ternary(m.w, a, part.data(), 5, 37);
            ASSERT_EQ(first_bit_mismatch(part, want_part), "") << "sub-range rows=" << rows;
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
  for (int64_t k : {1, 15, 16, 100, 2560}) {
    const int64_t n_out = 85;  // 5 full tiles + a partial one: the 4-tile decode path and its tail
    auto m = test::make_float(TensorType::F16, k, n_out, static_cast<uint32_t>(k));
    const auto p = pack(&m);
    for (int64_t rows : {1, 3, 4, 6}) {
      for (const auto& in : test::activation_sets(rows, k, 8)) {
        for (bool round_input : {false, true}) {  // f16-rounded inputs: the head's usual case
          std::vector<float> x = in.x;
          if (round_input)
            for (float& v : x) v = fp16_to_fp32(fp32_to_fp16(v));
          std::vector<float> want(static_cast<size_t>(rows * n_out)), got(want.size(), -1.0f);
          matmul_float_ref(m.w, x.data(), rows, want.data(), 0, n_out);
          t->flt(m.w, x.data(), rows, got.data(), 0, n_out);
          ASSERT_EQ(first_bit_mismatch(got, want), "")
              << "k=" << k << " rows=" << rows << " " << in.name;
          std::vector<float> part(want.size(), 0.0f), want_part(want.size(), 0.0f);
          matmul_float_ref(m.w, x.data(), rows, want_part.data(), 3, 70);
          t->flt(m.w, x.data(), rows, part.data(), 3, 70);
          ASSERT_EQ(first_bit_mismatch(part, want_part), "")
              << "sub-range k=" << k << " rows=" << rows;
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

// Through the threaded entry point, as the forward pass calls it.
TEST(Packed, ThreadedEntryPointsMatch) {
  if (active_variant() != Variant::kAvx512)
    GTEST_SKIP() << "packed kernels need the AVX-512 variant";
  ThreadPool pool(2);
  auto m = test::make_ternary(TensorType::TQ2_0, 2560, 700, 3);
  const auto p = pack(&m);
  const auto x = test::gaussian(2 * 2560, 4, 1.0f);
  QuantizedActivations a;
  quantize_activations_ref(ActQuant::kQ8K, x.data(), 2, 2560, &a);
  std::vector<float> want(2 * 700), got(want.size());
  matmul_ternary_ref(m.w, a, want.data(), 0, 700);
  matmul_ternary(m.w, a, got.data(), &pool);
  EXPECT_EQ(first_bit_mismatch(got, want), "");
}

}  // namespace
}  // namespace bitnet::kernels
