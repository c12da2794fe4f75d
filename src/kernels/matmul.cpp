// Dispatched, threaded entry points: pick the active variant's table and split output rows into
// fixed-size chunks (independent of the thread count, so results are too).
#include "kernels/matmul.h"

#include "core/thread_pool.h"
#include "kernels/kernel_table.h"

namespace bitnet::kernels {
namespace {

constexpr int64_t kRowsPerChunk = 64;

template <class Fn>
void split_rows(int64_t n_out, ThreadPool* pool, const Fn& fn) {
  const int64_t n_chunks = (n_out + kRowsPerChunk - 1) / kRowsPerChunk;
  auto run_chunk = [&](int64_t c) {
    const int64_t b = c * kRowsPerChunk;
    fn(b, std::min(n_out, b + kRowsPerChunk));
  };
  if (pool == nullptr) {
    for (int64_t c = 0; c < n_chunks; ++c) run_chunk(c);
  } else {
    pool->run(n_chunks, run_chunk);
  }
}

}  // namespace

void quantize_activations(ActQuant kind, const float* x, int64_t rows, int64_t k,
                          QuantizedActivations* out) {
  active_table().quantize(kind, x, rows, k, out);
}

void matmul_ternary(const WeightMatrix& w, const QuantizedActivations& a, float* y,
                    ThreadPool* pool) {
  const KernelTable& t = active_table();
  split_rows(w.n_out, pool, [&](int64_t b, int64_t e) { t.ternary(w, a, y, b, e); });
}

void matmul_float(const WeightMatrix& w, const float* x, int64_t rows, float* y, ThreadPool* pool) {
  const KernelTable& t = active_table();
  split_rows(w.n_out, pool, [&](int64_t b, int64_t e) { t.flt(w, x, rows, y, b, e); });
}

}  // namespace bitnet::kernels
