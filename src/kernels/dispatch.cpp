#include "kernels/dispatch.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

#include <atomic>

#include "kernels/kernel_table.h"

namespace bitnet::kernels {

const KernelTable& scalar_table() {
  static const KernelTable t{Variant::kScalar,
                             quantize_rows_ref,
                             matmul_ternary_ref,
                             matmul_float_ref,
                             matmul_q8_0_head_ref,
                             attention_scores_ref,
                             attention_values_ref,
                             attention_scores_group_ref,
                             attention_values_group_ref,
                             swiglu_ref,
                             relu_sqr_mul_ref,
                             fp32_to_fp16_row_ref,
                             rms_norm_ref,
                             round_to_f16_ref,
                             softmax_probs_ref,
                             nullptr,
                             "none"};
  return t;
}

#ifndef BITNET_HAVE_AVX2_KERNELS
const KernelTable* avx2_table() { return nullptr; }
const KernelTable* avx2_vnni_table() { return nullptr; }
#endif
#ifndef BITNET_HAVE_AVX512_KERNELS
const KernelTable* avx512_table() { return nullptr; }
#endif
#ifndef BITNET_HAVE_NEON_KERNELS
const KernelTable* neon_table() { return nullptr; }
const KernelTable* neon_dotprod_table() { return nullptr; }
#endif

std::string_view variant_name(Variant v) {
  switch (v) {
    case Variant::kScalar:
      return "scalar";
    case Variant::kAvx2:
      return "avx2";
    case Variant::kAvx2Vnni:
      return "avx2-vnni";
    case Variant::kAvx512:
      return "avx512";
    case Variant::kNeon:
      return "neon";
    case Variant::kNeonDotprod:
      return "neon-dotprod";
  }
  return "?";
}

std::string variant_names() {
  std::string out;
  for (Variant v : kAllVariants) {
    if (!out.empty()) out += " | ";
    out += variant_name(v);
  }
  return out;
}

#if defined(__x86_64__)
namespace {

// F16C (CPUID leaf 1, ECX bit 29), read directly: not every compiler's __builtin_cpu_supports
// knows the name (clang 14 does not).
bool has_f16c() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid(1, &a, &b, &c, &d) != 0 && (c & bit_F16C) != 0;
}

// AVX-VNNI (CPUID leaf 7 subleaf 1, EAX bit 4), for the same reason. Its registers are AVX's, whose
// OS support __builtin_cpu_supports("avx2") has already checked.
bool has_avx_vnni() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid_count(7, 1, &a, &b, &c, &d) != 0 && (a & (1u << 4)) != 0;
}

}  // namespace
#endif

#if defined(__aarch64__)
namespace {

// Advanced SIMD is part of every ARMv8-A CPU; the dot-product extension is optional before
// ARMv8.4-A, so it is asked for: Linux reports it in the auxiliary vector (HWCAP_ASIMDDP). Other
// systems are not asked (no dotprod claimed there).
bool has_dotprod() {
#if defined(__linux__)
  return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#else
  return false;
#endif
}

}  // namespace
#endif

bool cpu_supports(Variant v) {
  switch (v) {
    case Variant::kScalar:
      return true;
#if defined(__x86_64__)
    case Variant::kAvx2:
      return avx2_table() != nullptr && __builtin_cpu_supports("avx2") &&
             __builtin_cpu_supports("fma") && has_f16c();
    case Variant::kAvx2Vnni:
      return avx2_vnni_table() != nullptr && cpu_supports(Variant::kAvx2) && has_avx_vnni();
    case Variant::kAvx512:
      return avx512_table() != nullptr && __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512vnni") && cpu_supports(Variant::kAvx2);
#else
    case Variant::kAvx2:
    case Variant::kAvx2Vnni:
    case Variant::kAvx512:
      return false;  // x86 variants: not built for this target
#endif
#if defined(__aarch64__)
    case Variant::kNeon:
      return neon_table() != nullptr;
    case Variant::kNeonDotprod:
      return neon_dotprod_table() != nullptr && has_dotprod();
#else
    case Variant::kNeon:
    case Variant::kNeonDotprod:
      return false;  // ARM64 variants: not built for this target
#endif
  }
  return false;
}

Variant best_variant() {
  for (Variant v : {Variant::kAvx512, Variant::kAvx2Vnni, Variant::kAvx2, Variant::kNeonDotprod,
                    Variant::kNeon}) {
    if (cpu_supports(v)) return v;
  }
  return Variant::kScalar;
}

namespace {

Result<Variant> parse_variant(std::string_view name) {
  for (Variant v : kAllVariants) {
    if (name == variant_name(v)) return v;
  }
  return make_error("unknown kernel variant '%.*s' (known: %s)", static_cast<int>(name.size()),
                    name.data(), variant_names().c_str());
}

// The table of a variant the CPU runs (compiled in: cpu_supports says so).
const KernelTable* table_of(Variant v) {
  switch (v) {
    case Variant::kAvx512:
      return avx512_table();
    case Variant::kAvx2:
      return avx2_table();
    case Variant::kAvx2Vnni:
      return avx2_vnni_table();
    case Variant::kNeon:
      return neon_table();
    case Variant::kNeonDotprod:
      return neon_dotprod_table();
    case Variant::kScalar:
      break;
  }
  return &scalar_table();
}

}  // namespace

namespace {
std::atomic<const KernelTable*> g_installed{nullptr};
}  // namespace

Kernels Kernels::best() {
  const KernelTable* t = g_installed.load();
  return Kernels(t != nullptr ? t : table_of(best_variant()));
}

void Kernels::install_best_for_testing(const KernelTable* t) { g_installed.store(t); }

Result<Kernels> Kernels::of(Variant v) {
  if (!cpu_supports(v)) {
    return make_error("kernel variant '%s' cannot run on this CPU (best: %s)",
                      std::string(variant_name(v)).c_str(),
                      std::string(variant_name(best_variant())).c_str());
  }
  return Kernels(table_of(v));
}

Result<Kernels> Kernels::named(std::string_view name) {
  BITNET_ASSIGN_OR_RETURN(Variant v, parse_variant(name));
  return of(v);
}

Variant Kernels::variant() const { return t_->variant; }

std::string_view Kernels::name() const { return variant_name(variant()); }

}  // namespace bitnet::kernels
