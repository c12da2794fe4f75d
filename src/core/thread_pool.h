// A fixed pool of worker threads for the kernels. Work is cut into chunks whose boundaries
// depend only on the problem size, never on the number of threads, and every output element is
// computed by exactly one chunk with the same arithmetic: results are bit-identical for any
// thread count.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace bitnet {

class ThreadPool {
 public:
  // n_threads includes the calling thread (1 = no workers).
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(chunk) for chunk in [0, n_chunks), spread over the threads; returns when all are
  // done. Not reentrant (a kernel must not call it from inside fn).
  void run(int64_t n_chunks, const std::function<void(int64_t chunk)>& fn);

 private:
  void worker_loop();
  void drain();

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable start_cv_, done_cv_;
  const std::function<void(int64_t)>* job_ = nullptr;
  int64_t n_chunks_ = 0;
  std::atomic<int64_t> next_chunk_{0};
  uint64_t generation_ = 0;
  int busy_workers_ = 0;
  bool stop_ = false;
};

}  // namespace bitnet
