// Lossless conversions between the ternary formats. "Lossless" means the output holds the same
// ternary value at every position and dequantizes to the same f32 weights (bit for bit, except
// that a zero weight may change the sign of its zero when an all-zero block's scale is
// replaced). When that cannot hold, the conversion fails with a message saying why and the
// contents of `out` are unspecified. Output sizes: i2s_nbytes, tq1_0_nbytes, tq2_0_nbytes.
//
//   TQ1_0 <-> TQ2_0  always lossless for valid data (same blocks and fp16 scales; the fp16 bits
//                    are copied). TQ2_0's unused code 3 has no TQ1_0 encoding and fails.
//   I2_S -> TQ*      needs n % 256 == 0 and the tensor scale exactly representable in fp16
//                    (e.g. a power of two; bitnet.cpp's absmean betas usually are not).
//   TQ* -> I2_S      needs every block holding a non-zero value to have the same scale (I2_S
//                    has one per tensor). All-zero blocks with a finite scale do not count:
//                    llama.cpp's quantizer gives them d = 0.
// Unused codes (3 in I2_S / TQ2_0) always fail: they are not ternary data.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/result.h"

namespace bitnet::quant {

Status i2s_to_tq2_0(const uint8_t* i2s, size_t n, uint8_t* out);
Status i2s_to_tq1_0(const uint8_t* i2s, size_t n, uint8_t* out);
Status tq2_0_to_i2s(const uint8_t* tq2, size_t n, uint8_t* out);
Status tq1_0_to_i2s(const uint8_t* tq1, size_t n, uint8_t* out);
Status tq2_0_to_tq1_0(const uint8_t* tq2, size_t n, uint8_t* out);
Status tq1_0_to_tq2_0(const uint8_t* tq1, size_t n, uint8_t* out);

}  // namespace bitnet::quant
