#include "gguf/tensor_types.h"

#include <array>
#include <cctype>

namespace bitnet::gguf {
namespace {

// Block geometry from ggml-common.h of the pinned llama.cpp (and bitnet.cpp for I2_S).
constexpr std::array<TensorTypeInfo, 23> kTypes = {{
    {TensorType::F32, "F32", 1, 4, 0},
    {TensorType::F16, "F16", 1, 2, 0},
    {TensorType::Q4_0, "Q4_0", 32, 18, 0},
    {TensorType::Q4_1, "Q4_1", 32, 20, 0},
    {TensorType::Q5_0, "Q5_0", 32, 22, 0},
    {TensorType::Q5_1, "Q5_1", 32, 24, 0},
    {TensorType::Q8_0, "Q8_0", 32, 34, 0},
    {TensorType::Q8_1, "Q8_1", 32, 36, 0},
    {TensorType::Q2_K, "Q2_K", 256, 84, 0},
    {TensorType::Q3_K, "Q3_K", 256, 110, 0},
    {TensorType::Q4_K, "Q4_K", 256, 144, 0},
    {TensorType::Q5_K, "Q5_K", 256, 176, 0},
    {TensorType::Q6_K, "Q6_K", 256, 210, 0},
    {TensorType::Q8_K, "Q8_K", 256, 292, 0},  // f32 d + 256 int8 + 16 int16 bsums
    {TensorType::I8, "I8", 1, 1, 0},
    {TensorType::I16, "I16", 1, 2, 0},
    {TensorType::I32, "I32", 1, 4, 0},
    {TensorType::I64, "I64", 1, 8, 0},
    {TensorType::F64, "F64", 1, 8, 0},
    {TensorType::BF16, "BF16", 1, 2, 0},
    {TensorType::TQ1_0, "TQ1_0", 256, 54, 0},  // 48 bytes base-3 x5 + 4 bytes x4 + f16 d
    {TensorType::TQ2_0, "TQ2_0", 256, 66, 0},  // 64 bytes 2-bit codes + f16 d
    {TensorType::I2_S, "I2_S", 4, 1, kI2sTailBytes},
}};

}  // namespace

const TensorTypeInfo* tensor_type_info(uint32_t id) {
  for (const auto& t : kTypes) {
    if (static_cast<uint32_t>(t.type) == id) return &t;
  }
  return nullptr;
}

std::string_view tensor_type_name(TensorType t) {
  const TensorTypeInfo* info = tensor_type_info(t);
  return info ? info->name : std::string_view("?");
}

std::optional<TensorType> tensor_type_from_name(std::string_view name) {
  for (const auto& t : kTypes) {
    if (t.name.size() != name.size()) continue;
    bool eq = true;
    for (size_t i = 0; i < name.size() && eq; ++i) {
      eq = std::toupper(static_cast<unsigned char>(name[i])) == t.name[i];
    }
    if (eq) return t.type;
  }
  return std::nullopt;
}

std::optional<uint64_t> row_nbytes(TensorType t, uint64_t row_length) {
  const TensorTypeInfo* info = tensor_type_info(t);
  if (info == nullptr || row_length % info->block_size != 0) return std::nullopt;
  const uint64_t blocks = row_length / info->block_size;
  if (blocks > UINT64_MAX / info->type_size) return std::nullopt;
  return blocks * info->type_size;
}

std::optional<uint64_t> tensor_nbytes(TensorType t, uint64_t n_elements, uint64_t row_length) {
  const TensorTypeInfo* info = tensor_type_info(t);
  if (info == nullptr || row_length == 0 || n_elements % row_length != 0) return std::nullopt;
  auto row = row_nbytes(t, row_length);
  if (!row) return std::nullopt;
  const uint64_t rows = n_elements / row_length;
  if (rows != 0 && *row > (UINT64_MAX - info->tensor_tail_bytes) / rows) return std::nullopt;
  return *row * rows + info->tensor_tail_bytes;
}

uint32_t llama_ftype_for(TensorType t) {
  switch (t) {
    case TensorType::F32:
      return 0;
    case TensorType::F16:
      return 1;
    case TensorType::TQ1_0:
      return 36;
    case TensorType::TQ2_0:
      return 37;
    case TensorType::I2_S:
      return 40;  // what the official 2B4T file carries
    default:
      return 0;
  }
}

}  // namespace bitnet::gguf
