// Dispatched, threaded entry points: take the caller's variant's table and split output rows into
// chunks sized from the matrix shape (independent of the thread count, so results are too).
#include "kernels/matmul.h"

#include <algorithm>

#include "core/thread_pool.h"
#include "kernels/kernel_support.h"
#include "kernels/kernel_table.h"
#include "kernels/packed.h"

namespace bitnet::kernels {
namespace {

// Chunks of about 256 KiB of weights (a long contiguous stream per chunk, which the hardware
// prefetchers like, and little per-chunk set-up), but at least ~8 chunks per matrix for load
// balance; whole multiples of 64 rows (the kernels' tiles are 4 to 64 rows). Depends on the
// matrix shape only. (Each output row is computed the same way whatever chunk it falls in, so
// results would not depend on the split anyway.)
int64_t rows_per_chunk(const WeightMatrix& w) {
  constexpr int64_t kTargetBytes = 256 * 1024, kQuantum = 64;
  int64_t rows = kTargetBytes / std::max<int64_t>(1, w.row_bytes());
  rows = std::min(rows, w.n_out / 8);
  return std::max(kQuantum, rows / kQuantum * kQuantum);
}

template <class Fn>
void split_rows(const WeightMatrix& w, ThreadPool* pool, const Fn& fn) {
  const int64_t n_out = w.n_out, chunk = rows_per_chunk(w);
  const int64_t n_chunks = (n_out + chunk - 1) / chunk;
  auto run_chunk = [&](int64_t c) {
    const int64_t b = c * chunk;
    fn(b, std::min(n_out, b + chunk));
  };
  if (pool == nullptr) {
    for (int64_t c = 0; c < n_chunks; ++c) run_chunk(c);
  } else {
    pool->run(n_chunks, run_chunk);
  }
}

// Bytes per output row of the stream the kernels read. Packed layouts (packed.h, q8_0_head.h)
// keep each tile's codes (ternary: 2 bits, Q8_0: 1 byte per element) or F16 values together,
// tile after tile, with any block scales after all of them; chunk starts are whole tiles.
int64_t stream_row_bytes(const WeightMatrix& w) {
  if (w.packed == nullptr || w.type == gguf::TensorType::F16) return w.row_bytes();
  return w.type == gguf::TensorType::Q8_0 ? w.k : w.k / 4;
}

std::span<const uint8_t> rows_from(const WeightMatrix& w, int64_t r, size_t max_bytes) {
  const int64_t per_row = stream_row_bytes(w);
  const uint8_t* base = w.packed != nullptr ? w.packed : w.data;
  const auto left = static_cast<size_t>((w.n_out - r) * per_row);
  return {base + r * per_row, std::min(left, max_bytes)};
}

}  // namespace

std::span<const uint8_t> share_start(std::span<const TernaryProduct> products, int i, int n_threads,
                                     size_t max_bytes) {
  int64_t n_chunks = 0;
  for (const TernaryProduct& p : products) {
    const int64_t rows = rows_per_chunk(*p.w);
    n_chunks += (p.w->n_out + rows - 1) / rows;
  }
  int64_t c = ThreadPool::share_begin(n_chunks, i, n_threads);
  for (const TernaryProduct& p : products) {
    const int64_t rows = rows_per_chunk(*p.w), chunks = (p.w->n_out + rows - 1) / rows;
    if (c < chunks) return rows_from(*p.w, c * rows, max_bytes);
    c -= chunks;
  }
  return {};
}

std::span<const uint8_t> share_start(const WeightMatrix& w, int i, int n_threads,
                                     size_t max_bytes) {
  const int64_t rows = rows_per_chunk(w), n_chunks = (w.n_out + rows - 1) / rows;
  return rows_from(w, ThreadPool::share_begin(n_chunks, i, n_threads) * rows, max_bytes);
}

void quantize_activations(const Kernels& kern, ActQuant kind, const float* x, int64_t rows,
                          int64_t k, QuantizedActivations* out, ThreadPool* pool) {
  detail::shape_quantized(kind, rows, k, out);
  const int n_threads = pool != nullptr ? pool->size() : 1;
  if (rows < 2 || n_threads < 2) return kern.table().quantize(kind, x, rows, k, rows_from(*out, 0));
  const int64_t per = (rows + n_threads - 1) / n_threads;
  pool->run((rows + per - 1) / per, [&](int64_t c) {
    const int64_t r0 = c * per, r1 = std::min(rows, r0 + per);
    kern.table().quantize(kind, x + r0 * k, r1 - r0, k, rows_from(*out, r0));
  });
}

void matmul_ternary(const Kernels& k, const WeightMatrix& w, const QuantizedActivations& a,
                    float* y, ThreadPool* pool) {
  const TernaryProduct one{&w, y};
  matmul_ternary_many(k, std::span(&one, 1), a, pool);
}

void matmul_ternary_many(const Kernels& k, std::span<const TernaryProduct> products,
                         const QuantizedActivations& a, ThreadPool* pool) {
  if (products.size() > static_cast<size_t>(kMaxFusedProducts)) {
    for (const TernaryProduct& p : products) matmul_ternary_many(k, std::span(&p, 1), a, pool);
    return;
  }
  // Chunks of product i are [first[i], first[i + 1]) in the joint numbering; each product keeps
  // its own chunk size, so every row is computed exactly as matmul_ternary computes it.
  int64_t first[kMaxFusedProducts + 1] = {0}, rows[kMaxFusedProducts] = {0};
  const size_t n = products.size();
  for (size_t i = 0; i < n; ++i) {
    rows[i] = rows_per_chunk(*products[i].w);
    first[i + 1] = first[i] + (products[i].w->n_out + rows[i] - 1) / rows[i];
  }
  const KernelTable& t = k.table();
  auto run_chunk = [&](int64_t c) {
    size_t i = 0;
    while (c >= first[i + 1]) ++i;
    const WeightMatrix& w = *products[i].w;
    const int64_t b = (c - first[i]) * rows[i];
    t.ternary(w, a, products[i].y, b, std::min(w.n_out, b + rows[i]));
  };
  if (pool == nullptr) {
    for (int64_t c = 0; c < first[n]; ++c) run_chunk(c);
  } else {
    pool->run(first[n], run_chunk);
  }
}

void matmul_float(const Kernels& k, const WeightMatrix& w, const float* x, int64_t rows, float* y,
                  ThreadPool* pool) {
  const KernelTable& t = k.table();
  split_rows(w, pool, [&](int64_t b, int64_t e) { t.flt(w, x, rows, y, b, e); });
}

void matmul_q8_0_head(const Kernels& k, const WeightMatrix& w, const float* x, int64_t rows,
                      float* y, ThreadPool* pool, QuantizedActivations* scratch) {
  quantize_q8_0_ref(x, rows, w.k, scratch);  // k values per row: small next to the matrix
  const KernelTable& t = k.table();
  split_rows(w, pool, [&](int64_t b, int64_t e) { t.q8_0_head(w, *scratch, y, b, e); });
}

}  // namespace bitnet::kernels
