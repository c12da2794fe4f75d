// Receipts: the JSON record every `bitnet crossval` / `bitnet sweep` run writes, and its check
// (`bitnet receipt verify`).
//
// Schema "bitnet.crossval.receipt", schema_version 1 (all keys always present; order as below):
//   schema, schema_version          "bitnet.crossval.receipt", 1
//   kind                            "crossval" | "sweep"
//   tool {name, version, git_commit, source_dir}  git_commit: read at build time, "-dirty"
//                                   when the tree had uncommitted changes, or "unknown"
//   created_at                      UTC, ISO 8601 ("2026-01-31T12:00:00Z")
//   host {cpu, cores, os, kernel_variant}      kernel_variant: the kernels our run used
//   model {path, sha256, size_bytes, arch, weight_type, n_layers, n_embd, n_ff, n_heads,
//          n_kv_heads, n_vocab}
//   tokenizer {source, source_kind, model, pre_tokenizer, pre_tokenizer_origin, n_tokens,
//              vocab_sha256}         vocab_sha256: SHA-256 of the token texts and merges
//   settings {ours {...}, deterministic}        threads, kv type, kernels, batch layout
//   reference {helper, tree, library, library_sha256, api, version, cpu_variant, cpu_plugin,
//              cpu_device, settings {n_threads, n_ctx, n_batch, kv_type, flash_attn,
//              cpu_variant, batch_layout}, description}
//   thresholds                      Tolerances::to_json() (metrics.h)
//   cases[] {id, prompt, max_tokens, token_ids {ours, reference, match}, generated {reference,
//            ours_greedy, parts_at}, positions[], ops {compared, identical, beyond, only_ours},
//            op_heat[] {position, layer, max_rel}, first_divergence, passed, verdict}
//   positions[]                     the rows of cases[0] (crossval) or of every case (sweep,
//                                   each with "case"): {position, decode, token, cosine, l2,
//                                   max_abs, mse, kl, top1_match, top1_ours, top1_ref,
//                                   top5_overlap, passed}
//   summary {passed, cases, cases_passed, positions, min_cosine, max_abs, max_kl,
//            top1_agreement, first_divergence}  first_divergence: {case, position, layer, op,
//                                   kind, classification} or null
//   replay                          one shell line re-running the same check
//   multi_reference                 OPTIONAL (several --reference): {references[] {label,
//                                   reference, regime, regime_reason, passed, cases[] {id, passed,
//                                   verdict, first_divergence, ops}}, attribution[] {case,
//                                   verdict}, passed}; the rest of the receipt is the first
//                                   reference's run, and the run passed only if `passed` here
//   signature {algorithm: "ed25519", public_key, signature}   OPTIONAL (crossval / sweep
//                                   --sign KEY.pem): public_key is the signer's raw 32-byte
//                                   Ed25519 public key in hex, signature its 64-byte signature
//                                   of the canonical bytes (below), in hex
//   integrity {algorithm: "sha256", digest}    SHA-256 of the canonical bytes
//
// The canonical bytes: the receipt without "integrity" and "signature", serialized as compact
// JSON with sorted keys (canonical_receipt()). The receipt is signed first, then sealed; both
// cover these same bytes, so neither covers the other block.
//
// What each block proves:
// - integrity is a checksum, not proof of origin: anyone who edits a receipt can recompute it.
//   It catches accidental or careless edits (a hand-edited number, a truncated copy), not
//   forgery.
// - signature proves that the holder of the private key signed exactly these bytes, and nothing
//   more: checked against the public key inside the receipt, it shows only that the receipt is
//   unchanged since someone signed it (a forger can sign with a key of their own). Who signed it
//   is shown only by checking against a public key obtained some other way (`bitnet receipt
//   verify R --key PUB.pem`), which also refuses an unsigned receipt: removing the signature
//   block leaves a well-formed unsigned receipt whose checksum still matches.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"
#include "crossval/crossval.h"
#include "crossval/ed25519.h"

namespace bitnet::crossval {

// The commit the binary was built from (generated at every build by cmake/GitCommit.cmake).
extern const char* const kGitCommit;

inline constexpr const char* kReceiptSchema = "bitnet.crossval.receipt";
inline constexpr int kReceiptSchemaVersion = 1;

struct ReceiptContext {
  std::string kind = "crossval";
  std::string replay;
  Tolerances tol;
  bool deterministic = true;
};

nlohmann::ordered_json make_receipt(const RunResult& run, const ReceiptContext& ctx);
// The bytes the signature and the integrity digest cover (see the schema above).
std::string canonical_receipt(const nlohmann::json& receipt);
// Adds the signature block, signed with key (call before seal_receipt: any integrity block is
// removed, and seal_receipt adds it back).
Status sign_receipt(nlohmann::ordered_json* receipt, const SigningKey& key);
// Adds the integrity block (call last).
void seal_receipt(nlohmann::ordered_json* receipt);
std::string integrity_digest(const nlohmann::json& receipt);

struct VerifyOptions {
  bool check_files = false;               // also re-hash the model file when it exists
  std::optional<PublicKey> expected_key;  // the receipt must be signed by this key
};

struct VerifyReport {
  bool ok = false;
  std::vector<std::string> problems;  // empty when ok
  std::vector<std::string> notes;     // e.g. "model file matches sha256"
  // The fingerprint (key_fingerprint) of the key whose signature verified; "" when unsigned.
  std::string signed_by;
  bool signer_checked = false;  // signed_by is options.expected_key
};
// Checks schema, required fields and types, the integrity digest, the signature when there is
// one (against its own public key, and against expected_key when given), and internal
// consistency (summary vs cases and rows, thresholds vs rows).
VerifyReport verify_receipt(const nlohmann::json& receipt, const VerifyOptions& options);
VerifyReport verify_receipt(const nlohmann::json& receipt, bool check_files);

Status write_json_file(const std::string& path, const nlohmann::ordered_json& j);

}  // namespace bitnet::crossval
