// The `bitnet` binary end to end: synth -> inspect -> run / chat / tokenize, and its errors.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "core/npy.h"
#include "test_keys.h"
#include "test_util.h"

namespace bitnet {
namespace {

using nlohmann::json;

class Cli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    model_ = dir_->path("tiny.gguf");
    auto r = test::run_command(test::bitnet_binary() +
                               " synth -q --preset tiny --arch bitnet-b1.58 --weights i2_s -o " +
                               model_);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static void TearDownTestSuite() { delete dir_; }
  static test::CommandResult bitnet(const std::string& args) {
    return test::run_command(test::bitnet_binary() + " " + args);
  }
  static test::TempDir* dir_;
  static std::string model_;
};
test::TempDir* Cli::dir_ = nullptr;
std::string Cli::model_;

TEST_F(Cli, InspectJsonShowsTheModel) {
  auto r = bitnet("inspect --json " + model_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["metadata"]["general.architecture"], "bitnet-b1.58");
  EXPECT_EQ(j["summary"]["model"]["n_layers"], 2);
  EXPECT_EQ(j["tensors"].size(), 24u);
  EXPECT_EQ(j["metadata"]["tokenizer.ggml.tokens"]["count"], 128256);
}

TEST_F(Cli, RunJsonHasIdsTextTimingsAndKernels) {
  auto r = bitnet("run -m " + model_ + " -p 'Count: 1 2 3' -n 8 --greedy --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["prompt_ids"][0], 128000);  // BOS
  EXPECT_EQ(j["generated_ids"].size(), 8u);
  EXPECT_TRUE(j["text"].is_string());
  EXPECT_GT(j["timings"]["decode_tok_s"].get<double>(), 0.0);
  EXPECT_TRUE(j["kernels"].is_string());
}

TEST_F(Cli, GreedyRunsAreIdenticalAcrossThreadsAndRuns) {
  std::string first;
  for (int threads : {1, 2, 2}) {
    auto r = bitnet("run -m " + model_ + " -p Hello -n 12 --greedy --json -t " +
                    std::to_string(threads));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto ids = json::parse(r.out)["generated_ids"].dump();
    if (first.empty()) first = ids;
    EXPECT_EQ(ids, first) << threads << " threads";
  }
}

TEST_F(Cli, DeterministicSamplingRepeats) {
  auto a = test::run_command("BITNET_DETERMINISTIC=1 BITNET_SEED=7 " + test::bitnet_binary() +
                             " run -m " + model_ + " -p Hi -n 10 --temperature 1.0 --json");
  auto b = test::run_command("BITNET_DETERMINISTIC=1 BITNET_SEED=7 " + test::bitnet_binary() +
                             " run -m " + model_ + " -p Hi -n 10 --temperature 1.0 --json -t 1");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(json::parse(a.out)["generated_ids"], json::parse(b.out)["generated_ids"]);
  EXPECT_EQ(json::parse(a.out)["seed"], 7);
}

TEST_F(Cli, DumpLogitsRowsAreEveryEvaluatedPosition) {
  const std::string npy = dir_->path("logits.npy");
  auto r =
      bitnet("run -m " + model_ + " -p 'Count: 1 2' -n 5 --greedy --json --dump-logits " + npy);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  auto a = read_npy_f32(npy);
  ASSERT_TRUE(a.ok()) << a.message();
  ASSERT_EQ(a->shape.size(), 2u);
  // Every prompt position, then one row per decode step (the last token is not evaluated).
  EXPECT_EQ(a->shape[0],
            static_cast<int64_t>(j["prompt_ids"].size() + j["generated_ids"].size() - 1));
  EXPECT_EQ(a->shape[1], 128256);
  // The greedy choice at the last prompt row is the first generated token.
  const float* row = a->data.data() + (j["prompt_ids"].size() - 1) * 128256;
  int best = 0;
  for (int i = 1; i < 128256; ++i) best = row[i] > row[best] ? i : best;
  EXPECT_EQ(best, j["generated_ids"][0]);
}

TEST_F(Cli, ChatKeepsTheConversation) {
  auto r = test::run_command("printf 'Hello\\nHow are you?\\n/exit\\n' | " + test::bitnet_binary() +
                             " chat -m " + model_ + " -n 4 --greedy -v");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Two turns answered; the second reuses the first turn's cached tokens.
  size_t turns = 0;
  for (size_t at = 0; (at = r.err.find("prompt tokens (", at)) != std::string::npos; ++at) ++turns;
  EXPECT_EQ(turns, 2u) << r.err;
  EXPECT_NE(r.err.find("reused"), std::string::npos);
  EXPECT_EQ(r.err.find("(0 reused)", r.err.find("(0 reused)") + 1), std::string::npos) << r.err;
}

// An explicit -n is honoured, also when it equals run's default (chat's own default is 256).
TEST_F(Cli, ChatHonoursAnExplicitMaxTokens) {
  for (const char* n : {"3", "32"}) {
    auto r = test::run_command("printf 'Hello\\n/exit\\n' | " + test::bitnet_binary() +
                               " chat -m " + model_ + " -n " + n + " --greedy -v");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // Unless the model ends its reply first (an end-of-generation token), it stops at -n.
    if (r.err.find("stop: eog") != std::string::npos) continue;
    EXPECT_NE(r.err.find(std::string(" ") + n + " generated"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("stop: max_tokens"), std::string::npos) << r.err;
  }
}

// llama.cpp's sampler chain applies the repetition penalty before its greedy pick: each token
// is the argmax of its step's logits after the tokens among the last 64 (prompt included) have
// their logits divided by the penalty (positive) or multiplied by it (negative). Recomputed here
// from the dumped logits of every step.
TEST_F(Cli, GreedyAppliesTheRepeatPenalty) {
  const std::string npy = dir_->path("penalized.npy");
  const std::string base = "run -m " + model_ + " -p 'hello hello' -n 24 --greedy --json";
  auto plain = bitnet(base);
  auto pen = bitnet(base + " --repeat-penalty 1.5 --dump-logits " + npy);
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  ASSERT_EQ(pen.exit_code, 0) << pen.err;
  const json a = json::parse(plain.out), b = json::parse(pen.out);
  EXPECT_NE(a["generated_ids"], b["generated_ids"]);  // the tiny model repeats itself otherwise
  auto logits = read_npy_f32(npy);
  ASSERT_TRUE(logits.ok()) << logits.message();
  std::vector<int> history = b["prompt_ids"].get<std::vector<int>>();
  const auto gen = b["generated_ids"].get<std::vector<int>>();
  const int64_t nv = logits->shape[1];
  for (size_t i = 0; i < gen.size(); ++i) {
    const float* row = logits->data.data() + (history.size() - 1) * static_cast<size_t>(nv);
    std::set<int> seen(history.end() - std::min<size_t>(history.size(), 64), history.end());
    int best = -1;
    float best_l = 0;
    for (int t = 0; t < nv; ++t) {
      float l = row[t];
      if (seen.count(t) != 0) l = l > 0 ? l / 1.5f : l * 1.5f;
      if (best < 0 || l > best_l) best = t, best_l = l;
    }
    ASSERT_EQ(best, gen[i]) << "step " << i;
    history.push_back(gen[i]);
  }
}

// --verify-kernels 1 in a real run: a kernel broken on purpose (one ulp off in what it writes;
// tests/cli/broken_kernels.cpp) stops `run` with a one-line error naming what broke, and the
// same program with nothing broken runs to the end.
TEST_F(Cli, VerifyKernelsStopsARunWithABrokenKernel) {
  const std::string prog =
      std::string(BITNET_EMULATOR) + BITNET_BINARY_DIR + "/bin/broken_kernels ";
  const std::string args = " run -m " + model_ + " -p 'Count: 1 2 3' -n 4 --greedy";
  auto ok = test::run_command(prog + "none" + args + " --verify-kernels 1");
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  const std::pair<const char*, const char*> cases[] = {
      {"ternary", "I2_S ["},
      {"float", "F16 ["},
      {"rms_norm", "RMSNorm kernel"},
      {"relu_sqr_mul", "ReLU^2 kernel"},
      {"softmax", "attention scores"},
      {"attention_values", "attention values kernel"},
      {"f16_conversion", "f16 conversion kernel"}};
  for (const auto& [kernel, named] : cases) {
    // Without verification the broken kernel goes unnoticed (the run succeeds)...
    auto silent = test::run_command(prog + kernel + args);
    EXPECT_EQ(silent.exit_code, 0) << kernel << ": " << silent.err;
    // ...with it, the first token's checks stop the run.
    auto r = test::run_command(prog + kernel + args + " --verify-kernels 1");
    EXPECT_EQ(r.exit_code, 1) << kernel << ": " << r.err;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << kernel << ": not one line: " << r.err;
    EXPECT_NE(r.err.find("kernel verification failed"), std::string::npos)
        << kernel << ": " << r.err;
    EXPECT_NE(r.err.find(named), std::string::npos) << kernel << ": " << r.err;
  }
}

TEST_F(Cli, TokenizeMatchesRun) {
  auto t = bitnet("tokenize -m " + model_ + " --prompt 'Count: 1 2 3' --json");
  ASSERT_EQ(t.exit_code, 0) << t.err;
  auto r = bitnet("run -m " + model_ + " -p 'Count: 1 2 3' -n 1 --greedy --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(t.out)["ids"], json::parse(r.out)["prompt_ids"]) << t.out;
}

// The kernel variant comes from --kernels, else BITNET_KERNELS (read by the CLI, which passes it
// down), and the run reports the one it used; a bad value names where it came from.
TEST_F(Cli, KernelsFromFlagOrEnvironment) {
  const std::string run = " run -m " + model_ + " -p hi -n 2 --greedy --json";
  auto r = test::run_command("BITNET_KERNELS=scalar " + test::bitnet_binary() + run);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["kernels"], "scalar");
  r = test::run_command("BITNET_KERNELS=avx9000 " + test::bitnet_binary() + run +
                        " --kernels scalar");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["kernels"], "scalar") << "the flag wins over the variable";
  r = test::run_command("BITNET_KERNELS=avx9000 " + test::bitnet_binary() + run);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.rfind("bitnet: error: BITNET_KERNELS: unknown kernel variant 'avx9000'", 0), 0u)
      << r.err;
  // bench reads the same flag and variable.
  const std::string bench = " bench -m " + model_ + " -p 4 -n 2 -t 1 -r 1 --json";
  r = test::run_command("BITNET_KERNELS=scalar " + test::bitnet_binary() + bench);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const json& row : json::parse(r.out)) EXPECT_EQ(row["kernels"], "scalar") << row.dump();
  r = test::run_command("BITNET_KERNELS=avx9000 " + test::bitnet_binary() + bench);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("BITNET_KERNELS: unknown kernel variant"), std::string::npos) << r.err;
  r = bitnet(bench + " --kernels avx9000");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("unknown kernel variant 'avx9000'"), std::string::npos) << r.err;
  // --parallel: sequences decoded together, reported beside the single sequence; bad counts fail.
  r = bitnet(bench + " --parallel 3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json par = json::parse(r.out).back();
  EXPECT_EQ(par["test"], "tg2x3");
  EXPECT_EQ(par["parallel"], 3);
  for (const char* bad : {" --parallel 0", " --parallel 257", " --parallel x"}) {
    r = bitnet(bench + bad);
    EXPECT_NE(r.exit_code, 0) << bad;
    EXPECT_NE(r.err.find("parallel"), std::string::npos) << bad << ": " << r.err;
  }
  // --depth: generation after an untimed prompt of that many positions; the test is named so.
  r = bitnet(bench + " --depth 5");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json deep = json::parse(r.out).back();
  EXPECT_EQ(deep["test"], "tg2@d5");
  EXPECT_EQ(deep["depth"], 5);
  r = bitnet(bench + " --depth -1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--depth must not be negative"), std::string::npos) << r.err;
  // BITNET_HUGEPAGES=1 (huge pages for packed weights) changes nothing but memory backing.
  r = test::run_command("BITNET_HUGEPAGES=1 " + test::bitnet_binary() + run);
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

