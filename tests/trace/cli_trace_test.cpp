// Tracing through the `bitnet` binary: run / chat --trace-dir, BITNET_TRACE_DIR, trace-diff on two
// identical runs and on I2_S vs TQ2_0, trace-show, b3sum on dumped values, and errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "trace/reader.h"
#include "trace_test_util.h"

namespace bitnet {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

class TraceCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    for (const char* w : {"i2_s", "tq2_0"}) {
      // d = 512: two Q8_K blocks per row, so TQ2_0's activation grouping differs from I2_S's.
      auto r =
          bitnet(std::string("synth -q --preset tiny --n-embd 512 --arch bitnet-b1.58 --weights ") +
                 w + " -o " + dir_->path(std::string(w) + ".gguf"));
      ASSERT_EQ(r.exit_code, 0) << r.err;
    }
  }
  static void TearDownTestSuite() { delete dir_; }
  void SetUp() override {
    if (!trace::kTraceCompiled) GTEST_SKIP() << "tracing compiled out";
  }
  static test::CommandResult bitnet(const std::string& args) {
    return test::run_command(test::bitnet_binary() + " " + args);
  }
  static std::string model(const char* w) { return dir_->path(std::string(w) + ".gguf"); }
  // A greedy 4-token run of `w`, with extra flags; returns the JSON output.
  static json run(const char* w, const std::string& extra, const std::string& env = "") {
    auto r = test::run_command(env + " " + test::bitnet_binary() + " run -m " + model(w) +
                               " -p 'Hello world' -n 4 --greedy --json -t 2 " + extra);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? json::parse(r.out) : json();
  }
  static test::TempDir* dir_;
};
test::TempDir* TraceCli::dir_ = nullptr;

// bitnet chat --trace-dir: one trace folder per turn (a turn re-evaluates positions past the
// prefix it shares with the cache), each holding exactly the positions that turn evaluated;
// the replies are the untraced chat's.
TEST_F(TraceCli, ChatTracesEachTurnInItsOwnFolder) {
  const std::string tdir = dir_->path("chat");
  const std::string chat = "printf 'Hello\\nHow are you?\\n/exit\\n' | " + test::bitnet_binary() +
                           " chat -m " + model("tq2_0") + " -n 4 --greedy -t 2";
  auto plain = test::run_command(chat);
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  auto traced = test::run_command(chat + " --trace-dir " + tdir);
  ASSERT_EQ(traced.exit_code, 0) << traced.err;
  EXPECT_EQ(plain.out, traced.out);
  int prev_end = 0;
  for (const char* turn : {"turn-001", "turn-002"}) {
    auto t = trace::read_trace(tdir + "/" + turn);
    ASSERT_TRUE(t.ok()) << turn << ": " << t.message();
    const int first = t->meta["first_position"].get<int>();
    const int n_ids = static_cast<int>(t->meta["token_ids"].size());
    EXPECT_LE(first, prev_end) << turn << " starts past what the cache held";
    std::set<int> positions;
    for (const auto& r : t->records) positions.insert(r.position);
    ASSERT_FALSE(positions.empty()) << turn;
    EXPECT_EQ(*positions.begin(), first) << turn;
    EXPECT_EQ(*positions.rbegin(), n_ids - 1) << turn;
    EXPECT_EQ(static_cast<int>(positions.size()), n_ids - first) << turn;
    prev_end = n_ids;
  }
  EXPECT_GT(prev_end, 0);
  auto second = trace::read_trace(tdir + "/turn-002");
  EXPECT_GT(second->meta["first_position"].get<int>(), 0) << "turn 2 reuses turn 1's prefix";
  EXPECT_FALSE(fs::exists(tdir + "/turn-003"));
  // Options without a folder are still refused.
  auto bad = test::run_command("printf '/exit\\n' | " + test::bitnet_binary() + " chat -m " +
                               model("tq2_0") + " --trace-positions 0-1");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("need --trace-dir"), std::string::npos) << bad.err;
}

