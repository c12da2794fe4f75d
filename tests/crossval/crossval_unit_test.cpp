// Unit tests of src/crossval: SHA-256, metrics, tolerances, the reference-name table, receipts
// and reports (no reference engine needed).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <regex>

#include "crossval/metrics.h"
#include "crossval/receipt.h"
#include "crossval/ref_names.h"
#include "crossval/report.h"
#include "crossval/sha256.h"

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
