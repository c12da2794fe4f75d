#include "model/observe/trace_observer.h"

namespace bitnet::model {

void TraceObserver::output(const OpRows& rows) {
  const int64_t shape[1] = {rows.row_len};
  for (size_t r = 0; r < rows.rows.size(); ++r) {
    if (!wants(rows.rows[r], rows.layer, rows.op)) continue;
    const float* row = rows.data + static_cast<int64_t>(r) * rows.row_len;
    sink_->record({rows.rows[r].pos, rows.layer, rows.op}, {row, static_cast<size_t>(rows.row_len)},
                  shape);
  }
}

void TraceObserver::quantized(Op input_op, int layer, std::span<const BatchRow> rows,
                              const float* /*x*/, const kernels::QuantizedActivations& qa) {
  const bool per_token = qa.kind == kernels::ActQuant::kPerTokenInt8;
  const int64_t n_scales = per_token ? 1 : qa.k / kernels::kQ8KBlock;
  for (size_t r = 0; r < rows.size(); ++r) {
    if (!wants(rows[r], layer, input_op)) continue;
    sink_->record_codes(
        {rows[r].pos, layer, input_op},
        per_token ? trace::QuantGrouping::kPerToken : trace::QuantGrouping::kQ8K,
        {qa.row(static_cast<int64_t>(r)), static_cast<size_t>(qa.k)},
        {qa.scales.data() + static_cast<int64_t>(r) * n_scales, static_cast<size_t>(n_scales)});
  }
}

void TraceObserver::attention_probs(int layer, const BatchRow& row, std::span<float> probs,
                                    int n_heads, int n_kv) {
  if (!wants(row, layer, Op::kAttnScoresSoftmax)) return;
  const int64_t shape[2] = {n_heads, n_kv};
  sink_->record({row.pos, layer, Op::kAttnScoresSoftmax}, probs, shape);
}

}  // namespace bitnet::model
