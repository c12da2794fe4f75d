#include "quant/tq_common.h"

#include <bit>
#include <cmath>
#include <vector>

#include "core/fp16.h"
#include "quant/ternary.h"

namespace bitnet::quant {

Status check_tq_count(size_t n, const char* type) {
  if (n % kTqBlockElems != 0) {
    return make_error("%s: element count %zu is not a multiple of %zu", type, n, kTqBlockElems);
  }
  return {};
}

uint16_t ternarize_block_absmax(const float* x, int8_t* t) {
  float amax = 0.0f;
  for (size_t i = 0; i < kTqBlockElems; ++i) amax = std::fmax(amax, std::fabs(x[i]));
  const float inv = amax != 0.0f ? 1.0f / amax : 0.0f;
  for (size_t i = 0; i < kTqBlockElems; ++i) {
    const float v = x[i] * inv;
    // For finite x, |v| <= amax * RN(1/amax) < 1.5, so rounding lands in {-1, 0, 1}. v is
    // infinite or NaN only when amax is subnormal and 1/amax overflows; ggml's lroundf then
    // overflows to LONG_MIN on x86, which its `+ 1` wraps to the code of 0. Match that.
    t[i] = std::isfinite(v) ? static_cast<int8_t>(std::round(v)) : 0;
  }
  return fp32_to_fp16(amax);
}

Result<uint16_t> exact_fp16(float scale) {
  const uint16_t h = fp32_to_fp16(scale);
  if (std::bit_cast<uint32_t>(fp16_to_fp32(h)) != std::bit_cast<uint32_t>(scale)) {
    return make_error("scale %.9g is not exactly representable in fp16 (nearest: %.9g)", scale,
                      fp16_to_fp32(h));
  }
  return h;
}

// ---- Tensor-level loops shared by TQ1_0 and TQ2_0 -------------------------------------------

Status tq_quantize(const TqFormat& f, const float* x, size_t n, uint8_t* out) {
  BITNET_TRY(check_tq_count(n, f.name));
  BITNET_TRY(validate_finite(x, n, f.name));
  int8_t t[kTqBlockElems];
  for (size_t b = 0; b < n / kTqBlockElems; ++b) {
    const uint16_t d = ternarize_block_absmax(x + b * kTqBlockElems, t);
    f.pack_block(t, d, out + b * f.block_bytes);
  }
  return {};
}

Status tq_pack(const TqFormat& f, const int8_t* ternary, size_t n, const float* block_scales,
               uint8_t* out) {
  BITNET_TRY(check_tq_count(n, f.name));
  BITNET_TRY(validate_ternary(ternary, n));
  const size_t blocks = n / kTqBlockElems;
  // Check every scale before writing anything, so a failure leaves `out` untouched.
  std::vector<uint16_t> d(blocks);
  for (size_t b = 0; b < blocks; ++b) {
    const Result<uint16_t> h = exact_fp16(block_scales[b]);
    if (!h.ok()) return make_error("%s: block %zu: %s", f.name, b, h.message().c_str());
    d[b] = *h;
  }
  for (size_t b = 0; b < blocks; ++b) {
    f.pack_block(ternary + b * kTqBlockElems, d[b], out + b * f.block_bytes);
  }
  return {};
}

Status tq_unpack(const TqFormat& f, const uint8_t* bytes, size_t n, int8_t* out) {
  BITNET_TRY(check_tq_count(n, f.name));
  for (size_t b = 0; b < n / kTqBlockElems; ++b) {
    f.unpack_block(bytes + b * f.block_bytes, out + b * kTqBlockElems);
  }
  return {};
}

Status tq_dequantize(const TqFormat& f, const uint8_t* bytes, size_t n, float* out) {
  BITNET_TRY(check_tq_count(n, f.name));
  int8_t t[kTqBlockElems];
  for (size_t b = 0; b < n / kTqBlockElems; ++b) {
    const float d = fp16_to_fp32(f.unpack_block(bytes + b * f.block_bytes, t));
    for (size_t i = 0; i < kTqBlockElems; ++i) {
      out[b * kTqBlockElems + i] = static_cast<float>(t[i]) * d;
    }
  }
  return {};
}

Status tq_validate(const TqFormat& f, const uint8_t* bytes, size_t n) {
  BITNET_TRY(check_tq_count(n, f.name));
  int8_t t[kTqBlockElems];
  for (size_t b = 0; b < n / kTqBlockElems; ++b) {
    const float d = fp16_to_fp32(f.unpack_block(bytes + b * f.block_bytes, t));
    for (size_t i = 0; i < kTqBlockElems; ++i) {
      if (t[i] > 1) {
        return make_error("%s: element %zu has the unused code 3", f.name, b * kTqBlockElems + i);
      }
    }
    // ggml's own ggml_validate_row_data rejects these too.
    if (!std::isfinite(d)) return make_error("%s: block %zu scale is %g", f.name, b, d);
  }
  return {};
}

}  // namespace bitnet::quant
