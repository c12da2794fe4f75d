// The screened exact head against the full exact head on a model, over the sweep prompts
// (crossval::default_sweep_cases): greedy generations, top-k sampled generations and the k
// largest logits of every prompt position must be identical, bit for bit; the screen must also
// have done its job (few rows computed exactly). Shared by the tiny-model test and the long
// 2B4T-shape one.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "core/fp16.h"
#include "crossval/crossval.h"
#include "generate/generator.h"
#include "model/context.h"
#include "synth/synth.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace bitnet::model::test {

// Makes exact and one-ulp near ties in every row of logits of a tied-head model: token_embd
// rows 2i+1 become copies of rows 2i, and in every other pair one element is one f16 unit in
// the last place off.
inline void make_rows_tie(const std::string& path) {
  auto f = gguf::File::open(path);
  ASSERT_TRUE(f.ok()) << f.message();
  const gguf::TensorInfo* t = f->find_tensor("token_embd.weight");
  ASSERT_NE(t, nullptr);
  ASSERT_EQ(t->type, gguf::TensorType::F16);
  const uint64_t k = t->dims[0], rows = t->dims[1];
  const std::span<const uint8_t> data = f->tensor_data(*t);
  std::vector<uint16_t> w(k * rows);
  std::memcpy(w.data(), data.data(), w.size() * 2);
  const auto offset = static_cast<std::streamoff>(data.data() - f->bytes().data());
  for (uint64_t r = 0; r + 1 < rows; r += 2) {
    std::copy_n(w.begin() + static_cast<std::ptrdiff_t>(r * k), k,
                w.begin() + static_cast<std::ptrdiff_t>((r + 1) * k));
    if (r % 4 == 2) w[(r + 1) * k + r % k] ^= 1;  // one ulp up or down
  }
  std::fstream out(path, std::ios::in | std::ios::out | std::ios::binary);
  out.seekp(offset);
  out.write(reinterpret_cast<const char*>(w.data()), static_cast<std::streamsize>(w.size() * 2));
  ASSERT_TRUE(out.good());
}

// A synthetic model of the given shape (n_layers 0: the preset's), llama-bpe vocabulary.
inline std::string make_model(const bitnet::test::TempDir& dir, const std::string& preset,
                              int n_layers, gguf::TensorType wt, Arch arch, uint64_t seed) {
  synth::SynthOptions o;
  o.config = *synth::preset_config(preset, arch);
  if (n_layers > 0) o.config.n_layers = static_cast<uint32_t>(n_layers);
  o.config.n_ctx_train = 1024;
  o.weight_type = wt;
  o.vocab_path = std::string(BITNET_REFERENCE_DIR) + "/models/ggml-vocab-llama-bpe.gguf";
  o.seed = seed;
  const std::string path =
      dir.path(preset + "-" + std::string(gguf::tensor_type_name(wt)) + ".gguf");
  auto st = synth::write_synthetic_model(o, path);
  EXPECT_TRUE(st.ok()) << st.message();
  return path;
}

inline void expect_screened_equals_file(const std::string& path, int min_tokens) {
  auto file = Model::load(path, {.head = HeadType::kFile});
  auto screened = Model::load(path, {.head = HeadType::kScreened});
  ASSERT_TRUE(file.ok()) << file.message();
  ASSERT_TRUE(screened.ok()) << screened.message();
  ASSERT_EQ((*screened)->head_type(), HeadType::kScreened);
  auto meta = gguf::File::open(path);
  ASSERT_TRUE(meta.ok());
  auto tok = tokenizer::Tokenizer::from_gguf(*meta);
  ASSERT_TRUE(tok.ok()) << tok.message();
  const int64_t nv = (*file)->config().n_vocab;
  ContextOptions co{.n_ctx = 256, .kv_f16 = true, .n_threads = 2};
  auto cf = Context::create(**file, co);
  auto cs = Context::create(**screened, co);
  ASSERT_TRUE(cf.ok() && cs.ok());
  int64_t closest_gap_positions = 0;
  for (const crossval::Case& c : crossval::default_sweep_cases()) {
    const std::vector<int32_t> prompt = tok->encode(c.prompt, {.add_special = true});
    SCOPED_TRACE(c.prompt);
    // Generations: greedy, and top-k sampling with a fixed seed.
    for (const bool greedy : {true, false}) {
      generate::GenerateOptions go;
      go.max_tokens = std::max(c.max_tokens, min_tokens);
      go.stop_at_eog = false;
      go.sampler.greedy = greedy;
      go.sampler.top_k = 40;
      go.sampler.seed = 7;
      (*cf)->kv_cache().clear();
      (*cs)->kv_cache().clear();
      auto a = generate::generate(**cf, *tok, prompt, go);
      auto b = generate::generate(**cs, *tok, prompt, go);
      ASSERT_TRUE(a.ok() && b.ok());
      EXPECT_EQ(a->generated, b->generated) << (greedy ? "greedy" : "top-k 40");
    }
    // The n largest logits of every prompt position.
    for (const int n : {1, 40}) {
      (*cf)->kv_cache().clear();
      (*cs)->kv_cache().clear();
      std::vector<float> lf, ls;
      ASSERT_TRUE((*cf)->eval(prompt, true, &lf).ok());
      ASSERT_TRUE((*cs)->eval(prompt, true, &ls, 0, n).ok());
      for (size_t p = 0; p < prompt.size(); ++p) {
        const float* f = lf.data() + static_cast<int64_t>(p) * nv;
        const float* s = ls.data() + static_cast<int64_t>(p) * nv;
        const auto want = bitnet::test::top_indices(f, nv, n + 1);
        ASSERT_EQ(std::vector<int64_t>(want.begin(), want.end() - 1),
                  bitnet::test::top_indices(s, nv, n))
            << "position " << p << ", n " << n;
        for (int i = 0; i < n; ++i) {
          uint32_t x, y;
          std::memcpy(&x, f + want[static_cast<size_t>(i)], 4);
          std::memcpy(&y, s + want[static_cast<size_t>(i)], 4);
          ASSERT_EQ(x, y) << "position " << p << ", logit " << want[static_cast<size_t>(i)];
        }
        // Positions whose n-th and (n+1)-th logits are within a thousandth: the near ties.
        if (f[want[static_cast<size_t>(n - 1)]] - f[want[static_cast<size_t>(n)]] < 1e-3f)
          ++closest_gap_positions;
      }
    }
  }
  const ForwardStats& st = (*cs)->stats();
  EXPECT_GT(st.screened_rows, 0);
  EXPECT_LT(st.exact_rows, st.screened_rows * (nv / 10)) << "the screen let most rows through";
  std::printf(
      "screened head: %.1f rows computed exactly per row of logits (of %lld); %lld "
      "positions with the n-th and next logit within 1e-3\n",
      static_cast<double>(st.exact_rows) / static_cast<double>(st.screened_rows),
      static_cast<long long>(nv), static_cast<long long>(closest_gap_positions));
}

}  // namespace bitnet::model::test
