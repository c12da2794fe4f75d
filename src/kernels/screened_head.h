// The screened exact LM head: the exact head's logits for every row that can be among the
// largest few, at about half the bytes per token of computing them all.
//
// Decoding reads the whole LM head per token, and on BitNet models the F16 head is the larger
// part of the weights (2B4T: 657 MB of 1.18 GB). Greedy decoding needs only its argmax, top-k
// sampling only its k largest logits. So each token:
//   1. approximate logits a_j from a Q8_0 copy of the head made at load (q8_0_head.h: the
//      screen, half the bytes), the input quantized to Q8_0 as well;
//   2. a rigorous bound |e_j - a_j| <= b_j on how far the exact logit e_j (what the exact head
//      computes, rounding included) can be from a_j;
//   3. the exact logit, computed as the exact head computes it (its rows gathered and run through
//      the same matmul_float, so the same bits), only for rows j with a_j + b_j >= t, where t is
//      the n-th largest a_i - b_i over all rows (n = 1 for greedy). Every other row is below n
//      rows' exact logits, so it cannot be among the n largest; its logit is written as -infinity.
// The n largest logits, and their order, are therefore exactly those of the full exact head,
// ties included: a row tied with the n-th largest exact logit passes the test too.
//
// The bound. Let x be the exact head's input (already rounded as that head takes it), w row j,
// w' the screen's row (f16 block scale * code), x' the quantized input, r = w - w', e = x - x'.
//   x.w - x'.w' = x.r + e.w'   so   |x.w - x'.w'| <= |x| |r| + |e| |w'|   (Cauchy-Schwarz)
// plus the rounding of the two computations (u = 2^-24, n_b = k / 32 blocks):
//   the screen sums n_b float products of exact int32 block sums: <= (n_b + 4) u |x'| |w'|;
//   the exact head rounds each product to float, sums in double (or in float per 64-block) and
//   rounds the total to float: <= c u |x| |w| with c = 4 (double sums) or 68 (block sums);
//   |x'| <= |x| + |e| and |w| <= |w'| + |r|.
// |r| and |w'| are per-row constants computed at load (in double, rounded up to float); |x| and
// |e| are computed per token in double. The total is widened by a relative 1e-6 for the double
// arithmetic of the bound itself. Rows whose bound or approximation is not finite (an infinite
// or NaN input or weight) are always computed exactly.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/activations.h"
#include "kernels/dispatch.h"
#include "kernels/matmul.h"

namespace bitnet {
class ThreadPool;
}

namespace bitnet::kernels {

struct ScreenedHead {
  const WeightMatrix* exact = nullptr;  // F16 / BF16 / F32 in its file layout (not packed)
  WeightMatrix screen;                  // Q8_0 (q8_0_head.h layout), rows as `exact`'s
  const float* resid_norm = nullptr;    // per row: |w - w'|, rounded up
  const float* screen_norm = nullptr;   // per row: |w'|, rounded up
  float max_resid_norm = 0, max_screen_norm = 0;  // their maxima (infinity if one is not finite)
  // Where the exact rows are read from: with fd >= 0, pread of the file at file_offset (row j at
  // file_offset + j * row_bytes), else exact->data. Reading a few scattered rows per token
  // through a file mapping would map far more than them (the kernel maps whole large folios and
  // fault-around windows), so the resident size would creep up to the whole head's.
  int fd = -1;
  int64_t file_offset = 0;
};

// resid_norm / screen_norm of rows [r0, r1) of `exact` and its packed screen.
void screen_row_norms(const WeightMatrix& exact, const WeightMatrix& screen, int64_t r0, int64_t r1,
                      float* resid_norm, float* screen_norm);
// Sets h's max_resid_norm / max_screen_norm from its row norms.
void set_norm_maxima(ScreenedHead* h);

// One input's selection: each input of a batch has its own, so inputs can be finished in
// parallel.
struct ScreenRowScratch {
  std::vector<float> kth;         // a min-heap of the n largest lower bounds
  std::vector<int32_t> rows;      // the candidates
  std::vector<uint8_t> gathered;  // their rows of the exact head
  std::vector<float> exact;       // their exact logits
};
struct ScreenScratch {
  QuantizedActivations qa;
  std::vector<ScreenRowScratch> per_input;
};

// For each of `rows` inputs x (n_rows x k, rounded as the exact head takes them): y row r
// (n_out floats) holds the exact logit of every output row that can be among its `top` largest
// and -infinity elsewhere. Returns how many output rows were computed exactly (all inputs).
// Dispatched (the screen's product runs k's variant) and threaded.
int64_t screened_head(const Kernels& k, const ScreenedHead& h, const float* x, int64_t rows,
                      int top, float* y, ThreadPool* pool, ScreenScratch* scratch);

// The bound b_j above for one input: the per-token factors, and b_j from them.
struct ScreenInputNorms {
  double x = 0;    // |x|
  double err = 0;  // |x - x'|
};
ScreenInputNorms screen_input_norms(const float* x, const QuantizedActivations& qa, int64_t r);
double screen_bound(const ScreenedHead& h, const ScreenInputNorms& in, int64_t j);

// Bytes every screened token reads: the screen and its two row norms (exact rows come on top).
uint64_t screen_bytes(const ScreenedHead& h);

}  // namespace bitnet::kernels
