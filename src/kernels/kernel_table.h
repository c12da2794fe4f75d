// The per-variant function table behind the dispatched entry points (matmul.h, elementwise.h,
// attention.h, q8_0_head.h), which reach it through a Kernels value (dispatch.h). Each ISA
// variant lives in its own translation unit compiled with its own flags and fills one table;
// ranges [o_begin, o_end) of output rows let the caller split work over threads.
#pragma once

#include <string_view>

#include "kernels/attention.h"
#include "kernels/dispatch.h"
#include "kernels/elementwise.h"
#include "kernels/matmul.h"
#include "kernels/q8_0_head.h"

namespace bitnet::kernels {

struct KernelTable {
  Variant variant;
  void (*quantize)(ActQuant kind, const float* x, int64_t rows, int64_t k, QuantizedRows out);
  void (*ternary)(const WeightMatrix& w, const QuantizedActivations& a, float* y, int64_t o_begin,
                  int64_t o_end);
  void (*flt)(const WeightMatrix& w, const float* x, int64_t rows, float* y, int64_t o_begin,
              int64_t o_end);
  void (*q8_0_head)(const WeightMatrix& w, const QuantizedActivations& a, float* y, int64_t o_begin,
                    int64_t o_end);
  void (*scores)(const AttentionHead& a, float* s);
  void (*values)(const AttentionHead& a, const float* p, float* out);
  void (*scores_group)(const AttentionHead& a, const float* const* qs, int n_q, float* const* s);
  void (*values_group)(const AttentionHead& a, int n_q, const float* const* p, float* const* out);
  void (*swiglu)(int64_t n, float* y, const float* x, const float* g);
  void (*relu_sqr_mul)(int64_t n, float* y, const float* x, const float* g);
  void (*to_f16)(const float* x, int64_t n, uint16_t* y);
  void (*rms_norm)(const float* x, const float* w, int64_t n, float eps, float* y);
  void (*round_f16)(float* x, int64_t n);
  void (*softmax)(float* s, int64_t n, bool round_f16);
  // The int8 dot-product peak's loop (dot_peak.h): iters rounds of 16 independent instructions
  // on registers; returns the multiply-adds done. nullptr where there is none (scalar).
  int64_t (*dot_loop)(int64_t iters);
  std::string_view dot_instruction;
};

const KernelTable& scalar_table();
// nullptr when the variant was not compiled in.
const KernelTable* avx2_table();
const KernelTable* avx2_vnni_table();
const KernelTable* avx512_table();
const KernelTable* neon_table();
const KernelTable* neon_dotprod_table();

}  // namespace bitnet::kernels
