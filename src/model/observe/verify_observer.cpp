#include "model/observe/verify_observer.h"

#include <algorithm>

#include "kernels/elementwise.h"
#include "kernels/verify.h"
#include "model/config.h"

namespace bitnet::model {

void VerifyObserver::begin(std::span<const BatchRow> rows) {
  first_pos_ = rows.front().pos;
  active_ = every_ > 0 && (rows.size() > 1 || first_pos_ % every_ == 0);
}

void VerifyObserver::rms_norm(int /*layer*/, const float* x, const float* w, int64_t dim, float eps,
                              const float* out) {
  if (checking()) status_ = kernels::verify_rms_norm(k_, x, w, dim, eps, out);  // the first row
}

void VerifyObserver::quantized(Op /*input_op*/, int layer, std::span<const BatchRow> rows,
                               const float* x, const kernels::QuantizedActivations& qa) {
  if (checking())
    status_ =
        kernels::verify_quantized(k_, x, static_cast<int64_t>(rows.size()), qa.k, qa, salt(layer));
}

void VerifyObserver::product(const ProductCall& c) {
  if (checking())
    status_ =
        kernels::verify_sample_rows(k_, c.w, c.quantized, c.x, c.n_rows, c.out, salt(c.layer));
}

// A window of the first row, in whole groups of 4 (verify.h).
void VerifyObserver::ffn_activation(int layer, FfnActivation a, const float* gate, const float* up,
                                    const float* act, int64_t n) {
  if (!checking()) return;
  constexpr int64_t kWindow = 64;
  const int64_t at = static_cast<int64_t>(salt(layer) * 7919 % std::max<int64_t>(1, n / 4)) * 4;
  const int64_t len = std::min(kWindow, n / 4 * 4 - at);
  if (len <= 0) return;
  status_ = a == FfnActivation::kSilu
                ? kernels::verify_swiglu(k_, gate + at, up + at, act + at, len)
                : kernels::verify_relu_sqr_mul(k_, gate + at, up + at, act + at, len);
}

void VerifyObserver::kv_stored(int /*layer*/, const float* k, const void* k_cells, int64_t k_stride,
                               const float* v, const void* v_cells, int64_t n_embd_kv, bool f16) {
  if (!checking() || !f16) return;
  status_ =
      kernels::verify_to_f16(k_, k, static_cast<const uint16_t*>(k_cells), n_embd_kv, k_stride);
  if (status_.ok())
    status_ = kernels::verify_to_f16(k_, v, static_cast<const uint16_t*>(v_cells), n_embd_kv, 1);
}

// One head of the last row, recomputed with the scalar references.
void VerifyObserver::attention(const AttentionCall& c) {
  if (!checking()) return;
  const int h = static_cast<int>(salt(c.layer) * 7919u % static_cast<uint64_t>(c.n_heads));
  float qh[kMaxHeadDim];
  status_ = kernels::verify_attention(k_, c.head(h, qh), &kernels::softmax_probs_ref, c.round_f16,
                                      c.probs(h), c.out(h));
}

}  // namespace bitnet::model
