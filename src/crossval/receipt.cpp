#include "crossval/receipt.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "crossval/sha256.h"

#ifndef BITNET_VERSION
#define BITNET_VERSION "0.1.0"
#endif
#ifndef BITNET_SOURCE_DIR
#define BITNET_SOURCE_DIR ""
#endif

namespace bitnet::crossval {

using nlohmann::json;
using nlohmann::ordered_json;

namespace {

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);) {
    if (line.rfind("model name", 0) == 0) {
      const size_t c = line.find(':');
      if (c != std::string::npos) return line.substr(c + 2);
    }
  }
  return "unknown";
}

std::string now_utc() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

ordered_json make_receipt(const RunResult& run, const ReceiptContext& ctx) {
  ordered_json r;
  r["schema"] = kReceiptSchema;
  r["schema_version"] = kReceiptSchemaVersion;
  r["kind"] = ctx.kind;
  r["tool"] = {{"name", "bitnet"},
               {"version", BITNET_VERSION},
               {"git_commit", kGitCommit},
               {"source_dir", BITNET_SOURCE_DIR}};
  r["created_at"] = now_utc();
  utsname u{};
  uname(&u);
  r["host"] = {{"cpu", cpu_model()},
               {"cores", sysconf(_SC_NPROCESSORS_ONLN)},
               {"os", std::string(u.sysname) + " " + u.release + " " + u.machine},
               {"kernel_variant", run.kernels}};
  r["model"] = run.model;
  r["tokenizer"] = run.tokenizer;
  r["settings"] = {{"ours", run.ours}, {"deterministic", ctx.deterministic}};
  r["reference"] = run.reference;
  r["thresholds"] = ctx.tol.to_json();
  r["cases"] = ordered_json::array();
  r["positions"] = ordered_json::array();
  int n_pos = 0, top1 = 0, cases_passed = 0;
  double min_cos = 1, max_abs = 0, max_kl = 0;
  ordered_json first = nullptr;
  for (const CaseResult& c : run.cases) {
    r["cases"].push_back(to_json(c));
    for (const PositionRow& row : c.rows) {
      ordered_json pj = to_json(row);
      if (ctx.kind == "sweep") pj["case"] = c.id;
      if (ctx.kind == "sweep" || &c == &run.cases.front()) r["positions"].push_back(pj);
      ++n_pos;
      top1 += row.m.top1_match;
      min_cos = std::min(min_cos, row.m.cosine);
      max_abs = std::max(max_abs, row.m.max_abs);
      max_kl = std::max(max_kl, row.m.kl);
    }
    cases_passed += c.passed;
    if (first.is_null() && !c.first_divergence.is_null()) {
      first = c.first_divergence;
      first["case"] = c.id;
    }
  }
  r["summary"] = {{"passed", run.passed()},
                  {"cases", run.cases.size()},
                  {"cases_passed", cases_passed},
                  {"positions", n_pos},
                  {"min_cosine", min_cos},
                  {"max_abs", max_abs},
                  {"max_kl", max_kl},
                  {"top1_agreement", n_pos > 0 ? static_cast<double>(top1) / n_pos : 0.0},
                  {"first_divergence", first}};
  r["replay"] = ctx.replay;
  return r;
}

std::string canonical_receipt(const json& receipt) {
  json copy = receipt;  // json (not ordered_json): keys sorted, so the bytes are canonical
  copy.erase("integrity");
  copy.erase("signature");
  return copy.dump();
}

std::string integrity_digest(const json& receipt) { return sha256_hex(canonical_receipt(receipt)); }

Status sign_receipt(ordered_json* receipt, const SigningKey& key) {
  receipt->erase("integrity");
  receipt->erase("signature");
  BITNET_ASSIGN_OR_RETURN(const std::string sig, key.sign(canonical_receipt(json(*receipt))));
  const PublicKey& pub = key.public_key();
  (*receipt)["signature"] = {
      {"algorithm", "ed25519"},
      {"public_key",
       to_hex(std::string_view(reinterpret_cast<const char*>(pub.data()), pub.size()))},
      {"signature", to_hex(sig)}};
  return {};
}

void seal_receipt(ordered_json* receipt) {
  receipt->erase("integrity");
  (*receipt)["integrity"] = {{"algorithm", "sha256"}, {"digest", integrity_digest(json(*receipt))}};
}

