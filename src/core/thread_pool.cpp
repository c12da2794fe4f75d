#include "core/thread_pool.h"

#include <algorithm>
#include <chrono>

namespace bitnet {
namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#else
  std::this_thread::yield();
#endif
}

using Clock = std::chrono::steady_clock;

// Waiting: this many pauses (~15 us) first, then sched_yield between checks, so that with more
// threads than free cores a waiting thread hands its core to the one it waits for.
constexpr uint32_t kPureSpins = 256;

inline void backoff(uint32_t spins) {
  if (spins < kPureSpins) {
    cpu_relax();
  } else {
    std::this_thread::yield();
  }
}

}  // namespace

ThreadPool::ThreadPool(int n_threads, int spin_micros)
    : n_threads_(n_threads < 1 ? 1 : n_threads), spin_micros_(spin_micros < 0 ? 0 : spin_micros) {
  shares_.reset(new Share[static_cast<size_t>(n_threads_)]);
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true, std::memory_order_relaxed);
  }
  start_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::drain(int index) {
  const auto& fn = *job_;
  for (int k = 0; k < n_threads_; ++k) {
    Share& s = shares_[static_cast<size_t>((index + k) % n_threads_)];
    for (;;) {
      const int64_t c = s.next.fetch_add(1, std::memory_order_relaxed);
      if (c >= s.end) break;
      fn(c);
    }
  }
}

template <class Stop>
void ThreadPool::warm(std::span<const uint8_t> bytes, const Stop& stop) {
  constexpr size_t kStep = 4096;  // between checks
  for (size_t at = 0; at < bytes.size(); at += kStep) {
    if (stop()) return;
    const size_t end = std::min(bytes.size(), at + kStep);
    for (size_t l = at; l < end; l += 64) __builtin_prefetch(bytes.data() + l, 0, 2);
  }
}

uint32_t ThreadPool::wait_for_job(uint32_t seen) {
  const auto deadline = Clock::now() + std::chrono::microseconds(spin_micros_);
  for (uint32_t spins = 1;; ++spins) {
    const uint32_t g = generation_.load(std::memory_order_acquire);
    if (g != seen || stop_.load(std::memory_order_relaxed)) return g;
    backoff(spins);
    if ((spins & 63) == 0 && Clock::now() >= deadline) return seen;
  }
}

void ThreadPool::worker_loop(int index) {
  uint32_t seen = 0;
  for (;;) {
    uint32_t g = wait_for_job(seen);
    if (g == seen && !stop_.load(std::memory_order_relaxed)) {
      std::unique_lock<std::mutex> lock(mu_);
      ++sleeping_;
      start_cv_.wait(lock, [&] {
        return stop_.load(std::memory_order_relaxed) ||
               generation_.load(std::memory_order_acquire) != seen;
      });
      --sleeping_;
      g = generation_.load(std::memory_order_acquire);
    }
    if (stop_.load(std::memory_order_relaxed)) return;
    seen = g;
    drain(index);
    const auto ahead = shares_[static_cast<size_t>(index)].warm;  // before run() resets it
    pending_workers_.fetch_sub(1, std::memory_order_acq_rel);
    if (!ahead.empty()) {
      warm(ahead, [&] { return generation_.load(std::memory_order_relaxed) != seen; });
    }
  }
}

void ThreadPool::run(int64_t n_chunks, const std::function<void(int64_t)>& fn) {
  if (n_chunks <= 0) return;
  if (workers_.empty() || n_chunks == 1) {
    for (int64_t c = 0; c < n_chunks; ++c) fn(c);
    return;
  }
  job_ = &fn;
  n_chunks_ = n_chunks;
  for (int i = 0; i < n_threads_; ++i) {
    Share& s = shares_[static_cast<size_t>(i)];
    s.next.store(share_begin(n_chunks, i, n_threads_), std::memory_order_relaxed);
    s.end = share_begin(n_chunks, i + 1, n_threads_);
  }
  pending_workers_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (sleeping_ > 0) start_cv_.notify_all();
  }
  drain(0);
  // The caller's own hint, while workers are still busy with their last chunks.
  if (!shares_[0].warm.empty()) {
    warm(shares_[0].warm, [&] { return pending_workers_.load(std::memory_order_relaxed) == 0; });
  }
  // Every worker takes part (possibly finding no chunk left) and checks out.
  for (uint32_t spins = 0; pending_workers_.load(std::memory_order_acquire) != 0; ++spins)
    backoff(spins);
  job_ = nullptr;
  for (int i = 0; i < n_threads_; ++i) shares_[static_cast<size_t>(i)].warm = {};
}

}  // namespace bitnet
