// NumPy .npy files (format 1.0, little-endian float32, C order), for logits dumps and traces.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/result.h"

namespace bitnet {

Status write_npy_f32(const std::string& path, std::span<const float> data,
                     std::span<const int64_t> shape);

struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> data;
};
Result<NpyArray> read_npy_f32(const std::string& path);

}  // namespace bitnet
