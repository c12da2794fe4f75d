// Measured memory read bandwidth: the roofline that token generation (memory-bound: every token
// reads every weight) is compared with.
#pragma once

#include <cstddef>
#include <cstdint>

namespace bitnet {

class ThreadPool;

// The distances (bytes) at which the weight kernels' decode streams prefetch: the line this far
// ahead into L1 (near) and into L2 (far). The roofline reader below prefetches the same way, so
// the bandwidth it measures is what the kernels' way of reading can reach.
inline constexpr int64_t kNearPrefetchBytes = 2048, kFarPrefetchBytes = 8192;

// Reads n bytes at p with the widest vector loads this CPU has (AVX-512, AVX2, else 64-bit), in a
// few streams side by side and, with `prefetch`, software prefetches ahead as the weight
// kernels' decode streams do. Returns the XOR of the span's 8-byte words (the last zero-padded), so
// the reads cannot be optimised away and a reader that skips bytes is caught.
uint64_t read_bytes(const uint8_t* p, size_t n, bool prefetch);

// Reads a buffer of `bytes` (default 1 GiB: far larger than any cache) with the pool's threads,
// `reps` times, and returns the best rate in GB/s (1e9 bytes per second).
double measure_read_bandwidth(ThreadPool& pool, size_t bytes = size_t{1} << 30, int reps = 5);

// The same with `threads` threads, measured in a forked child process so that the 1 GiB buffer
// does not count in this process's peak RSS. Returns 0 if the child could not run.
double measure_read_bandwidth_isolated(int threads);

}  // namespace bitnet
