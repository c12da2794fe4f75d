// Encodes a ternary weight matrix with one scale into any weight format a model file can use
// (synthetic models, converted checkpoints); the stored weights are exactly ternary * scale.
#pragma once

#include <cstdint>
#include <vector>

#include "core/result.h"
#include "gguf/tensor_types.h"

namespace bitnet::quant {

// `ternary` holds rows x k values (row-major, k contiguous), each in {-1, 0, 1}.
Status encode_ternary(gguf::TensorType type, const int8_t* ternary, uint64_t k, uint64_t rows,
                      float scale, std::vector<uint8_t>& out);

}  // namespace bitnet::quant
