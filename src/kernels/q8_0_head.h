// The optional lower-precision LM head (`--head-type q8_0`): the tied F16 token embedding
// quantized at load with ggml's Q8_0 scheme, which halves the bytes the head reads per token
// (2B4T: 657 MB -> 349 MB, more than half of everything a decode step reads). It changes the
// logits, so it is never the default; `bitnet crossval --head-type q8_0` reports its cost as the
// KL divergence from the reference engine's F16 head (whose logits ours match exactly).
//
// Numerics (ggml's quantize_row_q8_0_ref and vec_dot_q8_0_q8_0):
//   weights and activations, per 32-element block: d = max|v| / 127, q_i = roundf(v_i * id)
//     with id = d ? 1 / d : 0, and d stored as f16;
//   y = sum over blocks in order of (float)(sum_i qw_i qx_i) * (d_w * d_x), one float sum.
//
// Layout (made at load; there is no file form), tiles of 16 rows as in packed.h:
//   per tile t and block b, 512 bytes: vector v (0..7), lane l, byte e holds the code of row
//   16t + l, element 32b + 4v + e, plus 128 (so VPDPBUSD can take it as the unsigned operand;
//   the kernels subtract 128 * sum(qx) per block);
//   then, after all codes, per tile and block: 16 f16 scales in row order.
// The scalar reference reads this layout too and is the specification of the AVX-512 kernel.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/activations.h"
#include "kernels/dispatch.h"
#include "kernels/matmul.h"

namespace bitnet {
class ThreadPool;
}

namespace bitnet::kernels {

inline constexpr int64_t kQ8_0Block = 32;
inline constexpr int64_t kQ8_0TileBlockBytes = 512;  // 16 rows x 32 codes

inline bool q8_0_head_supported(int64_t k) { return k > 0 && k % kQ8_0Block == 0; }
size_t q8_0_head_size(int64_t k, int64_t n_out);
// Quantizes rows of tiles [tile_begin, tile_end) of `src` (an F16, BF16 or F32 matrix in its file
// layout) into the layout above at dst (q8_0_head_size bytes).
void q8_0_head_pack_tiles(const WeightMatrix& src, uint8_t* dst, int64_t tile_begin,
                          int64_t tile_end);
// A WeightMatrix of type Q8_0 whose `packed` is that layout (data stays null).
WeightMatrix q8_0_head_view(const uint8_t* packed, int64_t k, int64_t n_out);

inline const uint8_t* q8_0_codes(const WeightMatrix& w, int64_t tile) {
  return w.packed + tile * (w.k / kQ8_0Block) * kQ8_0TileBlockBytes;
}
inline const uint16_t* q8_0_scales(const WeightMatrix& w, int64_t tile) {
  const int64_t nb = w.k / kQ8_0Block, tiles = (w.n_out + 15) / 16;
  return reinterpret_cast<const uint16_t*>(w.packed + tiles * nb * kQ8_0TileBlockBytes) +
         tile * nb * 16;
}

// Activations per 32-block (kind kQ8_0: q codes, scales = the f16 d of each block as float).
void quantize_q8_0_ref(const float* x, int64_t rows, int64_t k, QuantizedActivations* out);
// Output row o of activation row r (the specification; also what --verify-kernels recomputes).
float q8_0_head_row_ref(const WeightMatrix& w, int64_t o, const QuantizedActivations& a, int64_t r);
void matmul_q8_0_head_ref(const WeightMatrix& w, const QuantizedActivations& a, float* y,
                          int64_t o_begin, int64_t o_end);
// Dispatched (k's variant) and threaded: quantizes x, then every output row.
void matmul_q8_0_head(const Kernels& k, const WeightMatrix& w, const float* x, int64_t rows,
                      float* y, ThreadPool* pool, QuantizedActivations* scratch);

}  // namespace bitnet::kernels
