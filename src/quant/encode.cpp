#include "quant/encode.h"

#include <cstring>

#include "core/fp16.h"
#include "quant/i2s.h"
#include "quant/tq1_0.h"
#include "quant/tq2_0.h"

namespace bitnet::quant {

Status encode_ternary(gguf::TensorType type, const int8_t* ternary, uint64_t k, uint64_t rows,
                      float scale, std::vector<uint8_t>& out) {
  const size_t n = static_cast<size_t>(k * rows);
  auto nbytes = gguf::tensor_nbytes(type, n, k);
  if (!nbytes) {
    return make_error("cannot store a [%llu, %llu] tensor as %s",
                      static_cast<unsigned long long>(k), static_cast<unsigned long long>(rows),
                      std::string(gguf::tensor_type_name(type)).c_str());
  }
  out.assign(static_cast<size_t>(*nbytes), 0);
  switch (type) {
    case gguf::TensorType::I2_S:
      return quant::pack_i2s(ternary, n, scale, out.data());
    case gguf::TensorType::TQ2_0:
    case gguf::TensorType::TQ1_0: {
      // One scale per 256-block, all equal to the tensor's scale (exact in fp16: a power of 2).
      std::vector<float> scales(n / quant::kTqBlockElems, scale);
      return type == gguf::TensorType::TQ2_0
                 ? quant::pack_tq2_0(ternary, n, scales.data(), out.data())
                 : quant::pack_tq1_0(ternary, n, scales.data(), out.data());
    }
    case gguf::TensorType::F16:
      for (size_t i = 0; i < n; ++i) {
        const uint16_t h = fp32_to_fp16(static_cast<float>(ternary[i]) * scale);
        std::memcpy(out.data() + 2 * i, &h, 2);
      }
      return {};
    case gguf::TensorType::F32:
      for (size_t i = 0; i < n; ++i) {
        const float x = static_cast<float>(ternary[i]) * scale;
        std::memcpy(out.data() + 4 * i, &x, 4);
      }
      return {};
    default:
      return make_error(
          "ternary weights cannot be stored as %s (use i2_s, tq2_0, tq1_0, f16 or f32)",
          std::string(gguf::tensor_type_name(type)).c_str());
  }
}

}  // namespace bitnet::quant
