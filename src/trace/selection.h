// Which trace points a run records: globs over record names (--trace-filter) and token
// positions (--trace-positions). Checked before any work is done for a point.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/result.h"
#include "trace/record.h"

namespace bitnet::trace {

class Selection {
 public:
  // `filter`: comma-separated shell globs over record names ("t*/blk0/*,*/logits"); '*' also
  // matches '/'; empty = everything. `positions`: "all" or "" (everything), or a comma list of
  // N, A-B and A- (open-ended), e.g. "0,3-5,10-".
  static Result<Selection> parse(const std::string& filter, const std::string& positions);

  bool position_selected(int position) const;
  bool name_selected(const std::string& name) const;
  bool selected(int position, int layer, Op op, Kind kind) const {
    return position_selected(position) && name_selected(point_name(position, layer, op, kind));
  }
  bool all() const { return globs_.empty() && ranges_.empty(); }

 private:
  std::vector<std::string> globs_;
  std::vector<std::pair<int, int>> ranges_;  // inclusive; INT_MAX for open ends
};

}  // namespace bitnet::trace
