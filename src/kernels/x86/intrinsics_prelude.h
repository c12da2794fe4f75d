// What every x86 kernel unit includes before its own code: <immintrin.h>, the GCC warnings the
// intrinsics headers trigger switched off for the rest of the unit, and BITNET_UNROLL.
#pragma once

#include <immintrin.h>

// GCC 12's own intrinsics (`__m256i __Y = __Y;` in the undefined-vector helpers such as
// _mm256_undefined_si256) trigger these warnings wherever they are inlined; the value is never
// read.
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

// Register arrays (accumulators, decoded codes) only stay in registers when the small
// constant-trip loops over them are fully unrolled; GCC does not always do that on its own.
#define BITNET_UNROLL _Pragma("GCC unroll 16")
