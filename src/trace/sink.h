// The hook the forward pass calls at every trace point. With tracing compiled out
// (BITNET_TRACE=OFF) kTraceCompiled is false and every call site disappears; compiled in but
// switched off, a call site costs one null-pointer test.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "trace/ops.h"

namespace bitnet::trace {

#ifdef BITNET_TRACE_ENABLED
inline constexpr bool kTraceCompiled = true;
#else
inline constexpr bool kTraceCompiled = false;
#endif

struct Point {
  int position;  // token position in the sequence
  int layer;     // block index, -1 for global points
  Op op;
};

class Sink {
 public:
  virtual ~Sink() = default;
  // Whether the point is selected (filters); the forward pass skips work for unselected points.
  virtual bool wants(const Point& p) const = 0;
  // f32 values of one point, with their logical shape.
  virtual void record(const Point& p, std::span<const float> values,
                      std::span<const int64_t> shape) = 0;
  // The int8 codes and scale(s) a BitLinear input was quantized to (op = the norm feeding it).
  virtual void record_quantized(const Point& p, std::span<const int8_t> codes,
                                std::span<const float> scales) = 0;
};

}  // namespace bitnet::trace
