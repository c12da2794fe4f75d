#include "kernels/screened_head.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>

#include "core/fp16.h"
#include "core/thread_pool.h"
#include "kernels/q8_0_head.h"

namespace bitnet::kernels {

namespace {

constexpr double kUnitRoundoff = 0x1p-24;
// The bound's own double arithmetic (a handful of roundings of ~1e-16 each), with room to spare.
constexpr double kBoundSlack = 1e-6;
// Products that underflow lose up to 2^-150 each: far below this for any row length we load.
constexpr double kAbsoluteSlack = 1e-30;

// A norm computed in double, as a float no smaller than it.
float round_up(double v) {
  v *= 1.0 + 1e-12;  // the double sum of squares and sqrt: relative error ~1e-13 at most
  auto f = static_cast<float>(v);
  if (static_cast<double>(f) < v) f = std::nextafter(f, std::numeric_limits<float>::infinity());
  return f;
}

}  // namespace

void screen_row_norms(const WeightMatrix& exact, const WeightMatrix& screen, int64_t r0, int64_t r1,
                      float* resid_norm, float* screen_norm) {
  const int64_t nb = exact.k / kQ8_0Block;
  std::vector<float> row(static_cast<size_t>(exact.k));
  for (int64_t j = r0; j < r1; ++j) {
    row_to_float(exact, j, row.data());
    const uint8_t* codes = q8_0_codes(screen, j / 16);
    const uint16_t* scales = q8_0_scales(screen, j / 16);
    const int64_t l = j % 16;
    double rr = 0, ss = 0;
    for (int64_t b = 0; b < nb; ++b) {
      const double d = fp16_to_fp32(scales[b * 16 + l]);
      for (int64_t e = 0; e < kQ8_0Block; ++e) {
        const int code =
            static_cast<int>(codes[b * kQ8_0TileBlockBytes + (e / 4) * 64 + l * 4 + e % 4]) - 128;
        const double ws = d * code;
        const double r = static_cast<double>(row[static_cast<size_t>(b * kQ8_0Block + e)]) - ws;
        rr += r * r;
        ss += ws * ws;
      }
    }
    resid_norm[j] = round_up(std::sqrt(rr));
    screen_norm[j] = round_up(std::sqrt(ss));
  }
}

void set_norm_maxima(ScreenedHead* h) {
  float r = 0, s = 0;
  for (int64_t j = 0; j < h->screen.n_out; ++j) {
    const float rj = h->resid_norm[j], sj = h->screen_norm[j];
    r = std::isfinite(rj) && std::isfinite(r) ? std::max(r, rj)
                                              : std::numeric_limits<float>::infinity();
    s = std::isfinite(sj) && std::isfinite(s) ? std::max(s, sj)
                                              : std::numeric_limits<float>::infinity();
  }
  h->max_resid_norm = r;
  h->max_screen_norm = s;
}

ScreenInputNorms screen_input_norms(const float* x, const QuantizedActivations& qa, int64_t r) {
  const int64_t k = qa.k, nb = k / kQ8_0Block;
  const int8_t* q = qa.row(r);
  double xx = 0, ee = 0;
  for (int64_t b = 0; b < nb; ++b) {
    const double d = qa.scales[static_cast<size_t>(r * nb + b)];
    for (int64_t i = b * kQ8_0Block; i < (b + 1) * kQ8_0Block; ++i) {
      const double v = x[i], e = v - d * q[i];
      xx += v * v;
      ee += e * e;
    }
  }
  return {std::sqrt(xx) * (1.0 + 1e-12), std::sqrt(ee) * (1.0 + 1e-12)};
}

namespace {

// The bound regrouped per token: b_j = alpha |r_j| + beta |w'_j| + kAbsoluteSlack, so a token
// computes its factors once and each row's bound is two products (and the largest norms bound
// every row's at once).
struct BoundFactors {
  double alpha, beta;
  double of(const ScreenedHead& h, int64_t j) const {
    return alpha * h.resid_norm[j] + beta * h.screen_norm[j] + kAbsoluteSlack;
  }
};
BoundFactors bound_factors(const ScreenedHead& h, const ScreenInputNorms& in) {
  const double n_blocks = static_cast<double>(h.exact->k / kQ8_0Block);
  const double c_exact =
      h.exact->float_sums == FloatSums::kDouble ? 4.0 : static_cast<double>(kFloatSumBlock + 4);
  const double slack = 1.0 + kBoundSlack;
  // |x| |r| + |e| |w'| + (n_b + 4) u |x'| |w'| + c u |x| (|w'| + |r|), with |x'| <= |x| + |e|.
  return {
      (in.x + c_exact * kUnitRoundoff * in.x) * slack,
      (in.err + (n_blocks + 4) * kUnitRoundoff * (in.x + in.err) + c_exact * kUnitRoundoff * in.x) *
          slack};
}

// The n-th largest of the finite values of y (-infinity if there are fewer), with a min-heap.
float nth_largest(const float* y, int64_t n_out, size_t n, std::vector<float>* heap) {
  heap->clear();
  float floor = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < n_out; ++j) {
    const float v = y[j];
    if (!(v > floor) || !std::isfinite(v)) continue;  // most rows stop here
    if (heap->size() < n) {
      heap->push_back(v);
      std::push_heap(heap->begin(), heap->end(), std::greater<>());
      if (heap->size() == n) floor = heap->front();
    } else {
      std::pop_heap(heap->begin(), heap->end(), std::greater<>());
      heap->back() = v;
      std::push_heap(heap->begin(), heap->end(), std::greater<>());
      floor = heap->front();
    }
  }
  return heap->size() < n ? -std::numeric_limits<float>::infinity() : heap->front();
}

}  // namespace

