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

// How a BitLinear input was quantized (FACTS.md sections 3 and 4).
enum class QuantGrouping {
  kPerToken,  // bitnet.cpp (I2_S): one scale s per row, value = code / s
  kQ8K,       // llama.cpp (TQ*): one scale d per 256 values, value = code * d
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
  virtual void record_quantized(const Point& /*p*/, std::span<const int8_t> /*codes*/,
                                std::span<const float> /*scales*/) {}
  // The same, saying how the codes map back to values (what the forward pass calls); sinks
  // that do not care keep the default, which forwards to record_quantized.
  virtual void record_codes(const Point& p, QuantGrouping grouping, std::span<const int8_t> codes,
                            std::span<const float> scales) {
    (void)grouping;
    record_quantized(p, codes, scales);
  }
};

}  // namespace bitnet::trace
