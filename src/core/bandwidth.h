// Measured memory read bandwidth: the roofline that token generation (memory-bound: every token
// reads every weight) is compared with.
#pragma once

#include <cstddef>

namespace bitnet {

class ThreadPool;

// Reads a buffer of `bytes` (default 1 GiB: far larger than any cache) with the pool's threads,
// `reps` times, and returns the best rate in GB/s (1e9 bytes per second).
double measure_read_bandwidth(ThreadPool& pool, size_t bytes = size_t{1} << 30, int reps = 5);

// The same with `threads` threads, measured in a forked child process so that the 1 GiB buffer
// does not count in this process's peak RSS. Returns 0 if the child could not run.
double measure_read_bandwidth_isolated(int threads);

}  // namespace bitnet
