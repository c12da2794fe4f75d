#include "model/context.h"

#include <algorithm>

#include "model/arch/forward.h"

namespace bitnet::model {

Result<std::unique_ptr<Context>> Context::create(const Model& model, const ContextOptions& o) {
  const ModelConfig& c = model.config();
  if (o.n_ctx < 0) return make_error("context length %d must not be negative", o.n_ctx);
  if (o.n_threads < 1 || o.n_threads > 512)
    return make_error("thread count %d is out of range (1..512)", o.n_threads);
  KvCacheOptions ko;
  ko.n_layers = static_cast<int>(c.n_layers);
  ko.n_kv_heads = static_cast<int>(c.n_kv_heads);
  ko.head_dim = static_cast<int>(c.head_dim());
  ko.f16 = o.kv_f16;
  ko.n_ctx = o.n_ctx > 0 ? o.n_ctx : static_cast<int>(c.n_ctx_train);
  ko.n_seq_max = o.n_seq_max;
  BITNET_ASSIGN_OR_RETURN(KvCache kv, KvCache::create(ko));
  return std::unique_ptr<Context>(new Context(model, o, std::move(kv)));
}

Context::Context(const Model& model, const ContextOptions& o, KvCache kv)
    : model_(model),
      numerics_(numerics_for(model, o.kv_f16)),
      pool_(o.n_threads),
      kv_(std::move(kv)) {
  rope_.init(model.config());
}

// Rows must name known tokens and sequences, and continue each sequence at its next positions in
// order: the cache keeps every sequence a contiguous prefix.
Status Context::check(const Batch& batch) {
  const ModelConfig& c = model_.config();
  if (batch.empty()) return make_error("decode: the batch has no rows");
  std::vector<int> next(static_cast<size_t>(kv_.n_seq_max()), -1);
  for (const BatchRow& row : batch.rows()) {
    if (row.token < 0 || static_cast<uint32_t>(row.token) >= c.n_vocab) {
      return make_error("token id %d is outside the vocabulary (0..%u)", row.token, c.n_vocab - 1);
    }
    if (row.top < 0) return make_error("decode: a row asks for its %d largest logits", row.top);
    if (row.seq < 0 || row.seq >= kv_.n_seq_max()) {
      return make_error("sequence id %d is out of range (0..%d)", row.seq, kv_.n_seq_max() - 1);
    }
    int& expect = next[static_cast<size_t>(row.seq)];
    if (expect < 0) expect = kv_.n_pos(row.seq);
    if (row.pos != expect) {
      return make_error("decode: sequence %d continues at position %d, not %d", row.seq, expect,
                        row.pos);
    }
    ++expect;
  }
  for (int seq = 0; seq < kv_.n_seq_max(); ++seq) {
    if (next[static_cast<size_t>(seq)] >= 0)
      BITNET_TRY(kv_.reserve(seq, next[static_cast<size_t>(seq)]));
  }
  return {};
}

Status Context::decode(const Batch& batch, std::vector<float>* logits) {
  BITNET_TRY(check(batch));
  int max_pos = 0;
  for (const BatchRow& row : batch.rows()) max_pos = std::max(max_pos, row.pos);
  rope_.ensure(max_pos + 1);
  scratch_.ensure(model_.config(), batch.size(), kv_.n_ctx());
  logits->resize(static_cast<size_t>(batch.n_logits()) * model_.config().n_vocab);
  Blocks blocks({model_, numerics_, kv_, rope_, pool_, scratch_, warm_, observer_, stats_},
                batch.rows(), logits->data());
  forward_for(model_.config().arch)(blocks);
  for (const BatchRow& row : batch.rows()) kv_.commit(row.seq, row.pos + 1);
  if (kObserverCompiled && observer_ != nullptr) return observer_->status();
  return {};
}

Status Context::eval(std::span<const int32_t> tokens, bool all_logits, std::vector<float>* logits,
                     int seq, int top) {
  if (tokens.empty()) return make_error("eval: no tokens");
  one_sequence_.clear();
  one_sequence_.add_sequence(seq, n_past(seq), tokens, all_logits, top);
  return decode(one_sequence_, logits);
}

}  // namespace bitnet::model
