// Shared helpers for the kernel tests: random and adversarial activations, ternary weight
// matrices in each format, and the list of variants this CPU runs.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/fp16.h"
#include "kernels/dispatch.h"
#include "kernels/kernel_table.h"
#include "kernels/matmul.h"
#include "quant/i2s.h"
#include "quant/tq1_0.h"
#include "quant/tq2_0.h"

namespace bitnet::kernels::test {

// The SIMD variants compiled in and runnable here (never the scalar one).
inline std::vector<const KernelTable*> simd_tables() {
  std::vector<const KernelTable*> out;
  for (Variant v : kAllVariants) {
    if (v != Variant::kScalar && cpu_supports(v)) out.push_back(&Kernels::of(v)->table());
  }
  return out;
}

inline std::string name_of(const KernelTable* t) { return std::string(variant_name(t->variant)); }

struct Activations {
  std::string name;
  std::vector<float> x;  // rows * k
};

inline std::vector<float> gaussian(size_t n, uint32_t seed, float sigma) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> x(n);
  for (auto& v : x) v = dist(rng);
  return x;
}

// Random and adversarial activation sets of rows x k (finite values only; see the NaN test).
inline std::vector<Activations> activation_sets(int64_t rows, int64_t k, uint32_t seed) {
  const size_t n = static_cast<size_t>(rows * k);
  const float fmax = std::numeric_limits<float>::max();
  std::vector<Activations> s;
  s.push_back({"gaussian", gaussian(n, seed, 1.0f)});
  s.push_back({"zeros", std::vector<float>(n, 0.0f)});
  s.push_back({"all equal", std::vector<float>(n, 0.37f)});
  s.push_back({"all equal negative", std::vector<float>(n, -3.0f)});
  s.push_back({"max magnitude", std::vector<float>(n, -fmax)});
  s.push_back({"huge", gaussian(n, seed + 1, 1e37f)});
  s.push_back({"tiny", gaussian(n, seed + 2, 1e-30f)});       // below the 1e-5 floor
  s.push_back({"subnormal", gaussian(n, seed + 3, 1e-41f)});  // Q8_K's -127/max overflows
  {
    // One large outlier per row (spiky activations), rest small; both signs of the max.
    std::vector<float> x = gaussian(n, seed + 4, 0.01f);
    for (int64_t r = 0; r < rows; ++r)
      x[static_cast<size_t>(r * k + (r * 37) % k)] = r % 2 ? -50.0f : 50.0f;
    s.push_back({"outliers", x});
  }
  {
    // Exact halfway points: with max 127 (s = 1) values n + 0.5 test round-half-even; with a
    // Q8_K max of -127 (iscale = 1) too. Mixed with ties of |max| of both signs.
    std::vector<float> x(n);
    std::mt19937 rng(seed + 5);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t i = 0; i < k; ++i) {
        const int v = static_cast<int>(rng() % 254) - 127;
        x[static_cast<size_t>(r * k + i)] = static_cast<float>(v) + ((rng() & 1) ? 0.5f : 0.0f);
      }
      for (int64_t b = 0; b < k; b += 256) {
        x[static_cast<size_t>(r * k + b)] = 127.0f;
        if (b + 5 < k) x[static_cast<size_t>(r * k + b + 5)] = -127.0f;
      }
    }
    s.push_back({"halfway", x});
  }
  {
    std::vector<float> x = gaussian(n, seed + 6, 1.0f);
    for (size_t i = 0; i < n; i += 3) x[i] = -0.0f;
    s.push_back({"negative zeros", x});
  }
  return s;
}

// A weight matrix with its own storage.
struct OwnedMatrix {
  std::vector<uint8_t> bytes;
  WeightMatrix w;
};

inline size_t matrix_bytes(gguf::TensorType t, int64_t k, int64_t n_out) {
  WeightMatrix w;
  w.type = t;
  w.k = k;
  w.n_out = n_out;
  const size_t codes = static_cast<size_t>(w.row_bytes() * n_out);
  return t == gguf::TensorType::I2_S ? codes + quant::kI2sTailBytes : codes;
}

