// Run-time choice of kernel variant from CPU features, made once per process.
// BITNET_KERNELS=scalar|avx2|avx512 (or `--kernels`) forces a LOWER variant than the best one,
// for tests and for users with odd CPUs; asking for one the CPU cannot run is an error.
#pragma once

#include <string>
#include <string_view>

#include "core/result.h"
#include "kernels/activations.h"

namespace bitnet::kernels {

enum class Variant { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

std::string_view variant_name(Variant v);
// The best variant this CPU runs.
Variant best_variant();
bool cpu_supports(Variant v);
// The variant in use (best_variant(), or what BITNET_KERNELS / set_variant chose).
Variant active_variant();
// Forces a variant; fails if the CPU cannot run it.
Status set_variant(Variant v);
Status set_variant_by_name(std::string_view name);

}  // namespace bitnet::kernels
