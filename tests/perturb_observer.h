// TEST-ONLY fault injection through the forward pass's observer: multiplies every output of one
// op (at one layer, or a global op with layer -1) by a factor, at every position, so that a test
// can check that crossval / trace-diff find and name the change.
#pragma once

#include "model/observe/observer.h"

namespace bitnet::test {

class PerturbObserver final : public model::Observer {
 public:
  PerturbObserver(int layer, trace::Op op, float factor)
      : layer_(layer), op_(op), factor_(factor) {}
  void output(const model::OpRows& r) override {
    if (r.op != op_ || r.layer != layer_) return;
    const int64_t n = static_cast<int64_t>(r.rows.size()) * r.row_len;
    for (int64_t i = 0; i < n; ++i) r.data[i] *= factor_;
  }

 private:
  int layer_;
  trace::Op op_;
  float factor_;
};

}  // namespace bitnet::test
