// Parity of our forward pass with the pinned llama.cpp on synthetic `bitnet`-arch models, with
// zero tolerance.
//
// The reference runs its portable x86-64 CPU backend ("x64" variant: scalar and SSE2 code, no
// FMA), whose numerics our engine reproduces exactly (ggml_math.h, double-accumulated F16 dots,
// Q8_K activations). So every logit of every evaluated position must have the same bits: the
// prompt's rows (one batch) and each greedy decode step's row (one token at a time, each
// argmax fed back). A NaN anywhere fails, even where both engines produce it. (Against SIMD
// variants of the reference the sums run in other orders; crossval judges those with
// tolerances.)
//
// The matrix: projection weights TQ2_0 (with and without `.scale` tensors), TQ1_0, F16, F32;
// KV cache F16 and F32; 1 and 2 threads (ours and the reference's alike); each cell runs short
// prompts with 24 decode steps, and the TQ2_0 cells also a 560-token prompt with 40 decode
// steps, which crosses the block boundaries of the attention kernels and of the KV cache in
// both prefill and decode. The 2B4T-shaped case (2 blocks) checks the real dimensions. The
// families checked are the two upstream llama.cpp runs: `bitnet` (`bitnet-b1.58` exists only in
// bitnet.cpp's fork), and `llama` with ternary or float projections (TQ2_0, TQ1_0, F16; KV F16
// and F32; 1 and 2 threads; an untied output.weight head, and one tied cell; two of the TQ2_0
// cells also run the long context).
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdio>
#include <functional>
#include <optional>

#include "model/context.h"
#include "model/weights.h"
#include "reference/llama_reference.h"
#include "synth/synth.h"
#include "test_util.h"