// Valid ternary weights (values in {-1, 0, 1}, fp16-exact block scales / a tensor scale).
// `raw` instead fills the code bytes with random bytes: I2_S / TQ2_0 then contain code 3 (read
// as +2 everywhere), TQ1_0 non-canonical bytes; block scales stay finite.
inline OwnedMatrix make_ternary(gguf::TensorType t, int64_t k, int64_t n_out, uint32_t seed,
                                bool raw = false) {
  OwnedMatrix m;
  m.bytes.assign(matrix_bytes(t, k, n_out), 0);
  m.w.type = t;
  m.w.k = k;
  m.w.n_out = n_out;
  std::mt19937 rng(seed);
  const size_t n = static_cast<size_t>(k * n_out);
  std::vector<int8_t> tern(n);
  for (auto& v : tern) v = static_cast<int8_t>(static_cast<int>(rng() % 3) - 1);
  if (t == gguf::TensorType::I2_S) {
    const float scale = 0.0123f;
    if (!quant::pack_i2s(tern.data(), n, scale, m.bytes.data()).ok()) std::abort();
    m.w.tensor_scale = scale;
    if (raw) {
      for (size_t i = 0; i < n / 4; ++i) m.bytes[i] = static_cast<uint8_t>(rng());
    }
  } else {
    std::vector<float> scales(n / 256);
    for (auto& s : scales)
      s = std::ldexp(1.0f + static_cast<float>(rng() % 1024) / 1024.0f,
                     static_cast<int>(rng() % 12) - 10);
    const bool tq2 = t == gguf::TensorType::TQ2_0;
    const Status st = tq2 ? quant::pack_tq2_0(tern.data(), n, scales.data(), m.bytes.data())
                          : quant::pack_tq1_0(tern.data(), n, scales.data(), m.bytes.data());
    if (!st.ok()) std::abort();
    if (raw) {
      const size_t bb = tq2 ? quant::kTq2BlockBytes : quant::kTq1BlockBytes;
      const size_t code_bytes = tq2 ? 64 : 52;
      for (size_t b = 0; b < n / 256; ++b)
        for (size_t j = 0; j < code_bytes; ++j) m.bytes[b * bb + j] = static_cast<uint8_t>(rng());
    }
  }
  m.w.data = m.bytes.data();
  return m;
}

inline OwnedMatrix make_float(gguf::TensorType t, int64_t k, int64_t n_out, uint32_t seed) {
  OwnedMatrix m;
  m.bytes.assign(matrix_bytes(t, k, n_out), 0);
  m.w.type = t;
  m.w.k = k;
  m.w.n_out = n_out;
  const std::vector<float> v = gaussian(static_cast<size_t>(k * n_out), seed, 0.05f);
  for (size_t i = 0; i < v.size(); ++i) {
    if (t == gguf::TensorType::F32) {
      std::memcpy(m.bytes.data() + 4 * i, &v[i], 4);
    } else {
      const uint16_t h = t == gguf::TensorType::F16
                             ? fp32_to_fp16(v[i])
                             : static_cast<uint16_t>(std::bit_cast<uint32_t>(v[i]) >> 16);
      std::memcpy(m.bytes.data() + 2 * i, &h, 2);
    }
  }
  m.w.data = m.bytes.data();
  return m;
}

// Bitwise equality of two float arrays, reporting the first mismatch.
inline std::string first_bit_mismatch(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return "size differs";
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::bit_cast<uint32_t>(a[i]) != std::bit_cast<uint32_t>(b[i])) {
      return "index " + std::to_string(i) + ": " + std::to_string(a[i]) + " vs " +
             std::to_string(b[i]);
    }
  }
  return "";
}

}  // namespace bitnet::kernels::test
