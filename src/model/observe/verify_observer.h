// --verify-kernels through the observer: on every N-th position (and every batch of several
// rows) it recomputes samples of what the SIMD kernels produced with the scalar references
// (kernels/verify.h) and keeps the first difference, which fails the forward pass.
#pragma once

#include "kernels/dispatch.h"
#include "model/observe/observer.h"

namespace bitnet::model {

class VerifyObserver final : public Observer {
 public:
  // Checks the results of kernel variant `k` on every `every`-th position.
  VerifyObserver(int every, const kernels::Kernels& k) : every_(every), k_(k) {}

  void begin(std::span<const BatchRow> rows) override;
  void rms_norm(int layer, const float* x, const float* w, int64_t dim, float eps,
                const float* out) override;
  void quantized(Op input_op, int layer, std::span<const BatchRow> rows, const float* x,
                 const kernels::QuantizedActivations& qa) override;
  void product(const ProductCall& call) override;
  void ffn_activation(int layer, FfnActivation a, const float* gate, const float* up,
                      const float* act, int64_t n) override;
  void kv_stored(int layer, const float* k, const void* k_cells, int64_t k_stride, const float* v,
                 const void* v_cells, int64_t n_embd_kv, bool f16) override;
  void attention(const AttentionCall& call) override;
  Status status() const override { return status_; }

 private:
  // Whether this batch is checked and no failure is kept yet.
  bool checking() const { return active_ && status_.ok(); }
  // Picks what is sampled (rows, windows, heads), different at every position and layer.
  uint64_t salt(int layer) const { return static_cast<uint64_t>(first_pos_ + layer + 1); }

  int every_;
  kernels::Kernels k_;
  bool active_ = false;
  int first_pos_ = 0;
  Status status_;
};

}  // namespace bitnet::model
