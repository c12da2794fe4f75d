// `bitnet` with one deliberately broken kernel: broken_kernels KERNEL bitnet-arguments...
// The CPU's best kernel table is copied with entry KERNEL replaced by a wrapper that runs the
// real kernel and then changes the last bit of every value it wrote, installed as the best
// table (Kernels::install_best_for_testing), and the rest of the arguments run as `bitnet`
// would. KERNEL "none" installs the unchanged copy. cli_test runs it with --verify-kernels to
// show that a one-ulp fault in any checked kernel stops the run with an error naming it.
#include <cstdio>
#include <cstring>
#include <string>

#include "cli/command.h"
#include "kernels/kernel_table.h"

namespace bitnet::kernels {
namespace {

KernelTable g_real;  // the CPU's best table, whose kernels the wrappers call

void flip(float* v) {
  uint32_t b;
  std::memcpy(&b, v, sizeof(b));
  b ^= 1u;
  std::memcpy(v, &b, sizeof(b));
}

void broken_ternary(const WeightMatrix& w, const QuantizedActivations& a, float* y, int64_t o_begin,
                    int64_t o_end) {
  g_real.ternary(w, a, y, o_begin, o_end);
  for (int64_t r = 0; r < a.rows; ++r)  // every row the call wrote
    for (int64_t o = o_begin; o < o_end; ++o) flip(y + r * w.n_out + o);
}
void broken_flt(const WeightMatrix& w, const float* x, int64_t rows, float* y, int64_t o_begin,
                int64_t o_end) {
  g_real.flt(w, x, rows, y, o_begin, o_end);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = o_begin; o < o_end; ++o) flip(y + r * w.n_out + o);
}
void broken_rms_norm(const float* x, const float* w, int64_t n, float eps, float* y) {
  g_real.rms_norm(x, w, n, eps, y);
  for (int64_t i = 0; i < n; ++i) flip(y + i);
}
void broken_relu_sqr_mul(int64_t n, float* y, const float* x, const float* g) {
  g_real.relu_sqr_mul(n, y, x, g);
  for (int64_t i = 0; i < n; ++i) flip(y + i);
}
void broken_softmax(float* s, int64_t n, bool round_f16) {
  g_real.softmax(s, n, round_f16);
  for (int64_t i = 0; i < n; ++i) flip(s + i);
}
void broken_values(const AttentionHead& a, const float* p, float* out) {
  g_real.values(a, p, out);
  for (int64_t i = 0; i < a.head_dim; ++i) flip(out + i);
}
void broken_to_f16(const float* x, int64_t n, uint16_t* y) {
  g_real.to_f16(x, n, y);
  for (int64_t i = 0; i < n; ++i) y[i] ^= 1u;
}

bool install(const std::string& name) {
  g_real = Kernels::best().table();
  static KernelTable broken;
  broken = g_real;
  if (name == "ternary") {
    broken.ternary = broken_ternary;
  } else if (name == "float") {
    broken.flt = broken_flt;
  } else if (name == "rms_norm") {
    broken.rms_norm = broken_rms_norm;
  } else if (name == "relu_sqr_mul") {
    broken.relu_sqr_mul = broken_relu_sqr_mul;
  } else if (name == "softmax") {
    broken.softmax = broken_softmax;
  } else if (name == "attention_values") {
    broken.values = broken_values;
  } else if (name == "f16_conversion") {
    broken.to_f16 = broken_to_f16;
  } else if (name != "none") {
    return false;
  }
  Kernels::install_best_for_testing(&broken);
  return true;
}

}  // namespace
}  // namespace bitnet::kernels

int main(int argc, char** argv) {
  if (argc < 2 || !bitnet::kernels::install(argv[1])) {
    std::fprintf(stderr, "usage: broken_kernels KERNEL bitnet-arguments...\n");
    return 2;
  }
  argv[1] = argv[0];  // the rest is a `bitnet` command line
  return bitnet::cli::main_guarded(argc - 1, argv + 1);
}