// The LM head auto-selects the screened exact head, which gives the full head's greedy tokens;
// --draft ngram[:N] gives the same tokens again and reports its proposals; bad values fail.
TEST_F(Cli, ScreenedHeadAndDraftsKeepGreedyOutput) {
  const std::string run = " run -m " + model_ + " -p 'Count: 1 2 3' -n 24 --greedy --json";
  auto file = bitnet(run + " --head-type file");
  auto screened = bitnet(run);
  auto drafted = bitnet(run + " --draft ngram:4");
  ASSERT_EQ(file.exit_code, 0) << file.err;
  ASSERT_EQ(screened.exit_code, 0) << screened.err;
  ASSERT_EQ(drafted.exit_code, 0) << drafted.err;
  const json f = json::parse(file.out), s = json::parse(screened.out), d = json::parse(drafted.out);
  EXPECT_EQ(f["generated_ids"], s["generated_ids"]);
  EXPECT_EQ(f["generated_ids"], d["generated_ids"]);
  EXPECT_EQ(d["draft"]["max"], 4);
  EXPECT_TRUE(d["draft"].contains("accepted"));
  for (const char* bad :
       {" --draft ngram:0", " --draft ngram:65", " --draft lookup", " --draft ngram:x"}) {
    auto r = bitnet(run + bad);
    EXPECT_EQ(r.exit_code, 1) << bad;
    EXPECT_NE(r.err.find("--draft"), std::string::npos) << bad << ": " << r.err;
  }
  // crossval compares every logit: the screened head is refused there; bench's --top too when
  // negative.
  auto x = bitnet(" crossval -m " + model_ + " -p hi -n 1 --head-type screened --json " +
                  dir_->path("x.json"));
  EXPECT_NE(x.exit_code, 0);
  EXPECT_NE(x.err.find("--head-type 'screened'"), std::string::npos) << x.err;
  auto neg = bitnet(" bench -m " + model_ + " -p 4 -n 4 -t 1 -r 1 --top -1");
  EXPECT_EQ(neg.exit_code, 1);
  EXPECT_NE(neg.err.find("--top"), std::string::npos) << neg.err;
  // bench reports the rows the screened head computed exactly and the bytes read.
  auto b = bitnet(" bench -m " + model_ + " -p 4 -n 4 -t 1 -r 1 --json");
  ASSERT_EQ(b.exit_code, 0) << b.err;
  const json tg = json::parse(b.out).back();
  EXPECT_EQ(tg["head"], "screened");
  EXPECT_GT(tg["exact_head_rows_per_token"].get<double>(), 0.0);
  EXPECT_GT(tg["counted_bytes_per_token"].get<double>(), 0.0);
}