double screen_bound(const ScreenedHead& h, const ScreenInputNorms& in, int64_t j) {
  return bound_factors(h, in).of(h, j);
}

uint64_t screen_bytes(const ScreenedHead& h) {
  return q8_0_head_size(h.screen.k, h.screen.n_out) +
         static_cast<uint64_t>(h.screen.n_out) * 2 * sizeof(float);
}

namespace {

// Input r's candidates, their exact logits, and -infinity everywhere else in y's row r (which
// holds the approximations on entry). Returns the number of candidates. pool: the threads for
// this one input's gather and exact product, or null when the inputs themselves run in parallel.
int64_t finish_input(const Kernels& k, const ScreenedHead& h, const float* x, int64_t r, int top,
                     float* y, ThreadPool* pool, const QuantizedActivations& qa,
                     ScreenRowScratch* scratch) {
  const WeightMatrix& ex = *h.exact;
  const int64_t n_out = ex.n_out, dim = ex.k;
  const auto n_top = static_cast<size_t>(std::clamp<int64_t>(top, 1, n_out));
  const bool finite_norms = std::isfinite(h.max_resid_norm) && std::isfinite(h.max_screen_norm);
  float* yr = y + r * n_out;
  const float* xr = x + r * dim;
  const ScreenInputNorms in = screen_input_norms(xr, qa, r);
  const BoundFactors bf = bound_factors(h, in);
  // Every b_j is at most b_max.
  const double b_max =
      (bf.alpha * h.max_resid_norm + bf.beta * h.max_screen_norm) * (1.0 + 1e-9) + kAbsoluteSlack;
  std::vector<int32_t>& cand = scratch->rows;
  cand.clear();
  // a_n: the n-th largest approximation. At least n rows have lower bounds >= a_n - b_max, so
  // the n-th largest lower bound t is too, and a row with a_j < a_n - 2 b_max has
  // a_j + b_j < t: it is neither a candidate nor among the n largest lower bounds. Only the
  // other rows (a few hundred at most, usually) get their own bound. (The cut is lowered a
  // little more for t's rounding down to float below.)
  const double a_n = nth_largest(yr, n_out, n_top, &scratch->kth);
  const double cut = a_n - 2 * b_max - 1e-5 * (std::fabs(a_n) + b_max) - kAbsoluteSlack;
  const bool screen_ok = finite_norms && std::isfinite(cut);
  for (int64_t j = 0; j < n_out; ++j) {
    // Rows with a non-finite approximation are always computed exactly (NaN fails `<`).
    if (!screen_ok || !(static_cast<double>(yr[j]) < cut)) cand.push_back(static_cast<int32_t>(j));
  }
  if (screen_ok) {
    // t: the n-th largest lower bound among the remaining rows (rounded down to float: a
    // smaller threshold only admits more rows), then the candidates among them.
    std::vector<float>& lows = scratch->kth;
    lows.clear();
    for (const int32_t j : cand) {
      const double lo = static_cast<double>(yr[j]) - bf.of(h, j);
      auto f = static_cast<float>(lo);
      if (static_cast<double>(f) > lo)
        f = std::nextafter(f, -std::numeric_limits<float>::infinity());
      lows.push_back(std::isfinite(lo) ? f : -std::numeric_limits<float>::infinity());
    }
    double t = -std::numeric_limits<double>::infinity();
    if (lows.size() >= n_top) {
      std::nth_element(lows.begin(), lows.begin() + static_cast<std::ptrdiff_t>(n_top - 1),
                       lows.end(), std::greater<>());
      t = lows[n_top - 1];
    }
    size_t kept = 0;
    for (const int32_t j : cand) {
      const double hi = static_cast<double>(yr[j]) + bf.of(h, j);
      if (!(hi < t)) cand[kept++] = j;
    }
    cand.resize(kept);
  }
  // The candidates' rows gathered into a small matrix and computed by the exact head's own
  // kernel (k's variant; each row's result does not depend on the others', so the same bits).
  const auto n_cand = static_cast<int64_t>(cand.size());
  const int64_t rb = ex.row_bytes();
  scratch->gathered.resize(static_cast<size_t>(n_cand * rb));
  constexpr int64_t kRowsPerChunk = 16;
  auto gather = [&](int64_t c) {
    for (int64_t i = c * kRowsPerChunk; i < std::min(n_cand, (c + 1) * kRowsPerChunk); ++i) {
      const int32_t j = cand[static_cast<size_t>(i)];
      uint8_t* dst = scratch->gathered.data() + i * rb;
      if (h.fd < 0 || pread(h.fd, dst, static_cast<size_t>(rb),
                            static_cast<off_t>(h.file_offset + j * rb)) != rb)
        std::memcpy(dst, ex.row(j), static_cast<size_t>(rb));  // the mapping
    }
  };
  const int64_t n_chunks = (n_cand + kRowsPerChunk - 1) / kRowsPerChunk;
  if (pool != nullptr && n_chunks > 1) {
    pool->run(n_chunks, gather);
  } else {
    for (int64_t c = 0; c < n_chunks; ++c) gather(c);
  }
  WeightMatrix g = ex;
  g.data = scratch->gathered.data();
  g.packed = nullptr;
  g.n_out = n_cand;
  scratch->exact.resize(static_cast<size_t>(n_cand));
  if (n_cand > 0) matmul_float(k, g, xr, 1, scratch->exact.data(), pool);
  std::fill(yr, yr + n_out, -std::numeric_limits<float>::infinity());
  for (int64_t i = 0; i < n_cand; ++i)
    yr[cand[static_cast<size_t>(i)]] = scratch->exact[static_cast<size_t>(i)];
  return n_cand;
}

}  // namespace

