// A fixed pool of worker threads for the kernels. Work is cut into chunks whose boundaries
// depend only on the problem size, never on the number of threads, and every output element is
// computed by exactly one chunk with the same arithmetic: results are bit-identical for any
// thread count.
//
// Latency: a decode step makes hundreds of short parallel calls (a GEMV is tens of
// microseconds), so waking sleeping threads through the OS on each would cost a noticeable
// share. After a job, workers spin (with a CPU pause) for `spin_micros` before they block on a
// condition variable; the caller spins while it waits for the workers to finish.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

namespace bitnet {

class ThreadPool {
 public:
  static constexpr int kDefaultSpinMicros = 1000;

  // n_threads includes the calling thread (1 = no workers).
  explicit ThreadPool(int n_threads, int spin_micros = kDefaultSpinMicros);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(chunk) for chunk in [0, n_chunks), spread over the threads (the caller takes part);
  // returns when all are done. Not reentrant (fn must not call run), one caller at a time.
  // Thread i first takes the chunks of the i-th contiguous share, in order, then helps with the
  // others' shares: the kernels' chunks are consecutive weight rows, so each thread reads one
  // long sequential stream (the hardware prefetchers keep running across chunk boundaries)
  // instead of hopping between chunks interleaved with the other threads'.
  void run(int64_t n_chunks, const std::function<void(int64_t chunk)>& fn);

  // The first chunk of thread i's share in a job of n_chunks (as run() splits them).
  static int64_t share_begin(int64_t n_chunks, int i, int n_threads) {
    return n_chunks * i / n_threads;
  }

  // Memory thread i reads ahead into its caches once it runs out of chunks of the next job
  // (run() call): the leading weights of its share of the matrix that comes next. A worker
  // reads until the job after that starts, while the caller does the serial work in between;
  // the caller (i = 0) only while workers are still busy with the job. Either way memory would
  // otherwise sit idle for that core. Only a hint: it changes no result. Set between jobs, by
  // the caller; each run() that starts workers consumes the hints.
  void warm_after_next_job(int i, std::span<const uint8_t> bytes) {
    if (i >= 0 && i < n_threads_) shares_[static_cast<size_t>(i)].warm = bytes;
  }

 private:
  void worker_loop(int index);
  void drain(int index);
  // Prefetches `bytes` into this core's caches, 4 KiB at a time until stop() says to stop.
  template <class Stop>
  void warm(std::span<const uint8_t> bytes, const Stop& stop);
  // Spins until generation_ != seen or the spin time runs out; returns the generation seen.
  uint32_t wait_for_job(uint32_t seen);

  int n_threads_;
  int spin_micros_;
  std::vector<std::thread> workers_;

  // The current job. Written by run() before it bumps generation_ (release) and read by workers
  // after they observe the new generation (acquire).
  const std::function<void(int64_t)>* job_ = nullptr;
  int64_t n_chunks_ = 0;
  // Per thread: the next chunk of its share and the share's end (one cache line each).
  struct alignas(64) Share {
    std::atomic<int64_t> next{0};
    int64_t end = 0;
    std::span<const uint8_t> warm;
  };
  std::unique_ptr<Share[]> shares_;
  alignas(64) std::atomic<uint32_t> generation_{0};
  alignas(64) std::atomic<int> pending_workers_{0};  // workers not yet done with the job
  std::atomic<bool> stop_{false};

  // Sleeping workers. run() bumps generation_ and then checks sleeping_ under mu_; a worker
  // increments sleeping_ and re-checks generation_ under mu_ before it blocks: no lost wake-up.
  std::mutex mu_;
  std::condition_variable start_cv_;
  int sleeping_ = 0;
};

}  // namespace bitnet
