// TEST-ONLY fault injection through the forward pass's observer, so that a test can check that
// crossval / trace-diff find and name the change: PerturbObserver multiplies every output of one
// op (at one layer, or a global op with layer -1) by a factor, at every position; OneBitObserver
// moves one value of one op by one unit in the last place (its lowest mantissa bit), once;
// ScaleAtObserver multiplies one op's output at one layer and one position by a factor (for the
// attention probabilities too, whose row's attention output then follows them).
#pragma once

#include <cmath>

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

class OneBitObserver final : public model::Observer {
 public:
  OneBitObserver(int layer, trace::Op op) : layer_(layer), op_(op) {}
  void output(const model::OpRows& r) override {
    if (done_ || r.op != op_ || r.layer != layer_ || r.rows.empty()) return;
    r.data[0] = std::nextafter(r.data[0], r.data[0] < 0 ? -INFINITY : INFINITY);
    done_ = true;
  }

 private:
  int layer_;
  trace::Op op_;
  bool done_ = false;
};

class ScaleAtObserver final : public model::Observer {
 public:
  ScaleAtObserver(int position, int layer, trace::Op op, float factor)
      : position_(position), layer_(layer), op_(op), factor_(factor) {}
  void output(const model::OpRows& r) override {
    if (r.op != op_ || r.layer != layer_) return;
    for (size_t i = 0; i < r.rows.size(); ++i) {
      if (r.rows[i].pos != position_) continue;
      float* row = r.data + static_cast<int64_t>(i) * r.row_len;
      for (int64_t j = 0; j < r.row_len; ++j) row[j] *= factor_;
    }
  }
  void attention_probs(int layer, const model::BatchRow& row, std::span<float> probs,
                       int /*n_heads*/, int /*n_kv*/) override {
    if (op_ != trace::Op::kAttnScoresSoftmax || layer != layer_ || row.pos != position_) return;
    for (float& p : probs) p *= factor_;
  }

 private:
  int position_, layer_;
  trace::Op op_;
  float factor_;
};

}  // namespace bitnet::test
