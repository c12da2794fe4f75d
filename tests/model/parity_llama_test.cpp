// Parity of our forward pass with the pinned llama.cpp on synthetic `bitnet`-arch models.
//
// The reference runs its portable x86-64 CPU backend ("x64" variant: scalar and SSE2 code, no
// FMA), whose numerics our engine reproduces exactly (ggml_math.h, double-accumulated F16 dots,
// Q8_K activations): the per-position logits must be BIT-IDENTICAL, so argmax agrees at every
// position and greedy generation gives the same ids. (Against SIMD variants of the reference the
// sums run in other orders; crossval reports those differences with tolerances.)
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "model/context.h"
#include "model/weights.h"
#include "reference/llama_reference.h"
#include "synth/synth.h"
#include "test_util.h"

namespace bitnet::model {
namespace {

struct RowStats {
  double cosine = 0, max_abs = 0;
  bool argmax_match = false;
};

int argmax(const float* x, int64_t n) {
  int best = 0;
  for (int64_t i = 1; i < n; ++i) {
    if (x[i] > x[best]) best = static_cast<int>(i);
  }
  return best;
}

RowStats compare(const float* a, const float* b, int64_t n) {
  double dot = 0, na = 0, nb = 0, mx = 0;
  for (int64_t i = 0; i < n; ++i) {
    dot += double(a[i]) * b[i];
    na += double(a[i]) * a[i];
    nb += double(b[i]) * b[i];
    mx = std::max(mx, std::fabs(double(a[i]) - b[i]));
  }
  return {dot / std::sqrt(na * nb), mx, argmax(a, n) == argmax(b, n)};
}

std::string synth_model(const test::TempDir& dir, const std::string& preset, int layers,
                        gguf::TensorType wt, Arch arch, bool scales = false) {
  synth::SynthOptions o;
  o.config = *synth::preset_config(preset, arch);
  if (layers > 0) o.config.n_layers = layers;
  o.weight_type = wt;
  o.vocab_path = std::string(BITNET_REFERENCE_DIR) + "/models/ggml-vocab-llama-bpe.gguf";
  o.scale_tensors = scales;
  o.seed = 7;
  const std::string path = dir.path(preset + ".gguf");
  auto st = synth::write_synthetic_model(o, path);
  EXPECT_TRUE(st.ok()) << st.message();
  return path;
}

void check_parity(const std::string& path, const std::vector<std::string>& prompts, int n_gen) {
  reference::ReferenceSettings rs;
  rs.n_threads = 2;
  rs.cpu_variant = "x64";
  auto ref = reference::LlamaReference::load(path, rs);
  ASSERT_TRUE(ref.ok()) << ref.message();
  auto model = Model::load(path);
  ASSERT_TRUE(model.ok()) << model.message();
  const int64_t nv = (*model)->config().n_vocab;
  for (const auto& prompt : prompts) {
    auto ids = (*ref)->tokenize(prompt, true, false);
    ASSERT_TRUE(ids.ok());
    auto ref_logits = (*ref)->eval_logits(*ids);
    ASSERT_TRUE(ref_logits.ok()) << ref_logits.message();
    auto s = Context::create(**model, {.n_ctx = 512, .kv_f16 = true, .n_threads = 2});
    ASSERT_TRUE(s.ok());
    std::vector<float> ours;
    ASSERT_TRUE((*s)->eval(*ids, true, &ours).ok());
    ASSERT_EQ(ours.size(), ref_logits->size());
    double worst_cos = 1, worst_abs = 0;
    for (size_t p = 0; p < ids->size(); ++p) {
      RowStats st = compare(ours.data() + p * nv, ref_logits->data() + p * nv, nv);
      worst_cos = std::min(worst_cos, st.cosine);
      worst_abs = std::max(worst_abs, st.max_abs);
      EXPECT_TRUE(st.argmax_match) << "prompt '" << prompt << "' position " << p;
    }
    std::printf("parity '%s' (%zu tokens): min cosine %.8f, max |diff| %.3g\n", prompt.c_str(),
                ids->size(), worst_cos, worst_abs);
    EXPECT_EQ(worst_abs, 0.0) << "logits are not bit-identical to llama.cpp (x64 backend)";

    // Greedy generation: same ids.
    auto ref_gen = (*ref)->greedy(*ids, n_gen);
    ASSERT_TRUE(ref_gen.ok());
    (*s)->kv_cache().clear();
    std::vector<int32_t> gen;
    std::vector<float> logits;
    ASSERT_TRUE((*s)->eval(*ids, false, &logits).ok());
    for (int i = 0; i < n_gen; ++i) {
      const int32_t t = argmax(logits.data(), nv);
      gen.push_back(t);
      if (i + 1 < n_gen) {
        ASSERT_TRUE((*s)->eval(std::span(&t, 1), false, &logits).ok());
      }
    }
    EXPECT_EQ(gen, *ref_gen) << "prompt '" << prompt << "'";
  }
}

TEST(ParityLlama, TinyTq2) {
  test::TempDir dir;
  const auto path = synth_model(dir, "tiny", 0, gguf::TensorType::TQ2_0, Arch::kBitnet);
  check_parity(
      path, {"2+2=", "Hello", "Count: ", "The quick brown fox jumps over the lazy dog. 1 2 3 4 5"},
      32);
}

}  // namespace
}  // namespace bitnet::model

namespace bitnet::model {
namespace {

TEST(ParityLlama, TinyTq2WithScaleTensors) {
  test::TempDir dir;
  const auto path = synth_model(dir, "tiny", 0, gguf::TensorType::TQ2_0, Arch::kBitnet, true);
  check_parity(path, {"Hello", "Count: 1 2 3"}, 16);
}

TEST(ParityLlama, TinyTq1) {
  test::TempDir dir;
  const auto path = synth_model(dir, "tiny", 0, gguf::TensorType::TQ1_0, Arch::kBitnet);
  check_parity(path, {"2+2=", "Count: "}, 16);
}

// The official 2B4T shape (d=2560, 20 heads, 5 KV heads, f=6912, vocab 128256), 2 blocks.
TEST(ParityLlama, Shape2b4tTwoLayersTq2) {
  test::TempDir dir;
  const auto path = synth_model(dir, "2b4t", 2, gguf::TensorType::TQ2_0, Arch::kBitnet);
  check_parity(path, {"2+2=", "Hello", "Count: ", "The quick brown fox jumps over the lazy dog."},
               32);
}

}  // namespace
}  // namespace bitnet::model
