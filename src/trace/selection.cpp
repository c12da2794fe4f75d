#include "trace/selection.h"

#include <fnmatch.h>

#include <charconv>
#include <climits>

namespace bitnet::trace {
namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t end = std::min(s.find(sep, start), s.size());
    std::string part = s.substr(start, end - start);
    const auto first = part.find_first_not_of(" \t");
    const auto last = part.find_last_not_of(" \t");
    if (first != std::string::npos) out.push_back(part.substr(first, last - first + 1));
    start = end + 1;
  }
  return out;
}

bool to_int(const std::string& s, int* out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return !s.empty() && ec == std::errc() && end == s.data() + s.size() && *out >= 0;
}

}  // namespace

Result<Selection> Selection::parse(const std::string& filter, const std::string& positions) {
  Selection sel;
  for (auto& g : split(filter, ',')) {
    if (g != "*") sel.globs_.push_back(g);
  }
  if (positions.empty() || positions == "all") return sel;
  for (const auto& item : split(positions, ',')) {
    const size_t dash = item.find('-');
    int a = 0, b = 0;
    if (dash == std::string::npos) {
      if (!to_int(item, &a))
        return make_error("--trace-positions: '%s' is not a position", item.c_str());
      b = a;
    } else {
      if (!to_int(item.substr(0, dash), &a)) {
        return make_error("--trace-positions: '%s' is not a range (A-B or A-)", item.c_str());
      }
      const std::string hi = item.substr(dash + 1);
      if (hi.empty()) {
        b = INT_MAX;
      } else if (!to_int(hi, &b) || b < a) {
        return make_error("--trace-positions: '%s' is not a range (A-B with A <= B, or A-)",
                          item.c_str());
      }
    }
    sel.ranges_.emplace_back(a, b);
  }
  if (sel.ranges_.empty())
    return make_error("--trace-positions: '%s' selects nothing", positions.c_str());
  return sel;
}

bool Selection::position_selected(int position) const {
  if (ranges_.empty()) return true;
  for (const auto& [a, b] : ranges_) {
    if (position >= a && position <= b) return true;
  }
  return false;
}

bool Selection::name_selected(const std::string& name) const {
  if (globs_.empty()) return true;
  for (const auto& g : globs_) {
    if (fnmatch(g.c_str(), name.c_str(), 0) == 0) return true;
  }
  return false;
}

}  // namespace bitnet::trace