namespace bitnet::model {
namespace {

int32_t argmax(const float* x, int64_t n) {
  int32_t best = 0;
  for (int64_t i = 1; i < n; ++i) {
    if (x[i] > x[best]) best = static_cast<int32_t>(i);
  }
  return best;
}

// The first logit that is NaN (in either engine) or whose bits differ, described in one line;
// nullopt when both are bit-identical and free of NaN. Rows are n_vocab wide.
std::optional<std::string> first_mismatch(const std::vector<float>& ours,
                                          const std::vector<float>& ref, int64_t nv) {
  char buf[200];
  if (ours.size() != ref.size()) {
    std::snprintf(buf, sizeof(buf), "ours has %zu logits, the reference %zu", ours.size(),
                  ref.size());
    return buf;
  }
  for (size_t i = 0; i < ours.size(); ++i) {
    const bool nan = std::isnan(ours[i]) || std::isnan(ref[i]);
    if (nan || std::bit_cast<uint32_t>(ours[i]) != std::bit_cast<uint32_t>(ref[i])) {
      std::snprintf(buf, sizeof(buf), "%s at row %lld, token %lld: ours %.9g, reference %.9g",
                    nan ? "NaN" : "bits differ", static_cast<long long>(i / nv),
                    static_cast<long long>(i % nv), ours[i], ref[i]);
      return buf;
    }
  }
  return std::nullopt;
}

struct Cell {
  std::string name;
  gguf::TensorType weights = gguf::TensorType::TQ2_0;
  bool scale_tensors = false;
  bool kv_f16 = true;
  int threads = 2;
  Arch arch = Arch::kBitnet;
  bool tied_head = false;     // llama: no output.weight (token_embd is the head)
  bool long_context = false;  // also the 560-token prompt
};

std::string synth_model(const test::TempDir& dir, const std::string& preset, int layers,
                        gguf::TensorType wt, bool scales, Arch arch = Arch::kBitnet,
                        bool tied_head = false) {
  synth::SynthOptions o;
  o.config = *synth::preset_config(preset, arch);
  if (layers > 0) o.config.n_layers = static_cast<uint32_t>(layers);
  o.weight_type = wt;
  o.vocab_path = std::string(BITNET_REFERENCE_DIR) + "/models/ggml-vocab-llama-bpe.gguf";
  o.scale_tensors = scales;
  if (arch == Arch::kLlama) o.untied_head = !tied_head;
  o.seed = 7;
  const std::string path = dir.path(preset + ".gguf");
  auto st = synth::write_synthetic_model(o, path);
  EXPECT_TRUE(st.ok()) << st.message();
  return path;
}

// Applied to our logits before the comparison: the tests of this test inject a fault with it.
using Tamper = std::function<void(std::vector<float>&)>;

// Evaluates `prompt` and n_gen greedy steps in both engines and compares every logit. Returns
// the first problem (ids or logits), nullopt when the two runs are identical.
std::optional<std::string> parity_problem(reference::LlamaReference& ref, const Model& model,
                                          const Cell& cell, const std::vector<int32_t>& prompt,
                                          int n_gen, const Tamper& tamper = {}) {
  const int64_t nv = model.config().n_vocab;
  std::vector<float> ref_logits;
  auto ref_gen = ref.greedy(prompt, n_gen, &ref_logits);
  if (!ref_gen.ok()) return "reference: " + ref_gen.message();

  auto ctx =
      Context::create(model, {.n_ctx = 1024, .kv_f16 = cell.kv_f16, .n_threads = cell.threads});
  if (!ctx.ok()) return "context: " + ctx.message();
  std::vector<float> ours, step;
  if (auto st = (*ctx)->eval(prompt, true, &ours); !st.ok()) return "prompt: " + st.message();
  std::vector<int32_t> gen;
  for (int i = 0; i < n_gen; ++i) {
    const int32_t t = argmax(ours.data() + (ours.size() / nv - 1) * nv, nv);
    gen.push_back(t);
    if (i + 1 == n_gen) break;
    if (auto st = (*ctx)->eval(std::span(&t, 1), false, &step); !st.ok()) {
      return "decode step " + std::to_string(i) + ": " + st.message();
    }
    ours.insert(ours.end(), step.begin(), step.end());
  }
  if (tamper) tamper(ours);
  if (auto m = first_mismatch(ours, ref_logits, nv)) {
    return *m + " (rows 0.." + std::to_string(prompt.size() - 1) + " are the prompt's)";
  }
  if (gen != *ref_gen) return std::string("greedy ids differ");
  return std::nullopt;
}

// Two short prompts (24 decode steps each) and, with `long_context`, 560 prompt tokens and 40
// decode steps.
void check_cell(const Cell& cell, const std::string& path, bool long_context) {
  reference::ReferenceSettings rs;
  rs.n_threads = cell.threads;
  rs.kv_f16 = cell.kv_f16;
  rs.cpu_variant = "x64";
  auto ref = reference::LlamaReference::load(path, rs);
  ASSERT_TRUE(ref.ok()) << ref.message();
  auto model = Model::load(path);
  ASSERT_TRUE(model.ok()) << model.message();
  std::vector<std::vector<int32_t>> prompts;
  for (const char* text : {"2+2=", "The quick brown fox jumps over the lazy dog. 1 2 3 4 5"}) {
    auto ids = (*ref)->tokenize(text, true, false);
    ASSERT_TRUE(ids.ok()) << ids.message();
    prompts.push_back(*ids);
  }
  for (const auto& p : prompts) {
    const auto problem = parity_problem(**ref, **model, cell, p, 24);
    EXPECT_FALSE(problem) << cell.name << ", " << p.size() << "-token prompt: " << *problem;
  }
  if (long_context) {
    // Ids spread over the vocabulary (deterministic), after BOS.
    std::vector<int32_t> p = {prompts[0][0]};
    for (int i = 1; i < 560; ++i) p.push_back((i * 7919 + 13) % 128000);
    const auto problem = parity_problem(**ref, **model, cell, p, 40);
    EXPECT_FALSE(problem) << cell.name << ", 560-token prompt: " << *problem;
  }
  std::printf("parity %s: every logit bit-identical%s\n", cell.name.c_str(),
              long_context ? " (short prompts and 560 + 40 positions)" : "");
}

class ParityMatrix : public ::testing::TestWithParam<Cell> {};

TEST_P(ParityMatrix, EveryLogitOfEveryStepIsBitIdentical) {
  const Cell& cell = GetParam();
  test::TempDir dir;
  const auto path =
      synth_model(dir, "tiny", 0, cell.weights, cell.scale_tensors, cell.arch, cell.tied_head);
  {  // the file is the family and head the cell names
    auto m = Model::load(path);
    ASSERT_TRUE(m.ok()) << m.message();
    EXPECT_EQ((*m)->config().arch, cell.arch);
    EXPECT_EQ((*m)->head_is_tied(), cell.arch != Arch::kLlama || cell.tied_head);
  }
  check_cell(cell, path, cell.long_context);
}

std::vector<Cell> matrix() {
  struct W {
    const char* name;
    gguf::TensorType t;
    bool scales;
  };
  const W weights[] = {{"TQ2_0", gguf::TensorType::TQ2_0, false},
                       {"TQ2_0_scales", gguf::TensorType::TQ2_0, true},
                       {"TQ1_0", gguf::TensorType::TQ1_0, false},
                       {"F16", gguf::TensorType::F16, false},
                       {"F32", gguf::TensorType::F32, false}};
  auto cell_name = [](const std::string& prefix, bool kv_f16, int threads) {
    return prefix + (kv_f16 ? "_kvF16_" : "_kvF32_") + std::to_string(threads) + "thread";
  };
  std::vector<Cell> cells;
  for (const W& w : weights) {
    for (bool kv_f16 : {true, false}) {
      for (int threads : {1, 2}) {
        // The long context runs with plain TQ2_0 weights (every KV type and thread count): the
        // attention and KV cache code it exercises does not depend on the projection type, and
        // the reference's full head over 600 positions takes ~15 s per cell.
        const bool long_context = w.t == gguf::TensorType::TQ2_0 && !w.scales;
        cells.push_back({cell_name(w.name, kv_f16, threads), w.t, w.scales, kv_f16, threads,
                         Arch::kBitnet, false, long_context});
      }
    }
  }
  // llama: the same grid over its projection types; the long context in two TQ2_0 cells (the
  // attention and KV cache code is shared with bitnet; what it adds is NORM RoPE at far
  // positions), and one cell with the head tied to token_embd.
  const W llama_weights[] = {{"TQ2_0", gguf::TensorType::TQ2_0, false},
                             {"TQ1_0", gguf::TensorType::TQ1_0, false},
                             {"F16", gguf::TensorType::F16, false}};
  for (const W& w : llama_weights) {
    for (bool kv_f16 : {true, false}) {
      for (int threads : {1, 2}) {
        const bool long_context = w.t == gguf::TensorType::TQ2_0 && kv_f16 == (threads == 2);
        cells.push_back({cell_name(std::string("llama_") + w.name, kv_f16, threads), w.t, false,
                         kv_f16, threads, Arch::kLlama, false, long_context});
      }
    }
  }
  cells.push_back({"llama_TQ2_0_tied_kvF16_2thread", gguf::TensorType::TQ2_0, false, true, 2,
                   Arch::kLlama, true, false});
  return cells;
}

INSTANTIATE_TEST_SUITE_P(Tiny, ParityMatrix, ::testing::ValuesIn(matrix()),
                         [](const auto& cell_info) { return cell_info.param.name; });

// The official 2B4T shape (d=2560, 20 heads, 5 KV heads, f=6912, vocab 128256), 2 blocks.
TEST(ParityLlama, Shape2b4tTwoLayersTq2) {
  test::TempDir dir;
  const Cell cell{"2b4t_2layers_TQ2_0"};
  const auto path = synth_model(dir, "2b4t", 2, cell.weights, false);
  check_cell(cell, path, false);
}

// The Llama3-8B-1.58 shape (d=4096, 32 heads, 8 KV heads, f=14336, vocab 128256, untied head),
// 2 blocks, llama arch: the widest published ternary shape, with both ternary types upstream
// llama.cpp reads. One test per type so that CTest can run them side by side.
void check_llama3_8b_two_layers(gguf::TensorType weights, const char* name) {
  test::TempDir dir;
  Cell cell{name};
  cell.weights = weights;
  cell.arch = Arch::kLlama;
  const auto path = synth_model(dir, "llama3-8b", 2, weights, false, Arch::kLlama);
  check_cell(cell, path, false);
}

TEST(ParityLlama, ShapeLlama3_8bTwoLayersTq2) {
  check_llama3_8b_two_layers(gguf::TensorType::TQ2_0, "llama3-8b_2layers_TQ2_0");
}

TEST(ParityLlama, ShapeLlama3_8bTwoLayersTq1) {
  check_llama3_8b_two_layers(gguf::TensorType::TQ1_0, "llama3-8b_2layers_TQ1_0");
}

// Tests of the test: one changed logit, in a prompt row or in a decode step's row, is found.
class ParityCheckCatches : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    path_ = synth_model(*dir_, "tiny", 0, gguf::TensorType::TQ2_0, false);
  }
  static void TearDownTestSuite() { delete dir_; }
  std::optional<std::string> run(const Tamper& tamper) {
    reference::ReferenceSettings rs;
    rs.n_threads = 2;
    rs.cpu_variant = "x64";
    auto ref = reference::LlamaReference::load(path_, rs);
    EXPECT_TRUE(ref.ok()) << ref.message();
    auto model = Model::load(path_);
    EXPECT_TRUE(model.ok()) << model.message();
    auto ids = (*ref)->tokenize("Hello", true, false);
    EXPECT_TRUE(ids.ok());
    return parity_problem(**ref, **model, Cell{}, *ids, 6, tamper);
  }
  static test::TempDir* dir_;
  static std::string path_;
};
test::TempDir* ParityCheckCatches::dir_ = nullptr;
std::string ParityCheckCatches::path_;

