// The building blocks every architecture's forward pass (model/arch/) is written with: embed,
// RMSNorm, BitLinear / float projections, RoPE, attention over the KV cache, residual add, FFN
// activations, final norm + LM head. Each works on all rows of a batch at once and reports its
// output to the observer, so a family's forward reads like its math and holds nothing else.
//
// Numerics are those of the reference engines (FACTS.md sections 1, 3 and 6, as the README
// explains): ggml's RMSNorm, NEOX / NORM RoPE with its float angle recurrence, attention summed in
// double with f16 operands over an F16 cache, activation quantization per weight type.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/activations.h"
#include "kernels/attention.h"
#include "kernels/screened_head.h"
#include "model/arch.h"
#include "model/batch.h"
#include "model/kv_cache.h"
#include "model/observe/observer.h"
#include "model/weights.h"

namespace bitnet::model {

// Where the reference engines round operands, reproduced so logits match them closely:
// ggml multiplies an F16 matrix with F32 activations by first rounding the activations to F16.
struct Numerics {
  bool f16_attention_operands = true;  // q before q.K, softmax probs before p.V (F16 cache)
  bool f16_head_input = true;          // final-norm output before an F16 head (llama.cpp)
  bool f16_float_matmul_input = true;  // inputs of F16 projection matrices
};
Numerics numerics_for(const Model& m, bool kv_f16);

// ggml's RoPE angles (NEOX and NORM alike): theta_p,i = p * base^(-2i/dims), built by repeated
// multiplication in float (theta *= theta_scale), then cosf / sinf; rows are added as positions are
// reached.
class RopeTable {
 public:
  void init(const ModelConfig& c);
  void ensure(int n_pos);  // rows for positions 0 .. n_pos-1
  const float* cos(int pos) const { return cos_.data() + static_cast<size_t>(pos) * half_; }
  const float* sin(int pos) const { return sin_.data() + static_cast<size_t>(pos) * half_; }

 private:
  int half_ = 0, n_pos_ = 0;
  float theta_scale_ = 1.0f;
  std::vector<float> cos_, sin_;
};

// RoPE of one row of n_heads heads at the position whose angles cs, sn are (RopeTable).
void rope_heads(float* x, int n_heads, int head_dim, const float* cs, const float* sn,
                RopeMode mode);

// Rows of activations: n_rows x dim floats, and the op that last wrote them (a projection's
// input codes are recorded under it).
struct Act {
  float* p = nullptr;
  int64_t dim = 0;
  Op op = Op::kEmbeddings;
  float* row(int r) const { return p + static_cast<int64_t>(r) * dim; }
};

// The activations of a forward pass, sized for the largest batch seen.
struct Scratch {
  Act x, h, q, k, v, att, o, gate, up, act, hf, fin;
  std::vector<float> scores;        // per head: n_ctx probabilities
  std::vector<float> group_scores;  // grouped attention: per task and query head, n_kv of them
  std::vector<float> split_q;       // attention_split: every head's rounded query
  std::vector<kernels::AttentionHead> split_heads;  // and its view of the cache
  kernels::QuantizedActivations qa, qa_head;
  kernels::ScreenScratch screen;
  std::vector<float> head_in, head_out;  // a head batch of mixed rows, gathered by kind
  void ensure(const ModelConfig& c, int n_rows, int n_ctx);

 private:
  std::vector<float> storage_;
  int rows_ = 0;
};

// Warm-up hints: while a pool job's threads run out of chunks, each prefetches the start of its
// share of the projection that comes next (ThreadPool::warm_after_next_job). What comes next is
// the order the forward pass calls project() in, learned on its first batch, so a family's
// forward states its math once and the hints follow it; hints never change a result.
struct WarmSchedule {
  std::vector<std::vector<const Projection*>> groups;  // empty group: the LM head
  bool learned = false;
  size_t next = 0;  // during a pass: index of the next group to run
};

// What a context's forward passes read and computed, for benchmarks (bitnet bench): the weight
// bytes each product streams (a matrix counts once per pass however many rows it serves; the
// screened head counts its screen, its row norms and the exact rows it reads), and how the LM
// head made its rows of logits.
struct ForwardStats {
  uint64_t weight_bytes = 0;
  int64_t int8_macs = 0;      // multiply-adds of the int8 (ternary) products
  int64_t logits_rows = 0;    // rows of logits made
  int64_t screened_rows = 0;  // of which by the screened head
  int64_t exact_rows = 0;     // output rows the screened head computed exactly, over those