namespace {

// The signature block, when there is one, against its own public key and options.expected_key.
void check_signature(const json& r, const VerifyOptions& options, VerifyReport& v) {
  auto problem = [&](const std::string& s) { v.problems.push_back(s); };
  if (!r.contains("signature")) {
    if (options.expected_key) {
      problem("unsigned (no \"signature\" block): cannot show that key " +
              key_fingerprint(*options.expected_key) + " signed it");
    }
    return;
  }
  const json& sig = r["signature"];
  if (!sig.is_object()) {
    problem("\"signature\" has the wrong type");
    return;
  }
  if (sig.value("algorithm", std::string()) != "ed25519") {
    problem("signature.algorithm is not ed25519");
    return;
  }
  std::string pub_bytes, sig_bytes;
  if (!from_hex(sig.value("public_key", std::string()), &pub_bytes, 32)) {
    problem("signature.public_key is not a 32-byte Ed25519 public key in hex");
    return;
  }
  if (!from_hex(sig.value("signature", std::string()), &sig_bytes, 64)) {
    problem("signature.signature is not a 64-byte Ed25519 signature in hex");
    return;
  }
  PublicKey pub{};
  std::copy(pub_bytes.begin(), pub_bytes.end(), pub.begin());
  const std::string fp = key_fingerprint(pub);
  if (!ed25519_verify(pub, canonical_receipt(r), sig_bytes)) {
    problem("signature does not verify against its public key " + fp +
            ": the receipt was modified after it was signed");
    return;
  }
  if (options.expected_key && *options.expected_key != pub) {
    problem("signed by key " + fp + ", not by the given key " +
            key_fingerprint(*options.expected_key));
    return;
  }
  v.signed_by = fp;
  v.signer_checked = options.expected_key.has_value();
}

// The checks, adding to v; a field of the wrong type throws (see verify_receipt).
void check_receipt(const json& r, const VerifyOptions& options, VerifyReport& v) {
  const bool check_files = options.check_files;
  auto problem = [&](const std::string& s) { v.problems.push_back(s); };
  if (!r.is_object()) {
    problem("not a JSON object");
    return;
  }
  if (r.value("schema", std::string()) != kReceiptSchema)
    problem("schema is not " + std::string(kReceiptSchema));
  if (!r.contains("schema_version") || !r["schema_version"].is_number_integer()) {
    problem("schema_version missing");
  } else if (r["schema_version"].get<int>() != kReceiptSchemaVersion) {
    problem("unsupported schema_version " + r["schema_version"].dump());
  }
  const std::pair<const char*, json::value_t> required[] = {
      {"kind", json::value_t::string},       {"tool", json::value_t::object},
      {"created_at", json::value_t::string}, {"host", json::value_t::object},
      {"model", json::value_t::object},      {"tokenizer", json::value_t::object},
      {"settings", json::value_t::object},   {"reference", json::value_t::object},
      {"thresholds", json::value_t::object}, {"cases", json::value_t::array},
      {"positions", json::value_t::array},   {"summary", json::value_t::object},
      {"replay", json::value_t::string},     {"integrity", json::value_t::object}};
  for (const auto& [key, type] : required) {
    if (!r.contains(key)) {
      problem(std::string("missing \"") + key + "\"");
    } else if (r[key].type() != type) {
      problem(std::string("\"") + key + "\" has the wrong type");
    }
  }
  if (!v.problems.empty()) return;
  // Integrity.
  const json& integ = r["integrity"];
  if (integ.value("algorithm", std::string()) != "sha256") {
    problem("integrity.algorithm is not sha256");
  } else if (integ.value("digest", std::string()) != integrity_digest(r)) {
    problem("integrity digest mismatch: the receipt was modified after it was written");
  }
  check_signature(r, options, v);
  // Fields.
  // (A const json's operator[] on a missing key is undefined behaviour: check contains first.)
  const json& model = r["model"];
  for (const char* k : {"path", "sha256"}) {
    if (!model.contains(k) || !model[k].is_string() || model[k].get<std::string>().empty()) {
      problem(std::string("model.") + k + " missing");
    }
  }
  if (model.contains("sha256") && model["sha256"].is_string() &&
      model["sha256"].get<std::string>().size() != 64) {
    problem("model.sha256 is not a SHA-256 hex digest");
  }
  for (const char* k : {"library", "cpu_variant", "settings"}) {
    if (!r["reference"].contains(k)) problem(std::string("reference.") + k + " missing");
  }
  auto tol = Tolerances::from_json(r["thresholds"]);
  if (!tol.ok()) problem(tol.message());
  // Consistency: summary vs cases vs rows.
  bool all_passed = !r["cases"].empty();
  int n_pos = 0;
  for (const json& c : r["cases"]) {
    bool rows_ok = true;
    for (const json& p : c.at("positions")) {
      ++n_pos;
      for (const char* k : {"position", "cosine", "l2", "max_abs", "kl", "top1_match"}) {
        if (!p.contains(k))
          problem("case " + c.value("id", std::string("?")) + ": a position lacks " + k);
      }
      if (tol.ok()) {
        RowMetrics m;
        m.top1_match = p.at("top1_match").get<bool>();
        m.cosine = p.at("cosine").get<double>();
        m.kl = p.at("kl").get<double>();
        // Receipts written before these keys existed were judged by tolerances, NaN-blind.
        m.identical = p.value("identical", false);
        m.non_finite = p.value("non_finite", 0);
        if (tol->row_passes(m) != p.at("passed").get<bool>()) {
          problem("case " + c.value("id", std::string("?")) + " position " +
                  p.at("position").dump() +
                  ": 'passed' disagrees with its metrics and the thresholds");
        }
      }
      rows_ok = rows_ok && p.at("passed").get<bool>();
    }
    const bool passed = c.at("passed").get<bool>();
    if (passed && (!rows_ok || !c.at("token_ids").at("match").get<bool>())) {
      problem("case " + c.value("id", std::string("?")) +
              " is marked passed but has failing rows or token ids");
    }
    all_passed = all_passed && passed;
  }
  if (r["summary"].at("passed").get<bool>() != all_passed)
    problem("summary.passed disagrees with the cases");
  if (r["summary"].at("positions").get<int>() != n_pos)
    problem("summary.positions disagrees with the cases");
  if (!r["summary"].contains("first_divergence")) problem("summary.first_divergence missing");
  if (r.contains("multi_reference")) {
    // Several references: each one's verdict must agree with its cases, the first one's with
    // the receipt's own cases, and the overall verdict with all of them.
    const json& m = r["multi_reference"];
    const json& refs = m.at("references");
    bool every = !refs.empty();
    for (size_t i = 0; i < refs.size(); ++i) {
      const json& ref = refs[i];
      const std::string label = ref.at("label").get<std::string>();
      const json& cases = ref.at("cases");
      if (cases.size() != r["cases"].size())
        problem("multi_reference " + label + ": its cases are not the receipt's");
      bool ref_passed = !cases.empty();
      for (size_t j = 0; j < cases.size(); ++j) {
        const bool p = cases[j].at("passed").get<bool>();
        ref_passed = ref_passed && p;
        if (i == 0 && j < r["cases"].size() && p != r["cases"][j].at("passed").get<bool>())
          problem("multi_reference " + label + ": case " + std::to_string(j) +
                  " disagrees with the receipt's cases");
      }
      if (ref.at("passed").get<bool>() != ref_passed)
        problem("multi_reference " + label + ": 'passed' disagrees with its cases");
      every = every && ref_passed;
    }
    if (m.at("passed").get<bool>() != every)
      problem("multi_reference.passed disagrees with its references");
    if (m.at("attribution").size() != r["cases"].size())
      problem("multi_reference.attribution: not one entry per case");
  }
  if (check_files && v.problems.empty()) {
    const std::string path = model.at("path").get<std::string>();
    std::error_code ec;
    if (std::filesystem::exists(path, ec)) {
      auto h = sha256_file_hex(path);
      if (!h.ok()) {
        problem(h.message());
      } else if (*h != model.at("sha256").get<std::string>()) {
        problem("model file " + path + " no longer matches model.sha256");
      } else {
        v.notes.push_back("model file matches model.sha256");
      }
    } else {
      v.notes.push_back("model file " + path + " not present: hash not re-checked");
    }
  }
}

}  // namespace

// Every access to a field of the wrong type throws (nlohmann::json); any such receipt is
// malformed, which is a finding of the check, not a crash (found by fuzz/fuzz_receipt).
VerifyReport verify_receipt(const json& r, const VerifyOptions& options) {
  VerifyReport v;
  try {
    check_receipt(r, options, v);
  } catch (const std::exception& e) {
    v.problems.push_back(std::string("malformed: ") + e.what());
  }
  v.ok = v.problems.empty();
  if (!v.ok) {
    v.signed_by.clear();
    v.signer_checked = false;
  }
  return v;
}

VerifyReport verify_receipt(const json& r, bool check_files) {
  VerifyOptions options;
  options.check_files = check_files;
  return verify_receipt(r, options);
}

Status write_json_file(const std::string& path, const ordered_json& j) {
  std::ofstream f(path);
  f << j.dump(2) << "\n";
  f.close();
  if (!f) return make_error("%s: cannot write", path.c_str());
  return {};
}

}  // namespace bitnet::crossval
