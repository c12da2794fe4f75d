// The ggml tensor types this project knows, with their block geometry.
//
// Type id 36 is ambiguous: bitnet.cpp's fork assigns it to I2_S (2-bit ternary, one f32 scale
// per tensor, n/4 + 32 bytes), while upstream ggml used 36 for IQ4_NL_4_4 (an interleaved
// layout since removed from GGUF files). Upstream cannot load id 36 at all today, so a file
// carrying it was written by bitnet.cpp. The reader still checks that: see
// `resolve_type_36` in reader.cpp for the rule (architecture, then tensor sizes).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace bitnet::gguf {

enum class TensorType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  I2_S = 36,  // bitnet.cpp's id; see the note above
};

struct TensorTypeInfo {
  TensorType type;
  std::string_view name;
  uint32_t block_size;  // elements per block (1 for plain types)
  uint32_t type_size;   // bytes per block
  // I2_S is not blocked: it is n/4 bytes of 2-bit codes then a 32-byte tail (f32 scale +
  // padding) per tensor. block_size/type_size then describe the code part only (4 per byte).
  uint32_t tensor_tail_bytes;
};

// nullptr for an id this project does not know.
const TensorTypeInfo* tensor_type_info(uint32_t id);
inline const TensorTypeInfo* tensor_type_info(TensorType t) {
  return tensor_type_info(static_cast<uint32_t>(t));
}
std::string_view tensor_type_name(TensorType t);
// Case-insensitive lookup by name ("f16", "TQ2_0", "i2_s").
std::optional<TensorType> tensor_type_from_name(std::string_view name);

// Bytes taken by a tensor of `n_elements` whose first dimension is `row_length`, or nullopt if
// the shape does not fit the type's blocks (row_length % block_size != 0) or overflows.
std::optional<uint64_t> tensor_nbytes(TensorType t, uint64_t n_elements, uint64_t row_length);

// Bytes of one row of `row_length` elements (nullopt when not a whole number of blocks).
// For I2_S this is the code bytes only (the tail belongs to the tensor, not to a row).
std::optional<uint64_t> row_nbytes(TensorType t, uint64_t row_length);

// general.file_type (llama.cpp's llama_ftype) of a file whose BitLinear projections have this
// type: 0 F32, 1 F16, 36 TQ1_0, 37 TQ2_0, 40 I2_S (what the official 2B4T file carries).
uint32_t llama_ftype_for(TensorType t);

constexpr uint32_t kI2sTailBytes = 32;  // f32 scale + 28 bytes of padding

}  // namespace bitnet::gguf