  ForwardStats& operator+=(const ForwardStats& o) {
    weight_bytes += o.weight_bytes;
    int8_macs += o.int8_macs;
    logits_rows += o.logits_rows;
    screened_rows += o.screened_rows;
    exact_rows += o.exact_rows;
    return *this;
  }
};

class Blocks {
 public:
  struct State {
    const Model& model;
    const Numerics& numerics;
    KvCache& kv;
    RopeTable& rope;
    ThreadPool& pool;
    Scratch& s;
    WarmSchedule& warm;
    Observer* observer;
    ForwardStats& stats;
  };
  // `logits`: n_logits x n_vocab floats for the rows that ask for them.
  Blocks(const State& st, std::span<const BatchRow> rows, float* logits);

  const ModelConfig& config() const { return c_; }
  const LayerWeights& layer(int l) const { return st_.model.layers()[static_cast<size_t>(l)]; }
  Scratch& scratch() { return st_.s; }
  int n_rows() const { return n_; }

  // x = token_embd rows of the batch's tokens.
  void embed(Act& x);
  // out = rmsnorm(in) * w.
  void rms_norm(int layer, Op op, const Act& in, const std::vector<float>& w, Act& out);
  // Projections reading one input (q/k/v, gate/up): the input is quantized once for ternary
  // weights, and the matrices are computed in one parallel pass; `.scale` tensors applied.
  struct Out {
    Op op;
    const Projection& w;
    Act& y;
  };
  void project(int layer, const Act& in, std::initializer_list<Out> outs);
  // RoPE of each row at its position: NEOX (pairs i, i + head_dim/2) or NORM (pairs 2i, 2i + 1),
  // the same angles (RopeTable) either way.
  void rope(int layer, Op op, Act& x, int n_heads, RopeMode mode);
  // Stores k, v in the cache at each row's (sequence, position), then causal GQA attention of
  // each row over its sequence's positions 0 .. pos: out = softmax(q k^T / sqrt(hd)) v.
  void attention(int layer, const Act& q, const Act& k, const Act& v, Act& out);
  // attention()'s path without an observer: the heads of each KV head together.
  void attention_grouped(int layer, const Act& q, Act& out);
  // attention_grouped() for one row over a long cache: the work of each KV head split by
  // positions (scores) and by dimensions (values) instead of by query heads.
  void attention_split(int layer, const Act& q, Act& out);
  static constexpr int kSplitMinPositions = 256;
  static constexpr int kMaxGroupHeads = 16;  // more query heads per KV head: head by head
  // x += y.
  void add(int layer, Op op, Act& x, const Act& y);
  // out = act(gate) * up: relu(g)^2 * u or silu(g) * u.
  void ffn_activation(int layer, FfnActivation a, const Act& gate, const Act& up, Act& out);
  // Final norm and LM head of the rows that ask for logits.
  void head(const Act& x);

 private:
  template <class Fn>
  void for_rows(int n_rows, const Fn& fn);
  void observe(int layer, Op op, Act& a, std::span<const BatchRow> rows);
  void warm(size_t group);
  void store_kv(int layer, const Act& k, const Act& v);
  kernels::AttentionHead head_of(int layer, int r, int h, float* qh, const Act& q) const;
  // Rounds the final-norm rows to f16 where the reference does, then n_rows x n_vocab logits:
  // every one of them, or (top > 0, screened head) the `top` largest of each row.
  void apply_head(float* fin, int n_rows, float* out, int top = 0);

  State st_;
  const ModelConfig& c_;
  const kernels::Kernels& k_;  // the variant the model was loaded for
  std::span<const BatchRow> rows_;
  int n_;
  float* logits_;
  Observer* obs_;  // null when none is attached or the hooks are compiled out
};

}  // namespace bitnet::model