TEST_F(TraceCli, TracedRunMatchesUntracedAndRecordsEveryPosition) {
  const std::string plain_logits = dir_->path("plain.npy"),
                    traced_logits = dir_->path("traced.npy");
  const std::string tdir = dir_->path("run1");
  const json plain = run("i2_s", "--dump-logits " + plain_logits);
  const json traced = run(
      "i2_s", "--dump-logits " + traced_logits + " --trace-dir " + tdir + " --trace-seed-layout");
  EXPECT_EQ(plain["generated_ids"], traced["generated_ids"]);
  std::ifstream a(plain_logits, std::ios::binary), b(traced_logits, std::ios::binary);
  const std::string la((std::istreambuf_iterator<char>(a)), {}),
      lb((std::istreambuf_iterator<char>(b)), {});
  EXPECT_GT(la.size(), 128256u * 4 * 6);  // 6 evaluated positions
  EXPECT_TRUE(la == lb) << "logits differ";

  auto t = trace::read_trace(tdir);
  ASSERT_TRUE(t.ok()) << t.message();
  // meta.json: the model's BLAKE3 (as b3sum prints it) and the evaluated token ids.
  const auto b3 = test::run_command("b3sum --no-names " + model("i2_s"));
  EXPECT_EQ(t->meta["model"]["blake3"].get<std::string>() + "\n", b3.out);
  json ids = traced["prompt_ids"];
  for (int i = 0; i < 3; ++i) ids.push_back(traced["generated_ids"][i]);
  EXPECT_EQ(t->meta["token_ids"], ids);
  EXPECT_EQ(t->meta["n_prompt"], 3);
  const auto recs = test::by_name(*t);
  for (int pos = 0; pos < 6; ++pos) {
    for (const char* n :
         {"embeddings", "blk0/attn_norm/q8", "blk1/ffn_residual", "final_norm", "logits"}) {
      EXPECT_TRUE(recs.count("t" + std::to_string(pos) + "/" + n)) << pos << " " << n;
    }
  }
  EXPECT_TRUE(fs::exists(tdir + "/t5_blk1_down_proj.trace"));
}

TEST_F(TraceCli, EnvironmentVariableSwitchesTracingOn) {
  const std::string tdir = dir_->path("env");
  run("i2_s", "--trace-positions 0 --trace-filter '*/logits'", "BITNET_TRACE_DIR=" + tdir);
  auto t = trace::read_trace(tdir);
  ASSERT_TRUE(t.ok()) << t.message();
  ASSERT_EQ(t->records.size(), 1u);
  EXPECT_EQ(t->records[0].name(), "t0/logits");
}

TEST_F(TraceCli, TraceDiffIdenticalRunsAndI2sVsTq2) {
  const std::string a = dir_->path("diff_a"), b = dir_->path("diff_b"), c = dir_->path("diff_c");
  run("i2_s", "--trace-dir " + a + " --trace-values");
  run("i2_s", "--trace-dir " + b + " --trace-values --trace-values-format safetensors");
  run("tq2_0", "--trace-dir " + c + " --trace-values");

  auto same = bitnet("trace-diff " + a + " " + b);
  EXPECT_EQ(same.exit_code, 0) << same.out << same.err;
  EXPECT_NE(same.out.find("no difference"), std::string::npos) << same.out;

  auto r = bitnet("trace-diff --json " + a + " " + c);
  ASSERT_TRUE(r.exit_code == 0 || r.exit_code == 1) << r.err;
  const json j = json::parse(r.out);
  // Same f32 math up to the first BitLinear: its int8 input codes (I2_S: one scale per token;
  // TQ2_0: Q8_K blocks) are the first record to differ, q_proj the first op output.
  EXPECT_EQ(j["first_difference"]["name"], "t0/blk0/attn_norm/q8");
  EXPECT_EQ(j["first_f32_difference"]["name"], "t0/blk0/q_proj");
  EXPECT_EQ(j["first_f32_difference"]["position"], 0);
  EXPECT_EQ(j["first_f32_difference"]["layer"], 0);
  EXPECT_GT(j["first_f32_difference"]["cosine"].get<double>(), 0.9999);
  EXPECT_EQ(j["layers"].size(), 4u);  // embd, blk0, blk1, head
  // The runs generate different tokens at some point; the embeddings of the prompt agree.
  EXPECT_GE(j["layers"][0]["identical"].get<int>(), 3);
  if (j["layers"][0]["identical"] != j["layers"][0]["compared"]) {
    EXPECT_TRUE(j["token_ids_differ_from"].is_number());
  }
  EXPECT_EQ(r.exit_code, j["differs_beyond_tolerance"].get<bool>() ? 1 : 0);

  // With no tolerance the same comparison fails, naming q_proj.
  auto strict = bitnet("trace-diff " + a + " " + c + " --max-rel-diff 0");
  EXPECT_EQ(strict.exit_code, 1);
  EXPECT_NE(strict.out.find("first beyond tolerance:  t0/blk0/q_proj"), std::string::npos)
      << strict.out;
  auto text = bitnet("trace-diff " + a + " " + c);
  EXPECT_NE(text.out.find("first difference:        t0/blk0/attn_norm/q8"), std::string::npos)
      << text.out;
}