int64_t screened_head(const Kernels& k, const ScreenedHead& h, const float* x, int64_t rows,
                      int top, float* y, ThreadPool* pool, ScreenScratch* scratch) {
  matmul_q8_0_head(k, h.screen, x, rows, y, pool, &scratch->qa);  // the approximations, into y
  if (scratch->per_input.size() < static_cast<size_t>(rows))
    scratch->per_input.resize(static_cast<size_t>(rows));
  auto per_input = [&](int64_t r) { return &scratch->per_input[static_cast<size_t>(r)]; };
  // One input: its gather and exact product use the threads. Several: one input per task, each
  // computed exactly as alone (its candidates and their exact logits do not depend on how).
  if (rows == 1 || pool == nullptr || pool->size() < 2) {
    int64_t n_exact = 0;
    for (int64_t r = 0; r < rows; ++r)
      n_exact += finish_input(k, h, x, r, top, y, pool, scratch->qa, per_input(r));
    return n_exact;
  }
  std::vector<int64_t> counts(static_cast<size_t>(rows));
  pool->run(rows, [&](int64_t r) {
    counts[static_cast<size_t>(r)] =
        finish_input(k, h, x, r, top, y, nullptr, scratch->qa, per_input(r));
  });
  int64_t n_exact = 0;
  for (const int64_t c : counts) n_exact += c;
  return n_exact;
}

}  // namespace bitnet::kernels
