// Kernel variants and the choice of one. Nothing here reads the environment or keeps a global
// choice: the caller picks a Kernels value (the CLI from `--kernels` / BITNET_KERNELS, which may
// force a LOWER variant than the best one, for tests and for users with odd CPUs; asking for one
// the CPU cannot run is an error) and passes it to every dispatched entry point.
#pragma once

#include <string>
#include <string_view>

#include "core/result.h"
#include "kernels/activations.h"

namespace bitnet::kernels {

// x86-64: avx2 (AVX2 + FMA + F16C), avx2-vnni (those and AVX-VNNI, the 256-bit VPDPBUSD of
// Intel's client CPUs since Alder Lake and of AMD's since Zen 5, most of which have no AVX-512),
// avx512 (F, BW, VL, VNNI). ARM64: neon (Advanced SIMD, every ARMv8-A CPU), neon-dotprod (with
// the dot-product extension, ARMv8.2-A's SDOT).
enum class Variant {
  kScalar = 0,
  kAvx2 = 1,
  kAvx512 = 2,
  kNeon = 3,
  kNeonDotprod = 4,
  kAvx2Vnni = 5
};

// Every variant, in the order the CLI lists them.
inline constexpr Variant kAllVariants[] = {Variant::kScalar, Variant::kAvx2, Variant::kAvx2Vnni,
                                           Variant::kAvx512, Variant::kNeon, Variant::kNeonDotprod};

std::string_view variant_name(Variant v);
// "scalar | avx2 | avx2-vnni | avx512 | neon | neon-dotprod", for help texts.
std::string variant_names();
// The best variant this CPU runs.
Variant best_variant();
bool cpu_supports(Variant v);

struct KernelTable;  // kernel_table.h

// A kernel variant's entry points, chosen by the caller (the CLI reads --kernels / BITNET_KERNELS).
// Cheap to copy: one pointer to a static table.
class Kernels {
 public:
  // The best variant this CPU runs (or the table installed for testing, below).
  static Kernels best();
  // Tests only: makes best() return `t` (nullptr restores the CPU's best). A deliberately broken
  // table proves end to end that --verify-kernels stops a run (tests/cli/broken_kernels.cpp).
  static void install_best_for_testing(const KernelTable* t);
  // Fails if the CPU cannot run v.
  static Result<Kernels> of(Variant v);
  // A variant_name(); fails on another name or a variant the CPU cannot run.
  static Result<Kernels> named(std::string_view name);

  Variant variant() const;
  std::string_view name() const;  // variant_name(variant())
  const KernelTable& table() const { return *t_; }
  bool operator==(const Kernels&) const = default;

 private:
  explicit Kernels(const KernelTable* t) : t_(t) {}
  const KernelTable* t_;
};

}  // namespace bitnet::kernels
