// Matrix products of the forward pass. Weights stay in their file format (memory-mapped);
// a WeightMatrix describes n_out rows of k elements each (ggml's [k, n_out] tensor).
//
//   BitLinear (I2_S, TQ2_0, TQ1_0): quantize the activations (activations.h), then
//     matmul_ternary: exact int32 dot products per row / block, scaled as the reference does:
//       I2_S:  y = ((float)acc / s) * weight_scale                        (bitnet.cpp)
//       TQ*:   y = sum over 256-blocks of (float)acc_b * (d_act_b * d_w_b)  (llama.cpp; blocks
//              added in order, one float accumulator)
//   Float weights (F16 / BF16 / F32 projections, the F16 / F32 token_embd LM head):
//     matmul_float, y = sum_i w_i * x_i, summed as the matrix's FloatSums says (below).
//
// Every function has a scalar reference (`*_ref`), which is the specification; the dispatched
// entry points run the variant the caller passes (dispatch.h: Kernels) and are bit-exact with it.
#pragma once

#include <cstdint>
#include <span>

#include "gguf/tensor_types.h"
#include "kernels/activations.h"
#include "kernels/dispatch.h"

namespace bitnet {
class ThreadPool;
}

namespace bitnet::kernels {

// How matmul_float sums the products of a float-weight matrix (each product w_i * x_i is
// rounded to float in both):
//   kDouble: sum = 0.0 (double); sum += (double)(w_i * x_i) for i in order; y = (float)sum.
//            ggml's portable vec_dot_f16 / vec_dot_f32 bit for bit: the exact default, which
//            makes our logits bit-identical with llama.cpp's portable CPU backend.
//   kBlocks: per block of kFloatSumBlock elements in order, s = 0.0f; s = s + w_i * x_i in
//            float; then total += (double)s over the blocks in order; y = (float)total. A third
//            of kDouble's arithmetic per weight (no widening of every product to double), so a
//            head that streams 0.66 GB per token keeps up with memory; the same accuracy class
//            as ggml's SIMD dot products, which also sum in float (--head-type fast).
enum class FloatSums : uint8_t { kDouble, kBlocks };
inline constexpr int64_t kFloatSumBlock = 64;

struct WeightMatrix {
  gguf::TensorType type = gguf::TensorType::F32;
  const uint8_t* data = nullptr;  // the tensor's bytes (file format)
  int64_t k = 0;                  // input length (row length)
  int64_t n_out = 0;              // output rows
  float tensor_scale = 1.0f;      // I2_S: the scale stored after the codes
  // Optional copy in the kernels' own layout (packed.h), made at load when the model's kernels
  // (model::LoadOptions) have packed ones; those use it, every other path reads `data`.
  const uint8_t* packed = nullptr;
  FloatSums float_sums = FloatSums::kDouble;  // float weights only

  // Bytes of one row of codes (I2_S: k/4; TQ2_0: k/256*66; TQ1_0: k/256*54; F16: 2k; F32: 4k).
  int64_t row_bytes() const;
  int64_t bytes() const { return row_bytes() * n_out; }  // the whole matrix in its file layout
  const uint8_t* row(int64_t r) const { return data + r * row_bytes(); }
};

// Row r of a float matrix (F32, F16 or BF16, file layout) as k floats.
void row_to_float(const WeightMatrix& w, int64_t r, float* out);

// Which activation quantization a weight type needs (I2_S -> per-token, TQ* -> Q8_K).
ActQuant act_quant_for(gguf::TensorType weight_type);
bool is_ternary(gguf::TensorType t);

// y[r * n_out + o] for r < a.rows, o < n_out.
void matmul_ternary_ref(const WeightMatrix& w, const QuantizedActivations& a, float* y,
                        int64_t o_begin, int64_t o_end);
void matmul_float_ref(const WeightMatrix& w, const float* x, int64_t rows, float* y,
                      int64_t o_begin, int64_t o_end);

// Dispatched, threaded entry points, run with the variant passed first (pool may be null:
// single-threaded). Output rows are split into fixed chunks independent of the thread count, so
// results never depend on it.
// Rows are split over the pool when there are several (each row is quantized on its own).
void quantize_activations(const Kernels& kern, ActQuant kind, const float* x, int64_t rows,
                          int64_t k, QuantizedActivations* out, ThreadPool* pool = nullptr);
void matmul_ternary(const Kernels& k, const WeightMatrix& w, const QuantizedActivations& a,
                    float* y, ThreadPool* pool);
// Several matrices reading the same activations (q/k/v, gate/up) in one parallel pass: their
// chunks are laid end to end and split over the threads as one job, so a decode step pays one
// start and one finish instead of one per matrix. Same results as one matmul_ternary each.
struct TernaryProduct {
  const WeightMatrix* w;
  float* y;
};
inline constexpr int kMaxFusedProducts = 4;
void matmul_ternary_many(const Kernels& k, std::span<const TernaryProduct> products,
                         const QuantizedActivations& a, ThreadPool* pool);
void matmul_float(const Kernels& k, const WeightMatrix& w, const float* x, int64_t rows, float* y,
                  ThreadPool* pool);

// The weights thread i of n_threads reads first in matmul_ternary_many(products) /
// matmul_float(w): the start of its share, in the layout the kernels read (packed if there is
// one), at most max_bytes (empty past the last thread). For ThreadPool::warm_after_next_job.
std::span<const uint8_t> share_start(std::span<const TernaryProduct> products, int i, int n_threads,
                                     size_t max_bytes);
std::span<const uint8_t> share_start(const WeightMatrix& w, int i, int n_threads, size_t max_bytes);

}  // namespace bitnet::kernels
