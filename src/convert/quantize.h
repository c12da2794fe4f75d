// `bitnet quantize`: a GGUF file's BitLinear projections to another weight type, every other
// tensor and every metadata key copied (general.file_type updated).
//
//   between ternary types (I2_S, TQ2_0, TQ1_0): lossless, the same ternary value at every
//       position and the same dequantized weight, or an error saying why it cannot be (a TQ
//       file whose blocks have different scales has no I2_S form; an I2_S scale that fp16
//       cannot hold has no TQ form unless --scale-rounding fp16 accepts the rounding);
//   from F32 / F16 / BF16: weights that are exactly ternary times one scale are packed without
//       loss (into TQ types by llama.cpp's own quantizer, which then reproduces them); anything
//       else is an error unless ternarize_absmean is set, which quantizes as BitNet b1.58 was
//       trained (absmean beta, round-half-to-even, clamp to [-1, 1]). bitnet.cpp's quantizer
//       would silently keep only signs; we refuse instead.
//
// Tensors are converted one at a time (peak memory: the largest tensor as f32, plus its
// output), so any model size fits.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "core/result.h"
#include "gguf/tensor_types.h"

namespace bitnet::convert {

struct QuantizeOptions {
  gguf::TensorType type = gguf::TensorType::TQ2_0;  // I2_S, TQ2_0, TQ1_0, F16 or F32
  bool ternarize_absmean = false;
  bool round_scale_fp16 = false;  // I2_S -> TQ: store fp16(scale) when fp16 cannot hold it
  // Called after each tensor: (tensors done, total, bytes written so far).
  std::function<void(size_t, size_t, uint64_t)> on_progress;
};

struct QuantizeReport {
  int converted = 0;              // projections written in the new type
  int unchanged = 0;              // projections already of the type (copied)
  int copied = 0;                 // other tensors (embeddings, norms, head, scales)
  int ternarized = 0;             // projections quantized with absmean (not exactly ternary)
  double max_scale_rounding = 0;  // largest relative change of a scale rounded to fp16
};

// Whether a tensor name is one of a block's seven BitLinear weight matrices.
bool is_projection_name(const std::string& name);

Result<QuantizeReport> quantize_file(const std::string& in, const std::string& out,
                                     const QuantizeOptions& o);

}  // namespace bitnet::convert
