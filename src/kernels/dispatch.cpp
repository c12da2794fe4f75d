#include "kernels/dispatch.h"

#include <cpuid.h>

#include <atomic>
#include <cstdlib>
#include <mutex>

#include "kernels/kernel_table.h"

namespace bitnet::kernels {

const KernelTable& scalar_table() {
  static const KernelTable t{Variant::kScalar,     quantize_activations_ref,
                             matmul_ternary_ref,   matmul_float_ref,
                             matmul_q8_0_head_ref, attention_scores_ref,
                             attention_values_ref, swiglu_ref,
                             fp32_to_fp16_row_ref, rms_norm_ref,
                             round_to_f16_ref,     softmax_probs_ref};
  return t;
}

#ifndef BITNET_HAVE_AVX2_KERNELS
const KernelTable* avx2_table() { return nullptr; }
#endif
#ifndef BITNET_HAVE_AVX512_KERNELS
const KernelTable* avx512_table() { return nullptr; }
#endif

std::string_view variant_name(Variant v) {
  switch (v) {
    case Variant::kScalar:
      return "scalar";
    case Variant::kAvx2:
      return "avx2";
    case Variant::kAvx512:
      return "avx512";
  }
  return "?";
}

namespace {

// F16C (CPUID leaf 1, ECX bit 29), read directly: not every compiler's __builtin_cpu_supports
// knows the name (clang 14 does not).
bool has_f16c() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid(1, &a, &b, &c, &d) != 0 && (c & bit_F16C) != 0;
}

}  // namespace

bool cpu_supports(Variant v) {
  switch (v) {
    case Variant::kScalar:
      return true;
    case Variant::kAvx2:
      return avx2_table() != nullptr && __builtin_cpu_supports("avx2") &&
             __builtin_cpu_supports("fma") && has_f16c();
    case Variant::kAvx512:
      return avx512_table() != nullptr && __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512vnni") && cpu_supports(Variant::kAvx2);
  }
  return false;
}

Variant best_variant() {
  for (Variant v : {Variant::kAvx512, Variant::kAvx2}) {
    if (cpu_supports(v)) return v;
  }
  return Variant::kScalar;
}

namespace {

std::atomic<int> g_variant{-1};

Result<Variant> parse_variant(std::string_view name) {
  for (Variant v : {Variant::kScalar, Variant::kAvx2, Variant::kAvx512}) {
    if (name == variant_name(v)) return v;
  }
  return make_error("unknown kernel variant '%.*s' (known: scalar, avx2, avx512)",
                    static_cast<int>(name.size()), name.data());
}

}  // namespace

Status set_variant(Variant v) {
  if (!cpu_supports(v)) {
    return make_error("kernel variant '%s' cannot run on this CPU (best: %s)",
                      std::string(variant_name(v)).c_str(),
                      std::string(variant_name(best_variant())).c_str());
  }
  g_variant.store(static_cast<int>(v));
  return {};
}

Status set_variant_by_name(std::string_view name) {
  BITNET_ASSIGN_OR_RETURN(Variant v, parse_variant(name));
  return set_variant(v);
}

Variant active_variant() {
  int v = g_variant.load();
  if (v >= 0) return static_cast<Variant>(v);
  // First use: BITNET_KERNELS may force a lower variant; an unusable value falls back to the
  // best one (the CLI validates the variable up front and reports it).
  Variant chosen = best_variant();
  if (const char* env = std::getenv("BITNET_KERNELS"); env != nullptr && env[0] != '\0') {
    auto parsed = parse_variant(env);
    if (parsed.ok() && cpu_supports(*parsed)) chosen = *parsed;
  }
  int expected = -1;
  g_variant.compare_exchange_strong(expected, static_cast<int>(chosen));
  return static_cast<Variant>(g_variant.load());
}

const KernelTable& active_table() {
  switch (active_variant()) {
    case Variant::kAvx512:
      return *avx512_table();
    case Variant::kAvx2:
      return *avx2_table();
    case Variant::kScalar:
      break;
  }
  return scalar_table();
}

}  // namespace bitnet::kernels
