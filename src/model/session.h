// An inference session: a model plus its KV cache and scratch buffers. eval() runs the forward
// pass of FACTS.md section 1 for a batch of tokens (a whole prompt at once, or one decode step)
// appending to the cache, and returns logits.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "core/result.h"
#include "core/thread_pool.h"
#include "kernels/activations.h"
#include "model/weights.h"
#include "trace/sink.h"

namespace bitnet::model {

struct SessionOptions {
  int n_ctx = 0;       // 0: the model's context length
  bool kv_f16 = true;  // F16 KV cache (as both reference engines); false: F32
  int n_threads = 1;
  // --verify-kernels N: on every N-th position (and every prompt), recompute sample rows of each
  // product with the scalar reference and fail eval() on any bit difference. 0: off.
  int verify_kernels_every = 0;
};

// Where the reference engines round operands, reproduced so logits match them closely:
// ggml multiplies an F16 matrix with F32 activations by first rounding the activations to F16.
struct Numerics {
  bool f16_attention_operands = true;  // q before q.K, softmax probs before p.V (F16 cache)
  bool f16_head_input = true;          // final-norm output before an F16 head (llama.cpp)
  bool f16_float_matmul_input = true;  // inputs of F16 projection matrices
};
Numerics numerics_for(const Model& m, bool kv_f16);

class Session {
 public:
  static Result<std::unique_ptr<Session>> create(const Model& model, const SessionOptions& o);

  // Evaluates `tokens` at positions n_past() .. n_past() + n - 1. Logits (n_vocab floats per
  // row) are written for every row when all_logits, else for the last row only.
  Status eval(std::span<const int32_t> tokens, bool all_logits, std::vector<float>* logits);

  int n_past() const { return n_past_; }
  int n_ctx() const { return n_ctx_; }
  // Forgets positions >= n (n <= n_past): the cache keeps the first n.
  void truncate(int n) { n_past_ = n < n_past_ ? (n < 0 ? 0 : n) : n_past_; }
  void reset() { n_past_ = 0; }
  const Model& model() const { return model_; }
  const Numerics& numerics() const { return numerics_; }
  int n_threads() const { return pool_.size(); }
  // Trace sink (not owned; null = off). Only effective when tracing is compiled in.
  void set_trace(trace::Sink* sink) { trace_ = sink; }

 private:
  Session(const Model& model, const SessionOptions& o);
  void ensure_capacity(int n_rows);
  // Runs fn(r0, r1) over row ranges covering [0, n_rows): on the pool for prompts (rows are
  // independent and each is computed the same way, so the split changes nothing), inline for a
  // single decode row. Not from inside another pool job (the pool is not reentrant).
  template <class Fn>
  void for_rows(int n_rows, const Fn& fn) {
    constexpr int kRowsPerChunk = 4;
    if (n_rows <= kRowsPerChunk) return fn(0, n_rows);
    pool_.run((n_rows + kRowsPerChunk - 1) / kRowsPerChunk, [&](int64_t c) {
      const int r0 = static_cast<int>(c) * kRowsPerChunk;
      fn(r0, std::min(n_rows, r0 + kRowsPerChunk));
    });
  }
  void rms_norm_rows(const float* x, const std::vector<float>& w, int n_rows, int64_t dim,
                     float* out);
  void add_rows(float* x, const float* y, int n_rows, int64_t dim);  // x += y, elementwise
  // Applies projections sharing one input (q/k/v or gate/up): quantizes once, then each matmul.
  void project(const float* in, int n_rows,
               std::initializer_list<std::pair<const Projection*, float*>> outs, int first_pos,
               int layer, trace::Op input_op);
  // Called before the pool job that precedes `next` (the ternary projections sharing one input;
  // empty: the LM head): once out of chunks of that job, each thread prefetches the start of its
  // share of `next` (ThreadPool::warm_after_next_job): workers while the caller runs the serial
  // steps in between, the caller while workers finish their last chunks.
  void warm_next(std::initializer_list<const Projection*> next);
  void rope_rows(float* x, int n_rows, int n_heads, int first_pos) const;
  void store_kv(int layer, const float* k, const float* v, int n_rows, int first_pos);
  void attention(int layer, const float* q, int n_rows, int first_pos, float* out);
  void trace_rows(trace::Op op, int layer, const float* data, int n_rows, int64_t row_len,
                  int first_pos);
  // Traces final_norm / logits of rows whose logits eval() does not compute, on the side.
  void trace_head_rows(const float* x, int n_rows, int first_pos);
  // LM head over final-norm rows: rounds them in place to f16 where the reference does, then
  // writes n_rows x n_vocab logits. Shared by eval() and trace_head_rows().
  void apply_head(float* fin, int n_rows, float* out);

  // TEST-ONLY fault injection (tests/crossval): BITNET_TEST_PERTURB="blk<N>/<op>:<eps>" (or
  // "<op>:<eps>" for embeddings / final_norm / logits) multiplies that op's output by 1 + eps
  // at every position, where trace_rows sees it. Read by create(), which warns on stderr.
  struct TestPerturbation {
    int layer = -1;
    trace::Op op = trace::Op::kEmbeddings;
    float factor = 1.0f;
  };
  static Result<std::optional<TestPerturbation>> test_perturbation_from_env();
  std::optional<TestPerturbation> perturb_;
  // Whether this eval verifies kernels, and the first verification failure.
  bool verify_now_ = false;
  int verify_every_ = 0;
  Status verify_status_;
  void verify_product(const kernels::WeightMatrix& w, const kernels::QuantizedActivations* a,
                      const float* x, int n_rows, const float* out, int first_pos);

  const Model& model_;
  const ModelConfig& c_;
  Numerics numerics_;
  int n_ctx_;
  bool kv_f16_;
  int n_past_ = 0;
  ThreadPool pool_;
  trace::Sink* trace_ = nullptr;

  // KV cache: [layer][position][n_embd_kv], f16 bits or f32.
  std::vector<uint16_t> k16_, v16_;
  std::vector<float> k32_, v32_;
  // RoPE tables: cos/sin per (position, pair), computed once for the context.
  std::vector<float> rope_cos_, rope_sin_;

  // Scratch, sized for the largest batch seen.
  int cap_rows_ = 0;
  std::vector<float> x_, h_, q_, k_, v_, att_, tmp_, gate_, up_, final_;
  std::vector<float> scores_;  // per head: n_ctx
  kernels::QuantizedActivations qa_, qa_head_;
};

}  // namespace bitnet::model