TEST_F(ParityCheckCatches, NothingWhenUntouched) { EXPECT_FALSE(run({})); }

TEST_F(ParityCheckCatches, ANanInOneDecodeLogit) {
  const auto problem = run([](std::vector<float>& l) { l[l.size() - 5] = NAN; });
  ASSERT_TRUE(problem);
  EXPECT_EQ(problem->rfind("NaN at row", 0), 0u) << *problem;
}

TEST_F(ParityCheckCatches, OneUlpInOnePromptLogit) {
  const auto problem = run([](std::vector<float>& l) { l[17] = std::nextafter(l[17], INFINITY); });
  ASSERT_TRUE(problem);
  EXPECT_EQ(problem->rfind("bits differ at row 0, token 17", 0), 0u) << *problem;
}

TEST(ParityCheck, ANanInBothEnginesStillFails) {
  std::vector<float> a = {1.f, NAN, 3.f}, b = a;
  EXPECT_TRUE(first_mismatch(a, b, 3));
  b[1] = a[1] = 2.f;
  EXPECT_FALSE(first_mismatch(a, b, 3));
  b[2] = -0.f;
  a[2] = 0.f;
  EXPECT_TRUE(first_mismatch(a, b, 3)) << "the sign of zero is a bit too";
}

}  // namespace
}  // namespace bitnet::model
