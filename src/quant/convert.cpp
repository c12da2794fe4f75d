#include "quant/convert.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "core/fp16.h"
#include "quant/i2s.h"
#include "quant/tq1_0.h"
#include "quant/tq2_0.h"

namespace bitnet::quant {
namespace {

// Fails on the first value 2 (decoded from the unused code 3); values[0] is element `first`.
Status check_no_code3(const int8_t* values, size_t n, size_t first, const char* from,
                      const char* to) {
  const int8_t* bad = std::find(values, values + n, int8_t{2});
  if (bad == values + n) return {};
  return make_error("%s -> %s: element %zu has the unused code 3", from, to,
                    first + static_cast<size_t>(bad - values));
}

Status i2s_to_tq(const TqFormat& to, const uint8_t* i2s, size_t n, uint8_t* out) {
  BITNET_TRY(check_tq_count(n, to.name));
  std::vector<int8_t> values(n);
  BITNET_TRY(unpack_i2s(i2s, n, values.data()));
  BITNET_TRY(check_no_code3(values.data(), n, 0, "I2_S", to.name));
  const float scale = i2s_scale(i2s, n);
  // tq_pack checks this too; checking here gives the message that names the conversion.
  const Result<uint16_t> in_fp16 = exact_fp16(scale);
  if (!in_fp16.ok()) {
    return make_error("I2_S -> %s is not lossless: %s", to.name, in_fp16.message().c_str());
  }
  const std::vector<float> scales(n / kTqBlockElems, scale);
  return tq_pack(to, values.data(), n, scales.data(), out);
}

Status tq_to_i2s(const TqFormat& from, const uint8_t* tq, size_t n, uint8_t* out) {
  BITNET_TRY(check_tq_count(n, from.name));
  std::vector<int8_t> values(n);
  BITNET_TRY(tq_unpack(from, tq, n, values.data()));
  BITNET_TRY(check_no_code3(values.data(), n, 0, from.name, "I2_S"));
  // The one scale every block with a non-zero value must share. An all-zero block with a
  // finite scale is free: it dequantizes to zeros under any finite tensor scale.
  std::optional<size_t> owner;       // first block that is not free
  std::optional<size_t> first_free;  // first block that is
  for (size_t b = 0; b < n / kTqBlockElems; ++b) {
    const int8_t* v = values.data() + b * kTqBlockElems;
    const uint16_t d = tq_block_d(from, tq, b);
    const bool all_zero = std::all_of(v, v + kTqBlockElems, [](int8_t x) { return x == 0; });
    if (all_zero && std::isfinite(fp16_to_fp32(d))) {
      if (!first_free) first_free = b;
    } else if (!owner) {
      owner = b;
    } else if (d != tq_block_d(from, tq, *owner)) {
      return make_error(
          "%s -> I2_S is not lossless: block %zu has scale %.9g but block %zu has %.9g "
          "(I2_S has one scale per tensor)",
          from.name, b, fp16_to_fp32(d), *owner, fp16_to_fp32(tq_block_d(from, tq, *owner)));
    }
  }
  // With no block owning a scale, keep the first block's (any finite one gives the same zeros).
  const float scale = n == 0 ? 0.0f : fp16_to_fp32(tq_block_d(from, tq, owner.value_or(0)));
  if (first_free && !std::isfinite(scale)) {
    return make_error(
        "%s -> I2_S is not lossless: block %zu is all zero with a finite scale, but the tensor "
        "scale would be %g, which turns its zeros into NaN",
        from.name, *first_free, scale);
  }
  return pack_i2s(values.data(), n, scale, out);
}

// Block by block, copying the fp16 scale bits so that even NaN scales survive unchanged.
Status tq_to_tq(const TqFormat& from, const TqFormat& to, const uint8_t* in, size_t n,
                uint8_t* out) {
  BITNET_TRY(check_tq_count(n, from.name));
  int8_t values[kTqBlockElems];
  for (size_t b = 0; b < n / kTqBlockElems; ++b) {
    const uint16_t d = from.unpack_block(in + b * from.block_bytes, values);
    BITNET_TRY(check_no_code3(values, kTqBlockElems, b * kTqBlockElems, from.name, to.name));
    to.pack_block(values, d, out + b * to.block_bytes);
  }
  return {};
}

}  // namespace

Status i2s_to_tq2_0(const uint8_t* i2s, size_t n, uint8_t* out) {
  return i2s_to_tq(kTq2Format, i2s, n, out);
}
Status i2s_to_tq1_0(const uint8_t* i2s, size_t n, uint8_t* out) {
  return i2s_to_tq(kTq1Format, i2s, n, out);
}
Status tq2_0_to_i2s(const uint8_t* tq2, size_t n, uint8_t* out) {
  return tq_to_i2s(kTq2Format, tq2, n, out);
}
Status tq1_0_to_i2s(const uint8_t* tq1, size_t n, uint8_t* out) {
  return tq_to_i2s(kTq1Format, tq1, n, out);
}
Status tq2_0_to_tq1_0(const uint8_t* tq2, size_t n, uint8_t* out) {
  return tq_to_tq(kTq2Format, kTq1Format, tq2, n, out);
}
Status tq1_0_to_tq2_0(const uint8_t* tq1, size_t n, uint8_t* out) {
  return tq_to_tq(kTq1Format, kTq2Format, tq1, n, out);
}

}  // namespace bitnet::quant
