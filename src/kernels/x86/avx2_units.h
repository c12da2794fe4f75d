// Pieces the AVX2-width translation units share (avx2_attention.cpp, avx2_elementwise.cpp,
// avx2_kernels.cpp, avx2_packed.cpp, avx2_vnni_packed.cpp). Everything has internal linkage (an
// unnamed namespace), so each unit keeps its own copy built with its own flags (see
// kernel_support.h).
#pragma once

#include <cstdint>

#include "kernels/x86/intrinsics_prelude.h"

namespace bitnet::kernels::avx2 {
namespace {

inline __m256i load32(const void* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}
// The 4 bytes at p in every dword.
inline __m256i bcast4(const int8_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}
// An empty asm that claims to change v: GCC then cannot reassociate the additions around it,
// which it otherwise does for integer vectors (all products first, a tree of sums after), needing
// far more than AVX's 16 registers and spilling.
inline __m256i in_register(__m256i v) {
  asm("" : "+x"(v));
  return v;
}

// Lanes [0, n) of the 8 values at base + at (f16 or float), the others `fill`. AVX2 has no masked
// 16-bit loads, so a part of a vector goes through a buffer.
template <bool F16>
inline __m256 load_part(const void* base, int64_t at, int64_t n, float fill = 0.0f) {
  if constexpr (F16) {
    const uint16_t* p = static_cast<const uint16_t*>(base) + at;
    if (n >= 8) return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    const auto f = static_cast<uint16_t>(_cvtss_sh(fill, _MM_FROUND_TO_NEAREST_INT));
    alignas(16) uint16_t buf[8] = {f, f, f, f, f, f, f, f};
    for (int64_t l = 0; l < n; ++l) buf[l] = p[l];
    return _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(buf)));
  } else {
    const float* p = static_cast<const float*>(base) + at;
    if (n >= 8) return _mm256_loadu_ps(p);
    alignas(32) float buf[8] = {fill, fill, fill, fill, fill, fill, fill, fill};
    for (int64_t l = 0; l < n; ++l) buf[l] = p[l];
    return _mm256_load_ps(buf);
  }
}

// Lanes [0, n) of v to dst.
inline void store_part(float* dst, __m256 v, int64_t n) {
  if (n >= 8) {
    _mm256_storeu_ps(dst, v);
    return;
  }
  alignas(32) float buf[8];
  _mm256_store_ps(buf, v);
  for (int64_t l = 0; l < n; ++l) dst[l] = buf[l];
}

}  // namespace
}  // namespace bitnet::kernels::avx2