TEST_F(TraceCli, DumpedValuesHashLikeB3sum) {
  const std::string tdir = dir_->path("values");
  run("tq2_0", "--trace-dir " + tdir + " --trace-values --trace-filter 't4/*,t0/embeddings'");
  auto t = trace::read_trace(tdir);
  ASSERT_TRUE(t.ok()) << t.message();
  trace::ValueStore store(tdir);
  int checked = 0;
  for (const auto& r : t->records) {
    if (r.kind != trace::Kind::kF32) continue;
    auto v = store.load(r);
    ASSERT_TRUE(v.ok()) << v.message();
    EXPECT_EQ(test::b3sum_of(v->data(), v->size() * 4), r.blake3) << r.name();
    ++checked;
  }
  EXPECT_EQ(checked, 2 + 2 * 18 + 2);  // t0 and t4 embeddings, 2 blocks, final_norm, logits
}

TEST_F(TraceCli, TraceShowSummarizesPerLayer) {
  const std::string tdir = dir_->path("show");
  run("i2_s", "--trace-dir " + tdir);
  auto r = bitnet("trace-show " + tdir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("blk1"), std::string::npos);
  EXPECT_NE(r.out.find("attn_scores_softmax"), std::string::npos);
  EXPECT_NE(r.out.find("t5"), std::string::npos);
  auto j = bitnet("trace-show --json --positions 2 --filter '*/blk0/*' " + tdir);
  ASSERT_EQ(j.exit_code, 0) << j.err;
  const json s = json::parse(j.out);
  EXPECT_EQ(s["positions"], json({2}));
  EXPECT_EQ(s["rows"].size(), 18u);
  EXPECT_GT(s["rows"][0]["rms"][0].get<double>(), 0.0);
}

TEST_F(TraceCli, ErrorsAreOneLine) {
  auto expect_error = [](const test::CommandResult& r, int code, const std::string& what) {
    EXPECT_EQ(r.exit_code, code) << r.err;
    EXPECT_EQ(r.err.rfind("bitnet: error: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
  };
  expect_error(bitnet("trace-diff " + dir_->path("nope") + " " + dir_->path("nope2")), 1,
               "not a trace folder");
  expect_error(bitnet("trace-show " + dir_->path("nope")), 1, "not a trace folder");
  expect_error(bitnet("trace-diff " + dir_->path("nope")), 2, "DIR_B");
  expect_error(bitnet("trace-diff a b --min-cosine 2"), 1, "--min-cosine");
  const std::string m = " -m " + model("i2_s") + " -p hi -n 1 ";
  expect_error(bitnet("run" + m + "--trace-dir " + dir_->path("e") + " --trace-positions 2-1"), 1,
               "--trace-positions");
  expect_error(bitnet("run" + m + "--trace-dir " + dir_->path("e") +
                      " --trace-values --trace-values-format hdf5"),
               1, "hdf5");
  expect_error(bitnet("run" + m + "--trace-dir /proc/no/such"), 1,
               "cannot create the trace folder");
  expect_error(test::run_command("env -u BITNET_TRACE_DIR " + test::bitnet_binary() + " run" + m +
                                 "--trace-values"),
               1, "need --trace-dir");
}

}  // namespace
}  // namespace bitnet
