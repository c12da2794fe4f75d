// Activation quantization in front of every BitLinear matmul, exactly as each reference engine
// does it (see ../shared/reference/FACTS.md sections 3 and 4):
//
//  - kPerTokenInt8 (bitnet.cpp, I2_S weights): one scale per activation row (token).
//      m = max(1e-5, max_i |x_i|) (in double), s = (float)(127 / m),
//      q_i = clamp(round_half_even(x_i * s), -128, 127) with the product in float.
//    The matmul then computes y = ((float)acc / s) * weight_scale.
//  - kQ8K (llama.cpp, TQ1_0 / TQ2_0 weights): blocks of 256 values with one f32 scale each
//    (ggml's block_q8_K): amax = max |x|, with `max` the signed value reaching it;
//    iscale = -127 / max, q_i = min(127, round_half_even(iscale * x_i)), d = 1 / iscale
//    (all zero when amax == 0). Sums of 16 codes are kept too (bsums), as ggml does.
#pragma once

#include <cstdint>
#include <vector>

namespace bitnet::kernels {

enum class ActQuant {
  kPerTokenInt8,
  kQ8K,
  kQ8_0,  // the optional Q8_0 LM head only (q8_0_head.h has its own quantizer)
};

inline constexpr int64_t kQ8KBlock = 256;

struct QuantizedActivations {
  ActQuant kind = ActQuant::kPerTokenInt8;
  int64_t rows = 0;       // m: activation rows (tokens)
  int64_t k = 0;          // row length
  std::vector<int8_t> q;  // rows * k codes
  // kPerTokenInt8: rows entries, s = 127 / max (the multiplier). kQ8K: rows * k/256 entries, d.
  std::vector<float> scales;
  std::vector<int16_t> bsums;  // kQ8K only: rows * k/16 sums of 16 consecutive codes

  const int8_t* row(int64_t r) const { return q.data() + r * k; }
};

// Where rows r, r + 1, ... of a shaped QuantizedActivations go: its arrays from row r on (bsums
// null for kPerTokenInt8). Each row is quantized on its own, so rows can be filled in parts.
struct QuantizedRows {
  int8_t* q;
  float* scales;
  int16_t* bsums;
};
QuantizedRows rows_from(QuantizedActivations& a, int64_t r);

// Quantizes `rows` rows of length k (k % 256 == 0 for kQ8K). Scalar reference; the SIMD
// variants must produce identical bytes.
void quantize_activations_ref(ActQuant kind, const float* x, int64_t rows, int64_t k,
                              QuantizedActivations* out);
// The same into rows already shaped (rows_from); what every variant's table entry does.
void quantize_rows_ref(ActQuant kind, const float* x, int64_t rows, int64_t k, QuantizedRows out);

// One row, exposed for kernels and tests.
float quantize_row_per_token_ref(const float* x, int64_t k, int8_t* q);  // returns s
void quantize_row_q8k_ref(const float* x, int64_t k, int8_t* q, float* d, int16_t* bsums);

}  // namespace bitnet::kernels