// synth's default vocabulary is the reference's, in BITNET_REFERENCE_DIR when that is set.
TEST_F(Cli, SynthDefaultVocabularyFollowsReferenceDir) {
  const std::string out = dir_->path("refdir.gguf");
  auto r = test::run_command("BITNET_REFERENCE_DIR=/nonexistent-reference-dir " +
                             test::bitnet_binary() + " synth -q --preset tiny -o " + out);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/nonexistent-reference-dir/models/ggml-vocab-llama-bpe.gguf"),
            std::string::npos)
      << r.err;
  r = test::run_command("BITNET_REFERENCE_DIR=" BITNET_REFERENCE_DIR " " + test::bitnet_binary() +
                        " synth -q --preset tiny -o " + out);
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

struct ErrorCase {
  std::string args;
  int exit_code;
  std::string expect;
};

TEST_F(Cli, BadInputsGiveOneLineErrors) {
  const std::string notgguf = dir_->path("not.gguf");
  test::run_command("echo hello > " + notgguf);
  const std::vector<ErrorCase> cases = {
      {"run -m /nonexistent.gguf -p hi", 1, "cannot open"},
      {"run -m " + notgguf + " -p hi", 1, "not a GGUF file"},
      {"run -m " + model_ + " -p 'one two three four five six seven eight nine ten' -c 4", 1,
       "more than the context length 4"},
      {"run -m " + model_ + " -p hi --kv-type q4", 1, "--kv-type 'q4'"},
      {"run -m " + model_ + " -p hi --kernels avx9000", 1, "unknown kernel variant"},
      {"run -m " + model_ + " -p hi --top-p 0", 1, "--top-p"},
      {"run -m " + model_ + " -p hi --temperature nan", 1, "--temperature must be a finite"},
      {"run -m " + model_ + " -p hi --top-p nan", 1, "--top-p must be a finite"},
      {"run -m " + model_ + " -p hi --min-p inf", 1, "--min-p must be a finite"},
      {"run -m " + model_ + " -p hi --repeat-penalty nan", 1, "--repeat-penalty must be a finite"},
      {"run -m " + model_ + " -p hi --bogus-flag", 2, "bogus-flag"},
      {"run -m " + model_ + " -p hi -n notanumber", 2, "notanumber"},
      {"run -p hi", 2, "--model"},
      {"frobnicate", 2, "frobnicate"},
      {"synth -o " + dir_->path("x.gguf") + " --weights q4_0", 1, "--weights 'q4_0'"},
      {"synth -o " + dir_->path("x.gguf") + " --arch gpt2", 1, "--arch 'gpt2'"},
      {"synth -o " + dir_->path("x.gguf") + " --arch llama --tied-head --untied-head", 1,
       "--untied-head and --tied-head exclude each other"},
      {"synth -o " + dir_->path("x.gguf") + " --preset huge", 1, "unknown preset 'huge'"},
      {"synth -o " + dir_->path("x.gguf") + " --heads 3", 1, "heads (3)"},
      {"inspect /nonexistent.gguf", 1, "cannot open"},
  };
  for (const auto& c : cases) {
    auto r = bitnet(c.args);
    EXPECT_EQ(r.exit_code, c.exit_code) << c.args << ": " << r.err;
    ASSERT_FALSE(r.err.empty()) << c.args;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << c.args << ": not one line: " << r.err;
    EXPECT_EQ(r.err.rfind("bitnet: error: ", 0), 0u) << c.args << ": " << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.args << ": " << r.err;
  }
}

