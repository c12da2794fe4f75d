#include "crossval/multi.h"

#include <algorithm>

#include "crossval/classify.h"

namespace bitnet::crossval {

using nlohmann::ordered_json;

Result<std::vector<ReferenceRun>> run_references(
    const std::vector<std::pair<std::string, Options>>& refs) {
  if (refs.empty()) return make_error("crossval: no reference");
  std::vector<ReferenceRun> runs;
  for (const auto& [label, o] : refs) {
    if (o.cases.size() != refs.front().second.cases.size())
      return make_error("crossval: every reference must run the same cases");
    auto r = run_crossval(o);
    if (!r.ok()) return make_error("reference %s: %s", label.c_str(), r.message().c_str());
    runs.push_back({label, std::move(*r)});
  }
  return runs;
}

bool all_passed(const std::vector<ReferenceRun>& runs) {
  return !runs.empty() && std::all_of(runs.begin(), runs.end(),
                                      [](const ReferenceRun& r) { return r.run.passed(); });
}

std::string divergence_place(const nlohmann::json& d) {
  if (!d.is_object()) return "(no divergence named)";
  return "position " + std::to_string(d.value("position", 0)) + ", " +
         op_label(d.value("layer", -1), d.value("op", std::string())) + " (" +
         d.value("classification", std::string()) + ")";
}

namespace {

std::string where(const CaseResult& c) {
  return divergence_place(nlohmann::json(c.first_divergence));
}

}  // namespace

std::string attribute(const std::vector<ReferenceRun>& runs, size_t case_index) {
  std::vector<const ReferenceRun*> failing, passing;
  for (const ReferenceRun& r : runs) {
    if (case_index >= r.run.cases.size()) continue;
    (r.run.cases[case_index].passed ? passing : failing).push_back(&r);
  }
  auto names = [](const std::vector<const ReferenceRun*>& v) {
    std::string s;
    for (const ReferenceRun* r : v) s += (s.empty() ? "" : ", ") + r->label;
    return s;
  };
  if (failing.empty()) return "passes against every reference (" + names(passing) + ")";
  if (!passing.empty()) {
    std::string s = "fails only against " + names(failing) + " (";
    for (size_t i = 0; i < failing.size(); ++i)
      s += (i ? "; " : "") + failing[i]->label + ": " + where(failing[i]->run.cases[case_index]);
    return s + "), while " + names(passing) +
           " agree with us: the difference lies with the reference" +
           (failing.size() > 1 ? "s that fail" : " that fails");
  }
  const std::string first = where(failing.front()->run.cases[case_index]);
  const bool same = std::all_of(failing.begin(), failing.end(), [&](const ReferenceRun* r) {
    return where(r->run.cases[case_index]) == first;
  });
  if (same) return "fails against every reference at " + first + ": the difference lies with us";
  std::string s = "fails against every reference, at different places (";
  for (size_t i = 0; i < failing.size(); ++i)
    s += (i ? "; " : "") + failing[i]->label + ": " + where(failing[i]->run.cases[case_index]);
  return s + ")";
}

ordered_json references_json(const std::vector<ReferenceRun>& runs) {
  ordered_json refs = ordered_json::array();
  for (const ReferenceRun& r : runs) {
    ordered_json cases = ordered_json::array();
    for (const CaseResult& c : r.run.cases) {
      cases.push_back({{"id", c.id},
                       {"passed", c.passed},
                       {"verdict", c.verdict},
                       {"first_divergence",
                        c.first_divergence.is_null() ? ordered_json(nullptr) : c.first_divergence},
                       {"ops",
                        {{"compared", c.ops_compared},
                         {"identical", c.ops_identical},
                         {"real_divergence", c.ops_real},
                         {"rounding", c.ops_rounding},
                         {"activation_rounding_flip", c.ops_flip},
                         {"propagated", c.ops_propagated}}}});
    }
    refs.push_back({{"label", r.label},
                    {"reference", r.run.reference},
                    {"regime", r.run.tol.exact ? "exact" : "tolerance"},
                    {"regime_reason", r.run.tol.regime_reason},
                    {"passed", r.run.passed()},
                    {"cases", cases}});
  }
  ordered_json attribution = ordered_json::array();
  const size_t n = runs.empty() ? 0 : runs.front().run.cases.size();
  for (size_t i = 0; i < n; ++i)
    attribution.push_back(
        {{"case", runs.front().run.cases[i].id}, {"verdict", attribute(runs, i)}});
  return {{"references", refs}, {"attribution", attribution}, {"passed", all_passed(runs)}};
}

}  // namespace bitnet::crossval
