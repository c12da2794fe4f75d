// A batch for one forward pass: rows of (token, sequence, position, whether its logits are
// wanted, and which of them). Rows of different sequences mix freely (a prompt of one sequence
// beside decode steps of others); every projection reads its weights once for the whole batch.
// Within a batch, each sequence's rows continue that sequence at its next positions, in order
// (Context::decode checks it).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace bitnet::model {

struct BatchRow {
  int32_t token = 0;
  int seq = 0;
  int pos = 0;
  bool logits = false;
  // With logits: 0 asks for every logit; n > 0 for the n largest only (greedy: 1; top-k
  // sampling: k). Those are always exact; a screened head (HeadType::kScreened) may then write
  // -infinity for the rest instead of computing them.
  int top = 0;
};

class Batch {
 public:
  void add(int32_t token, int seq, int pos, bool logits, int top = 0) {
    rows_.push_back({token, seq, pos, logits, logits ? top : 0});
    n_logits_ += logits ? 1 : 0;
  }
  // tokens of `seq` at positions first_pos, first_pos + 1, ...: logits for every row when
  // all_logits, else for the last (their `top`: as in BatchRow).
  void add_sequence(int seq, int first_pos, std::span<const int32_t> tokens, bool all_logits,
                    int top = 0) {
    for (size_t i = 0; i < tokens.size(); ++i) {
      add(tokens[i], seq, first_pos + static_cast<int>(i), all_logits || i + 1 == tokens.size(),
          top);
    }
  }
  void clear() {
    rows_.clear();
    n_logits_ = 0;
  }
  std::span<const BatchRow> rows() const { return rows_; }
  int size() const { return static_cast<int>(rows_.size()); }
  bool empty() const { return rows_.empty(); }
  int n_logits() const { return n_logits_; }

 private:
  std::vector<BatchRow> rows_;
  int n_logits_ = 0;
};

}  // namespace bitnet::model
