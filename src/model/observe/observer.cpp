#include "model/observe/observer.h"

namespace bitnet::model {

void ObserverList::begin(std::span<const BatchRow> rows) {
  for (Observer* o : list_) o->begin(rows);
}

bool ObserverList::wants(const BatchRow& row, int layer, Op op) const {
  for (const Observer* o : list_) {
    if (o->wants(row, layer, op)) return true;
  }
  return false;
}

void ObserverList::output(const OpRows& rows) {
  for (Observer* o : list_) o->output(rows);
}

void ObserverList::quantized(Op input_op, int layer, std::span<const BatchRow> rows, const float* x,
                             const kernels::QuantizedActivations& qa) {
  for (Observer* o : list_) o->quantized(input_op, layer, rows, x, qa);
}

void ObserverList::attention_probs(int layer, const BatchRow& row, std::span<float> probs,
                                   int n_heads, int n_kv) {
  for (Observer* o : list_) o->attention_probs(layer, row, probs, n_heads, n_kv);
}

void ObserverList::rms_norm(int layer, const float* x, const float* w, int64_t dim, float eps,
                            const float* out) {
  for (Observer* o : list_) o->rms_norm(layer, x, w, dim, eps, out);
}

void ObserverList::product(const ProductCall& call) {
  for (Observer* o : list_) o->product(call);
}

void ObserverList::ffn_activation(int layer, FfnActivation a, const float* gate, const float* up,
                                  const float* act, int64_t n) {
  for (Observer* o : list_) o->ffn_activation(layer, a, gate, up, act, n);
}

void ObserverList::kv_stored(int layer, const float* k, const void* k_cells, int64_t k_stride,
                             const float* v, const void* v_cells, int64_t n_embd_kv, bool f16) {
  for (Observer* o : list_) o->kv_stored(layer, k, k_cells, k_stride, v, v_cells, n_embd_kv, f16);
}

void ObserverList::attention(const AttentionCall& call) {
  for (Observer* o : list_) o->attention(call);
}

Status ObserverList::status() const {
  for (const Observer* o : list_) {
    if (auto st = o->status(); !st.ok()) return st;
  }
  return {};
}

}  // namespace bitnet::model
