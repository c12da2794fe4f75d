// Several references in one run (`bitnet crossval --reference x64 --reference best
// --reference-dir D`): the same cases against each reference, each judged in its own regime,
// and for every case an attribution of where a difference lies. A real divergence common to
// every reference points at us; one that only some references show points at them, since the
// others agree with us on the same inputs.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/result.h"
#include "crossval/crossval.h"

namespace bitnet::crossval {

struct ReferenceRun {
  std::string label;  // "x64", "best", "haswell", "dir:/path/to/tree"
  RunResult run;
};

// Runs each (label, options) in turn; the cases must be the same in all of them.
Result<std::vector<ReferenceRun>> run_references(
    const std::vector<std::pair<std::string, Options>>& refs);

bool all_passed(const std::vector<ReferenceRun>& runs);

// Where a case first diverges, from its first_divergence: "position 3, blk1/attn_out (real
// divergence)" (the reports' references table and the attribution both say it this way).
std::string divergence_place(const nlohmann::json& d);

// One line per case: which references it fails against, and what that points at.
std::string attribute(const std::vector<ReferenceRun>& runs, size_t case_index);

// The receipt's "references" block: per reference its label, identity, regime, verdict and
// per-case verdicts and first divergences; and "attribution", one entry per case.
nlohmann::ordered_json references_json(const std::vector<ReferenceRun>& runs);

}  // namespace bitnet::crossval
