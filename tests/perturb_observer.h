// TEST-ONLY fault injection through the forward pass's observer, so that a test can check that
// crossval / trace-diff find and name the change: PerturbObserver multiplies every output of one
// op (at one layer, or a global op with layer -1) by a factor, at every position; OneBitObserver
// moves one value of one op by one unit in the last place (its lowest mantissa bit), once.
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

}  // namespace bitnet::test
