// Unit tests of src/crossval: SHA-256, metrics, tolerances, the reference-name table, receipts
// (and their Ed25519 signatures, also through `bitnet receipt verify`) and reports (no reference
// engine needed).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>

#include "crossval/crossval.h"
#include "crossval/ed25519.h"
#include "crossval/metrics.h"
#include "crossval/receipt.h"
#include "crossval/ref_names.h"
#include "crossval/report.h"
#include "crossval/sha256.h"
#include "test_keys.h"
#include "test_util.h"

namespace bitnet::crossval {
namespace {

using trace::Op;

TEST(Sha256, KnownAnswers) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  Sha256 h;  // streamed in odd pieces
  const std::string a(1000000, 'a');
  for (size_t i = 0; i < a.size(); i += 777) h.update(a.substr(i, 777));
  EXPECT_EQ(h.hex(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Metrics, IdenticalAndShifted) {
  std::vector<float> a = {1, 2, 3, 4, 5, 6}, b = a;
  RowMetrics m = compare_logits(a, b);
  EXPECT_EQ(m.max_abs, 0);
  EXPECT_NEAR(m.cosine, 1, 1e-12);
  EXPECT_NEAR(m.kl, 0, 1e-12);
  EXPECT_TRUE(m.top1_match);
  EXPECT_EQ(m.top5_overlap, 5);
  b[5] = 0;  // the top token moves
  m = compare_logits(a, b);
  EXPECT_FALSE(m.top1_match);
  EXPECT_EQ(m.top1_ref, 4);
  EXPECT_GT(m.kl, 0.1);
  EXPECT_NEAR(m.max_abs, 6, 0);
  EXPECT_NEAR(m.mse, 36.0 / 6, 1e-12);
  EXPECT_NEAR(m.l2, 6, 1e-12);
  const OpMetrics om = compare_values(std::vector<float>{1, 2}, std::vector<float>{1, 2.002f});
  EXPECT_NEAR(om.rel, 0.001, 1e-6);
  EXPECT_FALSE(om.identical);
  EXPECT_TRUE(std::isinf(compare_values(std::vector<float>{1}, std::vector<float>{1, 2}).rel));
}

// The two regimes on one row: identical bits pass both; one ulp fails the exact regime only; a
// NaN fails both, even where both engines hold it, and the other metrics stay finite.
TEST(Metrics, RegimesAndNonFiniteValues) {
  std::vector<float> a = {1, 2, 3, 4, 5, 6}, b = a;
  Tolerances exact, tolerant;
  exact.exact = true;
  RowMetrics m = compare_logits(a, b);
  EXPECT_TRUE(m.identical);
  EXPECT_TRUE(exact.row_passes(m));
  EXPECT_TRUE(tolerant.row_passes(m));
  b[2] = std::nextafter(b[2], 10.f);
  m = compare_logits(a, b);
  EXPECT_FALSE(m.identical);
  EXPECT_FALSE(exact.row_passes(m));
  EXPECT_TRUE(tolerant.row_passes(m));
  a[2] = b[2] = NAN;
  m = compare_logits(a, b);
  EXPECT_EQ(m.non_finite, 2);
  EXPECT_FALSE(exact.row_passes(m));
  EXPECT_FALSE(tolerant.row_passes(m));
  EXPECT_TRUE(std::isfinite(m.cosine) && std::isfinite(m.kl) && std::isfinite(m.max_abs));
  auto back = Tolerances::from_json(nlohmann::json(exact.to_json()));
  ASSERT_TRUE(back.ok()) << back.message();
  EXPECT_TRUE(back->exact);
  nlohmann::json old = nlohmann::json(tolerant.to_json());
  old.erase("regime");  // a receipt from before the regimes
  back = Tolerances::from_json(old);
  ASSERT_TRUE(back.ok());
  EXPECT_FALSE(back->exact);
  old["regime"] = "loose";
  EXPECT_FALSE(Tolerances::from_json(old).ok());
}

TEST(Tolerances, SetAndRoundTrip) {
  Tolerances t;
  EXPECT_EQ(t.max_rel(Op::kUpProj), 1e-4);
  ASSERT_TRUE(t.set("op.proj.max_rel=1e-3").ok());
  EXPECT_EQ(t.max_rel(Op::kUpProj), 1e-3);
  EXPECT_EQ(t.max_rel(Op::kAttnNorm), 1e-4);
  ASSERT_TRUE(t.set("logits.top1=0").ok());
  EXPECT_FALSE(t.logits_top1);
  EXPECT_FALSE(t.set("logits.cosine=1").ok());
  EXPECT_FALSE(t.set("op.proj.max_rel=abc").ok());
  EXPECT_FALSE(t.set("nonsense").ok());
  auto back = Tolerances::from_json(nlohmann::json(t.to_json()));
  ASSERT_TRUE(back.ok()) << back.message();
  EXPECT_EQ(back->max_rel(Op::kDownProj), 1e-3);
  EXPECT_FALSE(back->logits_top1);
}

TEST(RefNames, TableAndRepeatedNames) {
  EXPECT_EQ(map_ref_node("Qcur-0", "MUL_MAT"), Op::kQProj);
  EXPECT_EQ(map_ref_node("Qcur-0", "MUL"), Op::kQProj);  // after a .scale tensor
  EXPECT_EQ(map_ref_node("Qcur-0", "RESHAPE"), std::nullopt);
  EXPECT_EQ(map_ref_node("Qcur-3", "ROPE"), Op::kQRope);
  EXPECT_EQ(map_ref_node("Kcur-1", "ROPE"), Op::kKRope);
  EXPECT_EQ(map_ref_node("Vcur-1", "MUL_MAT"), Op::kVProj);
  EXPECT_EQ(map_ref_node("attn_out-2", "MUL_MAT"), Op::kOProj);
  EXPECT_EQ(map_ref_node("attn_o_out-2", "MUL_MAT"), Op::kOProj);  // llama.cpp 2024
  EXPECT_EQ(map_ref_node("kqv_out-0", "CONT"), Op::kAttnOut);
  EXPECT_EQ(map_ref_node("kq_soft_max-0", "SOFT_MAX"), Op::kAttnScoresSoftmax);
  EXPECT_EQ(map_ref_node("kq_soft_max_ext-0", "SOFT_MAX"), Op::kAttnScoresSoftmax);
  EXPECT_EQ(map_ref_node("ffn_sub_out-0", "GLU"), Op::kFfnAct);
  EXPECT_EQ(map_ref_node("ffn_swiglu-0", "GLU"), Op::kFfnAct);  // upstream llama graph
  EXPECT_EQ(map_ref_node("ffn_out-1", "MUL_MAT"), Op::kDownProj);
  EXPECT_EQ(map_ref_node("ffn_out-1", "ADD"), std::nullopt);
  EXPECT_EQ(map_ref_node("ffn_up_s-0", "MUL"), Op::kUpProj);
  EXPECT_EQ(map_ref_node("ffn_inp-0", "ADD"), Op::kAttnResidual);
  EXPECT_EQ(map_ref_node("l_out-0", "ADD"), Op::kFfnResidual);
  EXPECT_EQ(map_ref_node("result_norm", "MUL"), Op::kFinalNorm);
  EXPECT_EQ(map_ref_node("result_output", "MUL_MAT"), Op::kLogits);
  EXPECT_EQ(map_ref_node("norm-0", "RMS_NORM"), std::nullopt);
  EXPECT_EQ(map_ref_node("attn_norm", "MUL"), std::nullopt);  // block op without a layer
  EXPECT_TRUE(ref_name_wanted("ffn_down-5"));
  EXPECT_FALSE(ref_name_wanted("ffn_silu-5"));
  const RefName r = split_ref_name("ffn_sub_norm-12");
  EXPECT_EQ(r.base, "ffn_sub_norm");
  EXPECT_EQ(r.layer, 12);
}

TEST(RefNames, SplitPositions) {
  // Rows: [4, 2 tokens] -> two rows of 4.
  std::vector<float> d = {0, 1, 2, 3, 4, 5, 6, 7};
  auto rows = split_positions(Op::kQRope, {2, 2, 2}, d, 5, 2);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].position, 6);
  EXPECT_EQ(rows[1].values, (std::vector<float>{4, 5, 6, 7}));
  // Softmax [n_kv=4, n_tokens=2, n_heads=2] at positions 0, 1 -> [2 heads, pos+1].
  std::vector<float> s(16);
  for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<float>(i);
  auto sm = split_positions(Op::kAttnScoresSoftmax, {4, 2, 2}, s, 0, 2);
  ASSERT_EQ(sm.size(), 2u);
  EXPECT_EQ(sm[0].shape, (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(sm[0].values, (std::vector<float>{0, 8}));
  EXPECT_EQ(sm[1].values, (std::vector<float>{4, 5, 12, 13}));
  EXPECT_TRUE(split_positions(Op::kQRope, {3}, {1, 2, 3}, 0, 2).empty());
}

RunResult fake_run(bool pass) {
  RunResult run;
  run.model = {{"path", "/nonexistent/m.gguf"},
               {"sha256", std::string(64, 'a')},
               {"arch", "bitnet"},
               {"weight_type", "TQ2_0"},
               {"n_layers", 2}};
  run.tokenizer = {{"source", "/nonexistent/m.gguf"}};
  run.reference = {
      {"library", "/lib/libllama.so"}, {"cpu_variant", "x64"}, {"settings", {{"n_threads", 1}}}};
  CaseResult c;
  c.id = "c0";
  c.c = {"Hello", 2};
  c.ids_ours = c.ids_ref = {1, 2};
  c.tokens_match = true;
  for (int p = 0; p < 3; ++p) {
    PositionRow row;
    row.position = p;
    row.m.cosine = 1;
    row.m.top1_match = pass || p != 2;
    row.passed = row.m.top1_match;
    c.rows.push_back(row);
    c.heat[{p, 0}] = p == 2 && !pass ? 0.5 : 0.0;
  }
  c.passed = pass;
  if (!pass)
    c.first_divergence = {{"position", 2},
                          {"layer", 0},
                          {"op", "up_proj"},
                          {"kind", "op"},
                          {"classification", "real divergence"}};
  run.cases.push_back(c);
  return run;
}

TEST(Explain, ParsesTracedPointsAndRefusesTheRest) {
  auto e = parse_explain("3/1/attn_out");
  ASSERT_TRUE(e.ok()) << e.message();
  EXPECT_EQ(std::get<0>(*e), 3);
  EXPECT_EQ(std::get<1>(*e), 1);
  EXPECT_EQ(std::get<2>(*e), trace::Op::kAttnOut);
  e = parse_explain("12/logits");
  ASSERT_TRUE(e.ok()) << e.message();
  EXPECT_EQ(std::get<1>(*e), -1);
  EXPECT_EQ(std::get<2>(*e), trace::Op::kLogits);
  for (const std::string bad : {"", "/", "3", "3/", "/logits", "3/attn_out", "3/1/logits", "3/1/",
                                "a/1/q_proj", "3/b/q_proj", "-3/1/q_proj", "3/-1/q_proj",
                                "3/1/q_proj/x", "9999999/1/q_proj", "3/1/Q_PROJ", "3//q_proj"}) {
    const auto r = parse_explain(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_NE(r.message().find("--explain '" + bad + "'"), std::string::npos);
    }
  }
}

TEST(Receipt, SealVerifyAndCorrupt) {
  ReceiptContext ctx;
  ctx.replay = "bitnet crossval ...";
  nlohmann::ordered_json r = make_receipt(fake_run(true), ctx);
  seal_receipt(&r);
  nlohmann::json j = r;
  VerifyReport v = verify_receipt(j, true);
  EXPECT_TRUE(v.ok) << (v.problems.empty() ? "" : v.problems[0]);
  EXPECT_EQ(j["schema_version"], kReceiptSchemaVersion);
  EXPECT_TRUE(j["summary"]["first_divergence"].is_null());

  nlohmann::json bad = j;  // any edit breaks the digest
  bad["positions"][0]["cosine"] = 0.5;
  EXPECT_FALSE(verify_receipt(bad, false).ok);
  bad = j;
  bad.erase("model");
  EXPECT_FALSE(verify_receipt(bad, false).ok);

  // A model block without path or sha256 (from fuzz/: reading them through a const json's
  // operator[] was undefined behaviour, a use after free under ASan).
  for (const char* key : {"path", "sha256"}) {
    nlohmann::ordered_json partial = r;
    partial["model"].erase(key);
    seal_receipt(&partial);
    v = verify_receipt(nlohmann::json(partial), false);
    ASSERT_FALSE(v.ok);
    EXPECT_EQ(v.problems[0], std::string("model.") + key + " missing");
  }

  // An inconsistent receipt (resealed, so only consistency can catch it).
  nlohmann::ordered_json incons = r;
  incons["summary"]["passed"] = false;
  seal_receipt(&incons);
  v = verify_receipt(nlohmann::json(incons), false);
  EXPECT_FALSE(v.ok);

  // Fields of the wrong type are a finding, not an exception (from fuzz/: "schema" as an
  // object used to throw out of the check).
  for (const char* key : {"schema", "integrity"}) {
    nlohmann::json odd = j;
    odd[key] = key == std::string("schema") ? nlohmann::json::object() : nlohmann::json(7);
    VerifyReport w;
    ASSERT_NO_THROW(w = verify_receipt(odd, false)) << key;
    EXPECT_FALSE(w.ok) << key;
    EXPECT_FALSE(w.problems.empty()) << key;
  }
  nlohmann::json odd = j;
  odd["integrity"]["algorithm"] = nlohmann::json::array();
  EXPECT_FALSE(verify_receipt(odd, false).ok);
}

// tool.git_commit is the commit generated at build time (cmake/GitCommit.cmake): 40 hex digits
// (+ "-dirty") when the sources are a git checkout, as in CI's clone, else "unknown".
TEST(Receipt, GitCommitIsReadAtBuildTime) {
  const nlohmann::ordered_json r = make_receipt(fake_run(true), ReceiptContext{});
  const std::string commit = r["tool"]["git_commit"];
  EXPECT_EQ(commit, kGitCommit);
  const std::string source_dir = r["tool"]["source_dir"];
  if (std::filesystem::exists(source_dir + "/.git")) {
    EXPECT_TRUE(std::regex_match(commit, std::regex("[0-9a-f]{40}(-dirty)?"))) << commit;
  } else {
    EXPECT_EQ(commit, "unknown");
  }
}

// --- Signed receipts ---

bool has_problem(const VerifyReport& v, const std::string& text) {
  for (const auto& p : v.problems) {
    if (p.find(text) != std::string::npos) return true;
  }
  return false;
}

std::string problems_of(const VerifyReport& v) {
  std::string s;
  for (const auto& p : v.problems) s += p + "\n";
  return s;
}

class ReceiptSignature : public ::testing::Test {
 protected:
  void SetUp() override {
    keys_ = test::write_key_pair(dir_.path("signer"));
    other_ = test::write_key_pair(dir_.path("other"));
    ASSERT_FALSE(keys_.private_pem.empty());
    ASSERT_FALSE(other_.private_pem.empty());
  }
  // A receipt signed with `signer`, then sealed, as `bitnet crossval --sign` writes it; read
  // back from its file text, as `bitnet receipt verify` reads it.
  nlohmann::json signed_receipt(const std::string& key_pem) {
    auto key = SigningKey::from_pem_file(key_pem);
    EXPECT_TRUE(key.ok()) << key.message();
    if (!key.ok()) return {};
    ReceiptContext ctx;
    ctx.replay = "bitnet crossval ...";
    nlohmann::ordered_json r = make_receipt(fake_run(true), ctx);
    const Status st = sign_receipt(&r, *key);
    EXPECT_TRUE(st.ok()) << st.message();
    seal_receipt(&r);
    return nlohmann::json::parse(r.dump(2));
  }
  PublicKey public_key(const std::string& pem) {
    auto k = read_public_key_pem(pem);
    EXPECT_TRUE(k.ok()) << k.message();
    return k.ok() ? *k : PublicKey{};
  }
  VerifyReport verify(const nlohmann::json& r, std::optional<PublicKey> key) {
    VerifyOptions o;
    o.expected_key = key;
    return verify_receipt(r, o);
  }

  test::TempDir dir_;
  test::KeyPairFiles keys_, other_;
};

TEST_F(ReceiptSignature, VerifiesWithTheSignersKey) {
  const nlohmann::json r = signed_receipt(keys_.private_pem);
  ASSERT_TRUE(r.contains("signature"));
  EXPECT_EQ(r["signature"]["algorithm"], "ed25519");
  const PublicKey pub = public_key(keys_.public_pem);
  EXPECT_EQ(r["signature"]["public_key"],
            to_hex(std::string_view(reinterpret_cast<const char*>(pub.data()), pub.size())));
  EXPECT_EQ(r["signature"]["signature"].get<std::string>().size(), 128u);
  // Signed first, then sealed: both cover the receipt without either block.
  EXPECT_EQ(r["integrity"]["digest"], sha256_hex(canonical_receipt(r)));
  EXPECT_EQ(canonical_receipt(r).find("\"signature\""), std::string::npos);
  EXPECT_EQ(canonical_receipt(r).find("\"integrity\""), std::string::npos);

  VerifyReport v = verify(r, pub);
  EXPECT_TRUE(v.ok) << problems_of(v);
  EXPECT_TRUE(v.signer_checked);
  EXPECT_EQ(v.signed_by, key_fingerprint(pub));
  EXPECT_TRUE(std::regex_match(v.signed_by, std::regex("[0-9a-f]{16}"))) << v.signed_by;
  // Without a key: checked against the key inside, which names the signer but proves nothing
  // about who it is.
  v = verify(r, std::nullopt);
  EXPECT_TRUE(v.ok) << problems_of(v);
  EXPECT_FALSE(v.signer_checked);
  EXPECT_EQ(v.signed_by, key_fingerprint(pub));
}

TEST_F(ReceiptSignature, AnotherKeyFails) {
  const nlohmann::json r = signed_receipt(keys_.private_pem);
  const PublicKey other = public_key(other_.public_pem);
  const VerifyReport v = verify(r, other);
  EXPECT_FALSE(v.ok);
  EXPECT_FALSE(v.signer_checked);
  EXPECT_TRUE(has_problem(v, "signed by key " + key_fingerprint(public_key(keys_.public_pem)) +
                                 ", not by the given key " + key_fingerprint(other)))
      << problems_of(v);
}

TEST_F(ReceiptSignature, TamperingFailsChecksumAndSignature) {
  const nlohmann::json r = signed_receipt(keys_.private_pem);
  const PublicKey pub = public_key(keys_.public_pem);
  nlohmann::json bad = r;
  bad["summary"]["min_cosine"] = 0.5;
  for (const auto& key : {std::optional<PublicKey>(), std::optional<PublicKey>(pub)}) {
    const VerifyReport v = verify(bad, key);
    EXPECT_FALSE(v.ok);
    EXPECT_TRUE(v.signed_by.empty());
    EXPECT_TRUE(has_problem(v, "integrity digest mismatch")) << problems_of(v);
    EXPECT_TRUE(has_problem(v, "signature does not verify")) << problems_of(v);
  }
  // The checksum is no seal: recomputed after the edit it matches again, and only the signature
  // still catches the edit.
  nlohmann::ordered_json resealed = bad;
  seal_receipt(&resealed);
  VerifyReport v = verify(nlohmann::json(resealed), std::nullopt);
  EXPECT_FALSE(v.ok);
  EXPECT_FALSE(has_problem(v, "integrity digest mismatch")) << problems_of(v);
  EXPECT_TRUE(has_problem(v, "signature does not verify")) << problems_of(v);
  // A forger re-signing with a key of their own passes the check against the embedded key
  // (integrity only), not the check against the real signer's key.
  auto forger = SigningKey::from_pem_file(other_.private_pem);
  ASSERT_TRUE(forger.ok()) << forger.message();
  nlohmann::ordered_json forged = bad;
  ASSERT_TRUE(sign_receipt(&forged, *forger).ok());
  seal_receipt(&forged);
  v = verify(nlohmann::json(forged), std::nullopt);
  EXPECT_TRUE(v.ok) << problems_of(v);
  EXPECT_EQ(v.signed_by, key_fingerprint(forger->public_key()));
  v = verify(nlohmann::json(forged), pub);
  EXPECT_FALSE(v.ok);
  EXPECT_TRUE(has_problem(v, "not by the given key")) << problems_of(v);
  // The signature itself edited.
  nlohmann::json flipped = r;
  std::string sig = flipped["signature"]["signature"];
  sig[0] = sig[0] == '0' ? '1' : '0';
  flipped["signature"]["signature"] = sig;
  v = verify(flipped, std::nullopt);
  EXPECT_FALSE(v.ok);
  EXPECT_TRUE(has_problem(v, "signature does not verify")) << problems_of(v);
  EXPECT_FALSE(has_problem(v, "integrity digest mismatch")) << problems_of(v);
}

TEST_F(ReceiptSignature, UnsignedReceiptFailsOnlyWithAKey) {
  ReceiptContext ctx;
  nlohmann::ordered_json r = make_receipt(fake_run(true), ctx);
  seal_receipt(&r);
  const PublicKey pub = public_key(keys_.public_pem);
  VerifyReport v = verify(nlohmann::json(r), std::nullopt);
  EXPECT_TRUE(v.ok) << problems_of(v);
  EXPECT_TRUE(v.signed_by.empty());
  v = verify(nlohmann::json(r), pub);
  EXPECT_FALSE(v.ok);
  EXPECT_TRUE(has_problem(v, "unsigned")) << problems_of(v);
  // Removing the signature of a signed receipt leaves a receipt whose checksum still matches:
  // only --key tells.
  nlohmann::json stripped = signed_receipt(keys_.private_pem);
  stripped.erase("signature");
  EXPECT_TRUE(verify(stripped, std::nullopt).ok);
  EXPECT_FALSE(verify(stripped, pub).ok);
  // The digest of a signed receipt is the unsigned receipt's: signing changes no other byte.
  const nlohmann::json signed_r = signed_receipt(keys_.private_pem);
  nlohmann::json unsigned_r = signed_r;
  unsigned_r.erase("signature");
  EXPECT_EQ(integrity_digest(signed_r), integrity_digest(unsigned_r));
}

TEST_F(ReceiptSignature, MalformedSignatureBlocksAreFindings) {
  const nlohmann::json r = signed_receipt(keys_.private_pem);
  struct Case {
    const char* field;
    nlohmann::json value;
    const char* expect;
  };
  const Case cases[] = {
      {nullptr, 7, "\"signature\" has the wrong type"},
      {"algorithm", "rsa", "signature.algorithm is not ed25519"},
      {"algorithm", nlohmann::json::array(), "malformed"},
      {"public_key", "abcd", "signature.public_key is not"},
      {"public_key", std::string(64, 'g'), "signature.public_key is not"},
      {"signature", std::string(126, '0'), "signature.signature is not"},
      {"signature", nlohmann::json::object(), "malformed"},
  };
  for (const Case& c : cases) {
    nlohmann::json bad = r;
    if (c.field == nullptr) {
      bad["signature"] = c.value;
    } else {
      bad["signature"][c.field] = c.value;
    }
    VerifyReport v;
    ASSERT_NO_THROW(v = verify(bad, std::nullopt)) << c.expect;
    EXPECT_FALSE(v.ok) << c.expect;
    EXPECT_TRUE(has_problem(v, c.expect)) << c.expect << ": " << problems_of(v);
  }
}

// RFC 8032 section 7.1, TEST 1: the key with this seed has this public key and signs the empty
// message with this signature (Ed25519 is deterministic).
TEST(Ed25519, Rfc8032KnownAnswer) {
  std::string seed, expected_pub, expected_sig;
  ASSERT_TRUE(
      from_hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", &seed, 32));
  ASSERT_TRUE(from_hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
                       &expected_pub, 32));
  ASSERT_TRUE(
      from_hex("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
               "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
               &expected_sig, 64));
  test::TempDir dir;
  const std::string pem = dir.path("rfc8032.pem");
  ASSERT_TRUE(
      test::write_ed25519_seed_key(pem, reinterpret_cast<const unsigned char*>(seed.data())));
  auto key = SigningKey::from_pem_file(pem);
  ASSERT_TRUE(key.ok()) << key.message();
  const PublicKey& pub = key->public_key();
  EXPECT_EQ(std::string(pub.begin(), pub.end()), expected_pub);
  auto sig = key->sign("");
  ASSERT_TRUE(sig.ok()) << sig.message();
  EXPECT_EQ(to_hex(*sig), to_hex(expected_sig));
  EXPECT_TRUE(ed25519_verify(pub, "", expected_sig));
  EXPECT_FALSE(ed25519_verify(pub, "x", expected_sig));
  EXPECT_FALSE(ed25519_verify(pub, "", expected_sig.substr(0, 63)));
  EXPECT_EQ(key_fingerprint(pub), sha256_hex(expected_pub).substr(0, 16));
}

// Bad key files: one line each, naming the file and what is wrong with it.
TEST(Ed25519, KeyFileErrors) {
  test::TempDir dir;
  const auto ed = test::write_key_pair(dir.path("ed"));
  const auto ec = test::write_key_pair(dir.path("ec"), "EC");
  ASSERT_FALSE(ed.private_pem.empty());
  ASSERT_FALSE(ec.private_pem.empty());
  const std::string text = dir.path("text.pem"), garbled = dir.path("garbled.pem"),
                    encrypted = dir.path("encrypted.pem");
  std::ofstream(text) << "hello\n";
  std::ofstream(garbled)
      << "-----BEGIN PRIVATE KEY-----\nnot base64 !!\n-----END PRIVATE KEY-----\n";
  std::ofstream(encrypted) << "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n"
                              "-----END ENCRYPTED PRIVATE KEY-----\n";
  const std::string missing = dir.path("missing.pem");
  auto expect_error = [](const auto& r, const std::string& path, const std::string& what) {
    ASSERT_FALSE(r.ok()) << path;
    EXPECT_EQ(r.message().find('\n'), std::string::npos) << r.message();
    EXPECT_EQ(r.message().rfind(path + ": ", 0), 0u) << r.message();
    EXPECT_NE(r.message().find(what), std::string::npos) << r.message();
  };
  // Private keys (--sign).
  expect_error(SigningKey::from_pem_file(missing), missing, "cannot open the key file");
  expect_error(SigningKey::from_pem_file(text), text, "not a PEM key file");
  expect_error(SigningKey::from_pem_file(ed.public_pem), ed.public_pem, "a public key");
  expect_error(SigningKey::from_pem_file(ec.private_pem), ec.private_pem,
               "key type EC, not Ed25519");
  expect_error(SigningKey::from_pem_file(garbled), garbled, "not a readable PEM private key");
  expect_error(SigningKey::from_pem_file(encrypted), encrypted, "passphrase-protected");
  EXPECT_TRUE(SigningKey::from_pem_file(ed.private_pem).ok());
  // Public keys (--key).
  expect_error(read_public_key_pem(missing), missing, "cannot open the key file");
  expect_error(read_public_key_pem(text), text, "not a PEM key file");
  expect_error(read_public_key_pem(ed.private_pem), ed.private_pem, "a private key");
  expect_error(read_public_key_pem(ec.public_pem), ec.public_pem, "key type EC, not Ed25519");
  EXPECT_TRUE(read_public_key_pem(ed.public_pem).ok());
}

// `bitnet receipt verify` with and without --key, on receipts signed here.
TEST_F(ReceiptSignature, VerifyCommand) {
  auto write = [&](const std::string& name, const nlohmann::json& j) {
    const std::string path = dir_.path(name);
    std::ofstream(path) << j.dump(2) << "\n";
    return path;
  };
  auto bitnet = [](const std::string& args) {
    return test::run_command(test::bitnet_binary() + " receipt verify " + args);
  };
  const nlohmann::json r = signed_receipt(keys_.private_pem);
  const std::string good = write("signed.json", r);
  const std::string fp = key_fingerprint(public_key(keys_.public_pem));

  auto c = bitnet(good + " --key " + keys_.public_pem);
  EXPECT_EQ(c.exit_code, 0) << c.err;
  EXPECT_NE(c.out.find("OK " + good), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("signed by key " + fp + ", the key given with --key"), std::string::npos)
      << c.out;

  c = bitnet(good);
  EXPECT_EQ(c.exit_code, 0) << c.err;
  EXPECT_NE(c.out.find("signed by key " + fp + ", the key inside the receipt"), std::string::npos)
      << c.out;
  EXPECT_NE(c.out.find("integrity only, not who signed it"), std::string::npos) << c.out;

  c = bitnet(good + " --key " + other_.public_pem);
  EXPECT_EQ(c.exit_code, 1);
  EXPECT_NE(c.err.find("not by the given key"), std::string::npos) << c.err;
  EXPECT_NE(c.out.find("INVALID " + good), std::string::npos) << c.out;

  nlohmann::json bad = r;
  bad["positions"][0]["cosine"] = 0.5;
  const std::string tampered = write("tampered.json", bad);
  c = bitnet(tampered + " --key " + keys_.public_pem);
  EXPECT_EQ(c.exit_code, 1);
  EXPECT_NE(c.err.find("integrity digest mismatch"), std::string::npos) << c.err;
  EXPECT_NE(c.err.find("signature does not verify"), std::string::npos) << c.err;

  nlohmann::ordered_json plain = make_receipt(fake_run(true), ReceiptContext{});
  seal_receipt(&plain);
  const std::string unsigned_path = write("unsigned.json", plain);
  c = bitnet(unsigned_path);
  EXPECT_EQ(c.exit_code, 0) << c.err;
  EXPECT_NE(c.out.find("unsigned: its SHA-256 checksum detects accidental edits, not forgery"),
            std::string::npos)
      << c.out;
  c = bitnet(unsigned_path + " --key " + keys_.public_pem);
  EXPECT_EQ(c.exit_code, 1);
  EXPECT_NE(c.err.find("unsigned (no \"signature\" block)"), std::string::npos) << c.err;

  // A bad --key file is an error (exit 2), one line.
  for (const std::string& key : {dir_.path("missing.pem"), keys_.private_pem}) {
    c = bitnet(good + " --key " + key);
    EXPECT_EQ(c.exit_code, 2) << key;
    EXPECT_EQ(c.err.rfind("bitnet: error: --key " + key + ": ", 0), 0u) << c.err;
    EXPECT_EQ(c.err.find('\n'), c.err.size() - 1) << c.err;
  }

  // The help says what the checksum is.
  c = bitnet("--help");
  EXPECT_NE(c.out.find("not forgery"), std::string::npos) << c.out;
}

TEST(Report, MarkdownAndHtml) {
  ReceiptContext ctx;
  nlohmann::ordered_json r = make_receipt(fake_run(false), ctx);
  seal_receipt(&r);
  const std::string md = markdown_report(nlohmann::json(r));
  EXPECT_NE(md.find("FAIL"), std::string::npos);
  EXPECT_NE(md.find("position 2, layer 0, op up_proj"), std::string::npos);
  const std::string html = html_report(nlohmann::json(r));
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("blk1"), std::string::npos);
  EXPECT_EQ(html.find("http://"), html.find("http://www.w3.org/2000/svg"));  // no network assets
  EXPECT_EQ(html.find("<script"), std::string::npos);
}

}  // namespace
}  // namespace bitnet::crossval
