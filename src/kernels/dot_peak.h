// The int8 dot-product peak of a kernel variant on this machine, measured: every thread of a
// pool runs the variant's widest int8 multiply-add instruction flat out (16 independent
// accumulators in registers, no memory operands, so neither latency nor loads limit it) for a
// fixed time, and the multiply-adds per second of all threads are added up. Prompt processing is
// compute-bound, and its speed over this peak is the efficiency `bitnet bench` reports; measured
// rather than taken from a datasheet because clocks under AVX-512 load, SMT and the host's
// sharing of the cores all differ from the nominal figure.
#pragma once

#include <string_view>

#include "core/thread_pool.h"
#include "kernels/dispatch.h"

namespace bitnet::kernels {

struct DotPeak {
  double macs_per_s = 0;         // multiply-adds per second, all threads together (0: none)
  std::string_view instruction;  // what was measured, e.g. "VPDPBUSD zmm"
  int threads = 0;               // threads whose rates were added
};

// Runs for about `seconds` on every thread of `pool` (the best of three rounds). The scalar variant
// has no such instruction: macs_per_s = 0.
DotPeak measure_int8_dot_peak(const Kernels& k, ThreadPool* pool, double seconds = 0.05);

}  // namespace bitnet::kernels
