// Scalar reference kernels: the specification the SIMD variants are tested against. They decode
// weights block by block with the format code in src/quant (which pins the layouts) and
// accumulate exactly as the reference engines define the result.
#include <algorithm>
#include <cstring>

#include "core/fp16.h"
#include "kernels/matmul.h"
#include "quant/i2s.h"
#include "quant/tq1_0.h"
#include "quant/tq2_0.h"

namespace bitnet::kernels {

using gguf::TensorType;

void row_to_float(const WeightMatrix& w, int64_t r, float* out) {
  const uint8_t* p = w.row(r);
  if (w.type == TensorType::F32) {
    std::memcpy(out, p, static_cast<size_t>(w.k) * 4);
    return;
  }
  for (int64_t i = 0; i < w.k; ++i) {
    uint16_t h;
    std::memcpy(&h, p + 2 * i, 2);
    out[i] = w.type == TensorType::F16 ? fp16_to_fp32(h) : bf16_to_fp32(h);
  }
}

int64_t WeightMatrix::row_bytes() const {
  switch (type) {
    case TensorType::I2_S:
      return k / 4;
    case TensorType::TQ2_0:
      return k / kQ8KBlock * static_cast<int64_t>(quant::kTq2BlockBytes);
    case TensorType::TQ1_0:
      return k / kQ8KBlock * static_cast<int64_t>(quant::kTq1BlockBytes);
    case TensorType::Q8_0:  // the optional head (q8_0_head.h): 32 codes + an f16 scale per block
      return k / 32 * 34;
    case TensorType::F16:
    case TensorType::BF16:
      return 2 * k;
    case TensorType::F32:
      return 4 * k;
    default:
      return 0;
  }
}

bool is_ternary(TensorType t) {
  return t == TensorType::I2_S || t == TensorType::TQ2_0 || t == TensorType::TQ1_0;
}

ActQuant act_quant_for(TensorType t) {
  return t == TensorType::I2_S ? ActQuant::kPerTokenInt8 : ActQuant::kQ8K;
}

namespace {

float i2s_row(const WeightMatrix& w, int64_t o, const int8_t* q, float s) {
  const uint8_t* codes = w.row(o);
  int8_t vals[quant::kI2sBlockElems];
  int32_t acc = 0;
  for (int64_t b = 0; b < w.k / static_cast<int64_t>(quant::kI2sBlockElems); ++b) {
    quant::i2s_unpack_block(codes + b * quant::kI2sBlockBytes, vals);
    const int8_t* qb = q + b * quant::kI2sBlockElems;
    for (size_t i = 0; i < quant::kI2sBlockElems; ++i) acc += vals[i] * qb[i];
  }
  return (static_cast<float>(acc) / s) * w.tensor_scale;
}

float tq_row(const WeightMatrix& w, int64_t o, const int8_t* q, const float* d_act) {
  const uint8_t* blocks = w.row(o);
  const bool tq2 = w.type == TensorType::TQ2_0;
  const size_t block_bytes = tq2 ? quant::kTq2BlockBytes : quant::kTq1BlockBytes;
  int8_t vals[kQ8KBlock];
  float sum = 0.0f;
  for (int64_t b = 0; b < w.k / kQ8KBlock; ++b) {
    const uint8_t* blk = blocks + b * block_bytes;
    const uint16_t dw =
        tq2 ? quant::tq2_0_unpack_block(blk, vals) : quant::tq1_0_unpack_block(blk, vals);
    const int8_t* qb = q + b * kQ8KBlock;
    int32_t acc = 0;
    for (int64_t i = 0; i < kQ8KBlock; ++i) acc += vals[i] * qb[i];
    sum += static_cast<float>(acc) * (d_act[b] * fp16_to_fp32(dw));
  }
  return sum;
}

}  // namespace

void matmul_ternary_ref(const WeightMatrix& w, const QuantizedActivations& a, float* y,
                        int64_t o_begin, int64_t o_end) {
  const int64_t nb = w.k / kQ8KBlock;
  for (int64_t r = 0; r < a.rows; ++r) {
    const int8_t* q = a.row(r);
    for (int64_t o = o_begin; o < o_end; ++o) {
      y[r * w.n_out + o] = w.type == TensorType::I2_S ? i2s_row(w, o, q, a.scales[r])
                                                      : tq_row(w, o, q, a.scales.data() + r * nb);
    }
  }
}

// Float weights (F16 / BF16 / F32): each product in float, summed as w.float_sums says
// (matmul.h). kDouble is ggml's portable vec_dot_f16 / vec_dot_f32; with F16 weights and
// F16-rounded inputs the products are exact, so any summation order in double gives the same
// float in all but vanishingly rare cases.
void matmul_float_ref(const WeightMatrix& w, const float* x, int64_t rows, float* y,
                      int64_t o_begin, int64_t o_end) {
  auto weight = [&](const uint8_t* wr, int64_t i) {
    if (w.type == TensorType::F32) {
      float v;
      std::memcpy(&v, wr + 4 * i, 4);
      return v;
    }
    uint16_t h;
    std::memcpy(&h, wr + 2 * i, 2);
    return w.type == TensorType::F16 ? fp16_to_fp32(h) : bf16_to_fp32(h);
  };
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * w.k;
    for (int64_t o = o_begin; o < o_end; ++o) {
      const uint8_t* wr = w.row(o);
      double sum = 0.0;
      if (w.float_sums == FloatSums::kDouble) {
        for (int64_t i = 0; i < w.k; ++i) sum += static_cast<double>(weight(wr, i) * xr[i]);
      } else {
        for (int64_t b = 0; b < w.k; b += kFloatSumBlock) {
          float s = 0.0f;
          for (int64_t i = b; i < std::min(w.k, b + kFloatSumBlock); ++i)
            s += weight(wr, i) * xr[i];
          sum += static_cast<double>(s);
        }
      }
      y[r * w.n_out + o] = static_cast<float>(sum);
    }
  }
}

}  // namespace bitnet::kernels