// crossval / sweep --sign: a bad key stops the command before it runs anything, with one line
// naming the flag, the file and what is wrong (keys made here with OpenSSL, none committed).
TEST_F(Cli, SignKeyErrorsAreOneLine) {
  const auto ed = test::write_key_pair(dir_->path("sign-ed"));
  const auto ec = test::write_key_pair(dir_->path("sign-ec"), "EC");
  ASSERT_FALSE(ed.private_pem.empty());
  ASSERT_FALSE(ec.private_pem.empty());
  const std::string text = dir_->path("sign-text.pem");
  test::run_command("echo hello > " + text);
  const std::string missing = dir_->path("sign-missing.pem");
  const std::vector<std::pair<std::string, std::string>> keys = {
      {missing, "cannot open the key file"},
      {text, "not a PEM key file"},
      {ed.public_pem, "a public key; signing needs the private key"},
      {ec.private_pem, "key type EC, not Ed25519"},
  };
  for (const char* cmd : {"crossval -p hi -n 1", "sweep -n 1"}) {
    for (const auto& [key, expect] : keys) {
      const std::string receipt = dir_->path("signed.json");
      auto r = bitnet(std::string(cmd) + " -m " + model_ + " --json " + receipt + " --sign " + key);
      EXPECT_EQ(r.exit_code, 2) << cmd << " " << key << ": " << r.err;
      ASSERT_FALSE(r.err.empty()) << cmd << " " << key;
      EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "not one line: " << r.err;
      EXPECT_EQ(r.err.rfind("bitnet: error: --sign " + key + ": ", 0), 0u) << r.err;
      EXPECT_NE(r.err.find(expect), std::string::npos) << r.err;
      EXPECT_FALSE(std::filesystem::exists(receipt)) << "no receipt without a usable key";
    }
  }
}

}  // namespace
}  // namespace bitnet
