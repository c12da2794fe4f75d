// A context: what evaluating a Model needs besides the model itself, which it only reads (so
// any number of contexts and threads can share one Model). It owns the KV cache of its
// sequences, the thread pool, the RoPE table, scratch buffers and the attached observer.
//
// decode() runs the model's forward pass (model/arch/) over a Batch: rows of several sequences
// (a prompt of one beside decode steps of others) in one pass over the weights. Each row's
// result is bit-identical to that sequence evaluated alone: every kernel computes a row the same
// way whatever else the batch holds.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/result.h"
#include "core/thread_pool.h"
#include "model/batch.h"
#include "model/blocks.h"
#include "model/kv_cache.h"
#include "model/observe/observer.h"
#include "model/weights.h"

namespace bitnet::model {

struct ContextOptions {
  int n_ctx = 0;       // positions per sequence at most; 0: the model's context length
  bool kv_f16 = true;  // F16 KV cache (as both reference engines); false: F32
  int n_threads = 1;
  int n_seq_max = 1;  // sequence ids 0 .. n_seq_max-1
};

class Context {
 public:
  static Result<std::unique_ptr<Context>> create(const Model& model, const ContextOptions& o);

  // Evaluates every row of the batch, storing its K/V in its sequence's cache. `logits` gets
  // n_vocab floats for each row that asks for them, in row order.
  Status decode(const Batch& batch, std::vector<float>* logits);
  // One sequence: `tokens` at its next positions; logits for every row when all_logits, else
  // for the last (`top`: which of them, as in BatchRow).
  Status eval(std::span<const int32_t> tokens, bool all_logits, std::vector<float>* logits,
              int seq = 0, int top = 0);

  KvCache& kv_cache() { return kv_; }
  const KvCache& kv_cache() const { return kv_; }
  int n_past(int seq = 0) const { return kv_.n_pos(seq); }
  int n_ctx() const { return kv_.n_ctx(); }
  int n_seq_max() const { return kv_.n_seq_max(); }
  const Model& model() const { return model_; }
  const Numerics& numerics() const { return numerics_; }
  int n_threads() const { return pool_.size(); }
  // The context's threads, for work between forward passes on their results (perplexity's
  // scoring); not while decode() runs.
  ThreadPool& thread_pool() { return pool_; }
  // The observer of every forward pass (not owned; null: none). Without the hooks compiled in
  // (kObserverCompiled false) nothing is ever called.
  void set_observer(Observer* o) { observer_ = o; }
  // Totals over every decode() so far (or since reset_stats()).
  const ForwardStats& stats() const { return stats_; }
  void reset_stats() { stats_ = {}; }

 private:
  Context(const Model& model, const ContextOptions& o, KvCache kv);
  Status check(const Batch& batch);

  const Model& model_;
  Numerics numerics_;
  ThreadPool pool_;
  KvCache kv_;
  RopeTable rope_;
  Scratch scratch_;
  WarmSchedule warm_;
  Observer* observer_ = nullptr;
  ForwardStats stats_;
  Batch one_sequence_;  // eval()'s batch, kept for its capacity
};

}  // namespace bitnet::model
