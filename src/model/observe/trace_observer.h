// Tracing through the observer: every op output, BitLinear input codes and attention
// probabilities of one sequence go to a trace::Sink (a trace folder, crossval's in-memory
// collection), point by point as the sink's filters select them.
#pragma once

#include "model/observe/observer.h"
#include "trace/sink.h"

namespace bitnet::model {

class TraceObserver final : public Observer {
 public:
  // Records the rows of sequence `seq` (not owned).
  explicit TraceObserver(trace::Sink* sink, int seq = 0) : sink_(sink), seq_(seq) {}

  bool wants(const BatchRow& row, int layer, Op op) const override {
    return row.seq == seq_ && sink_->wants({row.pos, layer, op});
  }
  void output(const OpRows& rows) override;
  void quantized(Op input_op, int layer, std::span<const BatchRow> rows, const float* x,
                 const kernels::QuantizedActivations& qa) override;
  void attention_probs(int layer, const BatchRow& row, std::span<float> probs, int n_heads,
                       int n_kv) override;

 private:
  trace::Sink* sink_;
  int seq_;
};

}  // namespace bitnet::model
