// The kernels' thread pool: every chunk runs exactly once, for any pool size, with workers
// spinning or asleep between jobs, over many consecutive jobs.
#include "core/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

namespace bitnet {
namespace {

void expect_each_chunk_once(ThreadPool& pool, int64_t n_chunks) {
  std::vector<std::atomic<int>> hits(static_cast<size_t>(n_chunks));
  pool.run(n_chunks, [&](int64_t c) { hits[static_cast<size_t>(c)].fetch_add(1); });
  for (int64_t c = 0; c < n_chunks; ++c) ASSERT_EQ(hits[static_cast<size_t>(c)].load(), 1) << c;
}

TEST(ThreadPool, EveryChunkOnce) {
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (int64_t n : {0, 1, 2, 7, 64, 1000}) expect_each_chunk_once(pool, n);
  }
}

TEST(ThreadPool, ManyShortJobs) {
  ThreadPool pool(3);
  for (int i = 0; i < 20000; ++i) expect_each_chunk_once(pool, 1 + i % 5);
}

TEST(ThreadPool, WorkersSleepAndWake) {
  // No spinning: every job after a pause wakes sleeping workers through the condition variable.
  ThreadPool pool(2, /*spin_micros=*/0);
  for (int i = 0; i < 50; ++i) {
    expect_each_chunk_once(pool, 16);
    if (i % 10 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ThreadPool spinning(2, 100);
  for (int i = 0; i < 20; ++i) {
    expect_each_chunk_once(spinning, 16);
    std::this_thread::sleep_for(std::chrono::microseconds(i * 20));
  }
}

// A job of 2 chunks that wait for each other (up to 5 s): both threads of a 2-thread pool must
// take part.
void expect_both_threads_take_part(ThreadPool& pool) {
  std::atomic<int> arrived{0};
  pool.run(2, [&](int64_t) {
    arrived.fetch_add(1);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (arrived.load() < 2 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::yield();
  });
  EXPECT_EQ(arrived.load(), 2);
}

TEST(ThreadPool, UsesWorkers) {
  ThreadPool pool(2);
  expect_both_threads_take_part(pool);
}

// Warm hints (memory an idle worker prefetches between jobs) change nothing about which chunks
// run; a worker still takes part in the next job while a warm far longer than it is pending;
// hints for threads the pool does not have are ignored.
TEST(ThreadPool, WarmHints) {
  std::vector<uint8_t> buf(size_t{64} << 20, 1);
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (int i = 0; i < 200; ++i) {
      for (int t = -1; t <= threads; ++t)
        pool.warm_after_next_job(t, {buf.data() + (i % 7) * 4096, buf.size() - (i % 7) * 4096});
      expect_each_chunk_once(pool, 1 + i % 9);
    }
  }
  ThreadPool pool(2);
  pool.warm_after_next_job(1, {buf.data(), buf.size()});
  expect_each_chunk_once(pool, 4);
  expect_both_threads_take_part(pool);
}

}  // namespace
}  // namespace bitnet
