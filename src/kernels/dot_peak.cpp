#include "kernels/dot_peak.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "kernels/kernel_table.h"

namespace bitnet::kernels {

DotPeak measure_int8_dot_peak(const Kernels& k, ThreadPool* pool, double seconds) {
  const KernelTable& t = k.table();
  if (t.dot_loop == nullptr) return {0, "none", 0};
  const int n = pool->size();
  std::vector<double> rates(static_cast<size_t>(n));
  int counted = 0;
  // One chunk per thread, each running its own timed loop: the threads run at the same time,
  // as they do in a prompt's matrix products (a core's clock under load depends on the others).
  auto round = [&](double s) {
    std::fill(rates.begin(), rates.end(), 0.0);
    pool->run(n, [&](int64_t i) {
      using clock = std::chrono::steady_clock;
      int64_t macs = 0, iters = 1 << 12;
      const auto t0 = clock::now();
      double elapsed = 0;
      while (elapsed < s) {
        macs += t.dot_loop(iters);
        elapsed = std::chrono::duration<double>(clock::now() - t0).count();
        iters = std::min<int64_t>(iters * 2, 1 << 18);
      }
      rates[static_cast<size_t>(i)] = static_cast<double>(macs) / elapsed;
    });
    double sum = 0;
    for (double r : rates) sum += r;
    counted = 0;
    for (double r : rates) counted += r > 0 ? 1 : 0;
    return sum;
  };
  // The best of three rounds: a thread just started may share a core with another until the
  // scheduler moves it, and the host may lend a core elsewhere for a moment.
  double best = 0;
  for (int r = 0; r < 3; ++r) best = std::max(best, round(seconds / 3));
  return {best, t.dot_instruction, counted};
}

}  // namespace bitnet::kernels
