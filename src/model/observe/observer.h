// The one hook of the forward pass for everything that watches or checks it: tracing
// (observe/trace_observer.h), --verify-kernels (observe/verify_observer.h), and tests (fault
// injection goes through output(), whose rows are writable). The forward pass calls it at every
// op; with the hooks compiled out (BITNET_TRACE=OFF) kObserverCompiled is false and every call
// site disappears, and compiled in but with no observer attached a call site costs one
// null-pointer test.
//
// An observer that is attached sees every batch; rows identify their sequence and position, so
// an observer that follows one sequence (a trace) filters on BatchRow::seq.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "core/result.h"
#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "model/arch.h"
#include "model/batch.h"
#include "trace/sink.h"

namespace bitnet::model {

inline constexpr bool kObserverCompiled = trace::kTraceCompiled;

using trace::Op;

// Rows of one op's output: rows[r] produced row r, row_len floats at data + r * row_len.
struct OpRows {
  Op op;
  int layer;  // -1: a global op (embeddings, final_norm, logits)
  std::span<const BatchRow> rows;
  float* data;
  int64_t row_len;
};

// What a product computed: the matrix, its input (the quantized activations for ternary
// weights, else the f32 rows as the kernel read them) and its output, n_rows x w.n_out.
struct ProductCall {
  int layer;
  const kernels::WeightMatrix& w;
  const kernels::QuantizedActivations* quantized;
  const float* x;
  int n_rows;
  const float* out;
};

// The attention of one row, every head: head(h, q_scratch) describes head h as the kernels saw
// it (q rounded as they read it, written to q_scratch: head_dim floats), probs(h) holds its
// probabilities (n_kv of them), out(h) its output (head_dim floats).
struct AttentionCall {
  int layer;
  const BatchRow& row;
  int n_heads;
  bool round_f16;  // q and probabilities rounded to f16 (F16 cache)
  std::function<kernels::AttentionHead(int h, float* q_scratch)> head;
  std::function<const float*(int h)> probs;
  std::function<const float*(int h)> out;
};

class Observer {
 public:
  virtual ~Observer() = default;

  // A forward pass over these rows starts.
  virtual void begin(std::span<const BatchRow> /*rows*/) {}
  // Whether the observer wants this point of a row that the forward pass would not otherwise
  // compute: final_norm / logits of rows whose logits the batch does not ask for, and the
  // attention probabilities (kept only row by row). Other points are always offered.
  virtual bool wants(const BatchRow& /*row*/, int /*layer*/, Op /*op*/) const { return false; }

  // An op's output rows; the forward pass goes on with what they hold afterwards.
  virtual void output(const OpRows& /*rows*/) {}
  // The int8 codes a BitLinear input was quantized to (input_op: the op that produced it).
  virtual void quantized(Op /*input_op*/, int /*layer*/, std::span<const BatchRow> /*rows*/,
                         const float* /*x*/, const kernels::QuantizedActivations& /*qa*/) {}
  // One row's attention probabilities, n_heads rows of n_kv (only where wants() said so); the
  // row's attention output is computed from what they hold afterwards.
  virtual void attention_probs(int /*layer*/, const BatchRow& /*row*/, std::span<float> /*probs*/,
                               int /*n_heads*/, int /*n_kv*/) {}

  // Kernel results, for checks against the scalar references.
  virtual void rms_norm(int /*layer*/, const float* /*x*/, const float* /*w*/, int64_t /*dim*/,
                        float /*eps*/, const float* /*out*/) {}
  virtual void product(const ProductCall& /*call*/) {}
  // The first row's FFN activation: act = silu(gate) * up or relu(gate)^2 * up (a).
  virtual void ffn_activation(int /*layer*/, FfnActivation /*a*/, const float* /*gate*/,
                              const float* /*up*/, const float* /*act*/, int64_t /*n*/) {}
  // The first row's K and V as stored in the cache (k: a column of k_stride; v: a row).
  virtual void kv_stored(int /*layer*/, const float* /*k*/, const void* /*k_cells*/,
                         int64_t /*k_stride*/, const float* /*v*/, const void* /*v_cells*/,
                         int64_t /*n_embd_kv*/, bool /*f16*/) {}
  // The last row's attention (probabilities of every head still in scratch).
  virtual void attention(const AttentionCall& /*call*/) {}

  // The first failure a check found; the forward pass returns it after the batch.
  virtual Status status() const { return {}; }
};

// Several observers as one, called in the order added (not owned): one that changes outputs
// goes before those that should see the change.
class ObserverList final : public Observer {
 public:
  void add(Observer* o) {
    if (o != nullptr) list_.push_back(o);
  }
  bool empty() const { return list_.empty(); }
  // The one observer to attach: null when empty, the only one, or this list.
  Observer* get() { return list_.empty() ? nullptr : list_.size() == 1 ? list_[0] : this; }

  void begin(std::span<const BatchRow> rows) override;
  bool wants(const BatchRow& row, int layer, Op op) const override;
  void output(const OpRows& rows) override;
  void quantized(Op input_op, int layer, std::span<const BatchRow> rows, const float* x,
                 const kernels::QuantizedActivations& qa) override;
  void attention_probs(int layer, const BatchRow& row, std::span<float> probs, int n_heads,
                       int n_kv) override;
  void rms_norm(int layer, const float* x, const float* w, int64_t dim, float eps,
                const float* out) override;
  void product(const ProductCall& call) override;
  void ffn_activation(int layer, FfnActivation a, const float* gate, const float* up,
                      const float* act, int64_t n) override;
  void kv_stored(int layer, const float* k, const void* k_cells, int64_t k_stride, const float* v,
                 const void* v_cells, int64_t n_embd_kv, bool f16) override;
  void attention(const AttentionCall& call) override;
  Status status() const override;

 private:
  std::vector<Observer*> list_;
};

}  // namespace bitnet::model
