// What every ARM64 kernel unit includes before its own code: <arm_neon.h> and BITNET_UNROLL.
#pragma once

#include <arm_neon.h>

// Register arrays (accumulators, decoded codes) only stay in registers when the small
// constant-trip loops over them are fully unrolled; GCC does not always do that on its own.
#define BITNET_UNROLL _Pragma("GCC unroll 16")
