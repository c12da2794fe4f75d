// Synthetic models: the same ternary weights in every format, determinism, and the official
// 2B4T layout.
#include "synth/synth.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>

#include "gguf/reader.h"
#include "gguf/writer.h"
#include "model/arch.h"
#include "quant/i2s.h"
#include "quant/tq1_0.h"
#include "quant/tq2_0.h"
#include "test_util.h"

namespace bitnet::synth {
namespace {

std::string vocab() {
  return std::string(BITNET_REFERENCE_DIR) + "/models/ggml-vocab-llama-bpe.gguf";
}

std::string write(const test::TempDir& dir, const std::string& name, const std::string& preset,
                  gguf::TensorType wt, uint64_t seed = 5,
                  model::Arch arch = model::Arch::kBitnetB158) {
  SynthOptions o;
  o.config = *preset_config(preset, arch);
  o.weight_type = wt;
  o.vocab_path = vocab();
  o.seed = seed;
  const auto path = dir.path(name);
  auto st = write_synthetic_model(o, path);
  EXPECT_TRUE(st.ok()) << st.message();
  return path;
}

// Decodes a projection to ternary values (and its scale) whatever its format.
std::vector<int8_t> ternary_of(const gguf::File& f, const std::string& name, float* scale) {
  const gguf::TensorInfo* t = f.find_tensor(name);
  auto bytes = f.tensor_data(*t);
  std::vector<int8_t> v(t->n_elements);
  switch (t->type) {
    case gguf::TensorType::I2_S:
      EXPECT_TRUE(quant::unpack_i2s(bytes.data(), v.size(), v.data()).ok());
      *scale = quant::i2s_scale(bytes.data(), v.size());
      break;
    case gguf::TensorType::TQ2_0:
      EXPECT_TRUE(quant::unpack_tq2_0(bytes.data(), v.size(), v.data()).ok());
      *scale = quant::tq2_0_block_scale(bytes.data(), 0);
      break;
    case gguf::TensorType::TQ1_0:
      EXPECT_TRUE(quant::unpack_tq1_0(bytes.data(), v.size(), v.data()).ok());
      *scale = quant::tq1_0_block_scale(bytes.data(), 0);
      break;
    default: {
      std::vector<float> x(v.size());
      std::memcpy(x.data(), bytes.data(), x.size() * 4);  // F32
      *scale = 0;
      for (float a : x) *scale = std::max(*scale, std::fabs(a));
      for (size_t i = 0; i < x.size(); ++i) v[i] = static_cast<int8_t>(x[i] / *scale);
    }
  }
  return v;
}

TEST(Synth, SameTernaryWeightsInEveryFormat) {
  test::TempDir dir;
  std::map<std::string, std::string> files = {
      {"i2_s", write(dir, "a.gguf", "tiny", gguf::TensorType::I2_S)},
      {"tq2_0", write(dir, "b.gguf", "tiny", gguf::TensorType::TQ2_0)},
      {"tq1_0", write(dir, "c.gguf", "tiny", gguf::TensorType::TQ1_0)},
      {"f32", write(dir, "d.gguf", "tiny", gguf::TensorType::F32)}};
  std::vector<int8_t> first;
  float first_scale = 0;
  for (const auto& [fmt, path] : files) {
    auto f = gguf::File::open(path);
    ASSERT_TRUE(f.ok()) << f.message();
    float scale = 0;
    auto v = ternary_of(*f, "blk.1.ffn_down.weight", &scale);
    if (first.empty()) {
      first = v;
      first_scale = scale;
      continue;
    }
    EXPECT_EQ(v, first) << fmt;
    EXPECT_EQ(scale, first_scale) << fmt;
  }
  // A power of two, so every format stores it exactly.
  int e = 0;
  EXPECT_EQ(std::frexp(first_scale, &e), 0.5f);
}

TEST(Synth, DeterministicPerSeed) {
  test::TempDir dir;
  auto read_all = [](const std::string& p) {
    auto r = test::run_command("sha256sum " + p);
    return r.out.substr(0, 64);
  };
  const auto a =
      read_all(write(dir, "a.gguf", "tiny", gguf::TensorType::TQ2_0, 9, model::Arch::kBitnet));
  const auto b =
      read_all(write(dir, "b.gguf", "tiny", gguf::TensorType::TQ2_0, 9, model::Arch::kBitnet));
  const auto c =
      read_all(write(dir, "c.gguf", "tiny", gguf::TensorType::TQ2_0, 10, model::Arch::kBitnet));
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

// `bitnet synth --arch llama`: llama.* keys, no sub-norm tensors, and an F16 output.weight (the
// LM head of llama.cpp's llama graph) unless --tied-head.
TEST(SynthLlama, LayoutWithAndWithoutTheHead) {
  test::TempDir dir;
  for (const bool tied : {false, true}) {
    const auto path = dir.path(tied ? "tied.gguf" : "untied.gguf");
    auto r = test::run_command(test::bitnet_binary() + " synth -q --arch llama --weights tq1_0 " +
                               (tied ? "--tied-head " : "") + "-o " + path);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto f = gguf::File::open(path);
    ASSERT_TRUE(f.ok()) << f.message();
    EXPECT_EQ(f->architecture(), "llama");
    EXPECT_EQ(*f->get_uint("llama.embedding_length"), 256u);
    EXPECT_EQ(*f->get_uint("llama.rope.dimension_count"), 64u);
    EXPECT_EQ(*f->get_uint("general.file_type"), 36u);
    EXPECT_EQ(f->find_tensor("blk.0.attn_sub_norm.weight"), nullptr);
    EXPECT_EQ(f->find_tensor("blk.1.ffn_sub_norm.weight"), nullptr);
    EXPECT_EQ(f->find_tensor("blk.1.ffn_down.weight")->type, gguf::TensorType::TQ1_0);
    // token_embd, output_norm, 2 x (2 norms + 7 projections), and the head when untied.
    EXPECT_EQ(f->tensors().size(), tied ? 20u : 21u);
    const gguf::TensorInfo* head = f->find_tensor("output.weight");
    if (tied) {
      EXPECT_EQ(head, nullptr);
    } else {
      ASSERT_NE(head, nullptr);
      EXPECT_EQ(head->type, gguf::TensorType::F16);
      EXPECT_EQ(head->dims, (std::vector<uint64_t>{256, 128256}));
    }
  }
}

// Laid out like the official ggml-model-i2_s.gguf.
void expect_official_2b4t_layout(const std::string& path) {
  auto f = gguf::File::open(path);
  ASSERT_TRUE(f.ok()) << f.message();
  EXPECT_EQ(f->architecture(), "bitnet-b1.58");
  EXPECT_EQ(*f->get_uint("bitnet-b1.58.embedding_length"), 2560u);
  EXPECT_EQ(*f->get_uint("bitnet-b1.58.block_count"), 30u);
  EXPECT_EQ(*f->get_uint("bitnet-b1.58.attention.head_count"), 20u);
  EXPECT_EQ(*f->get_uint("bitnet-b1.58.attention.head_count_kv"), 5u);
  EXPECT_EQ(*f->get_uint("bitnet-b1.58.feed_forward_length"), 6912u);
  EXPECT_EQ(*f->get_uint("bitnet-b1.58.context_length"), 4096u);
  EXPECT_EQ(*f->get_number("bitnet-b1.58.rope.freq_base"), 500000.0);
  EXPECT_EQ(*f->get_uint("general.file_type"), 40u);
  EXPECT_EQ(*f->get_string("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(f->find("tokenizer.ggml.pre"), nullptr);  // as in the official file
  ASSERT_EQ(f->tensors().size(), 332u);
  std::map<gguf::TensorType, int> by_type;
  for (const auto& t : f->tensors()) {
    by_type[t.type]++;
    if (t.type == gguf::TensorType::I2_S) {
      EXPECT_EQ(t.n_bytes, t.n_elements / 4 + 32) << t.name;
    }
  }
  EXPECT_EQ(by_type[gguf::TensorType::I2_S], 210);
  EXPECT_EQ(by_type[gguf::TensorType::F32], 121);
  EXPECT_EQ(by_type[gguf::TensorType::F16], 1);
  const gguf::TensorInfo* e = f->find_tensor("token_embd.weight");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->type, gguf::TensorType::F16);
  EXPECT_EQ(e->dims, (std::vector<uint64_t>{2560, 128256}));
  EXPECT_EQ(f->find_tensor("output.weight"), nullptr);
  EXPECT_EQ(f->find_tensor("blk.29.ffn_down.weight")->dims, (std::vector<uint64_t>{6912, 2560}));
  EXPECT_EQ(f->find_tensor("blk.0.attn_k.weight")->dims, (std::vector<uint64_t>{2560, 640}));
  // And inspect --json shows it.
  auto j = test::run_command(test::bitnet_binary() + " inspect --json " + path);
  ASSERT_EQ(j.exit_code, 0) << j.err;
  EXPECT_NE(j.out.find("\"tensor_count\": 332"), std::string::npos);
  EXPECT_NE(j.out.find("\"I2_S\""), std::string::npos);
}

// `bitnet synth --preset 2b4t --weights i2_s`, and the same model converted from its Hugging Face
// checkpoint form (BitNetForCausalLM, packed) by `bitnet convert`.
TEST(Synth2b4t, OfficialLayout) {
  test::TempDir dir;
  const auto path = dir.path("2b4t.gguf");
  auto r = test::run_command(test::bitnet_binary() + " synth -q --preset 2b4t --weights i2_s -o " +
                             path);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_official_2b4t_layout(path);
  r = test::run_command(test::bitnet_binary() + " synth -q --preset 2b4t --format hf -o " +
                        dir.path("hf"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto converted = dir.path("converted.gguf");
  r = test::run_command(test::bitnet_binary() + " convert " + dir.path("hf") + " -o " + converted);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_official_2b4t_layout(converted);
}

// The presets carry the published config.json values (see the comments in synth.cpp for which
// were not confirmed). Metadata only: the full-size files are gigabytes.
TEST(Presets, CarryThePublishedConfigs) {
  struct Expected {
    std::string_view name, model;
    model::Arch arch;
    uint32_t d, layers, heads, kv_heads, ff, ctx, n_vocab;
    float rope_base, eps;
    bool untied;
  };
  using model::Arch;
  const Expected expected[] = {
      {"2b4t", "BitNet-b1.58-2B-4T", Arch::kBitnetB158, 2560, 30, 20, 5, 6912, 4096, 128256,
       500000.0f, 1e-5f, false},
      {"falcon3-1b", "Falcon3-1B-Instruct-1.58bit", Arch::kLlama, 2048, 18, 8, 4, 8192, 8192,
       131072, 1000042.0f, 1e-6f, true},
      {"falcon3-3b", "Falcon3-3B-Instruct-1.58bit", Arch::kLlama, 3072, 22, 12, 4, 9216, 32768,
       131072, 1000042.0f, 1e-6f, true},
      {"falcon3-7b", "Falcon3-7B-Instruct-1.58bit", Arch::kLlama, 3072, 28, 12, 4, 23040, 32768,
       131072, 1000042.0f, 1e-6f, true},
      {"falcon3-10b", "Falcon3-10B-Instruct-1.58bit", Arch::kLlama, 3072, 40, 12, 4, 23040, 32768,
       131072, 1000042.0f, 1e-6f, true},
      {"llama3-8b", "Llama3-8B-1.58-100B-tokens", Arch::kLlama, 4096, 32, 32, 8, 14336, 8192,
       128256, 500000.0f, 1e-5f, true},
      {"bitnet-large", "bitnet_b1_58-large", Arch::kBitnet, 1536, 24, 16, 16, 4096, 2048, 32002,
       10000.0f, 1e-5f, false},
      {"bitnet-3b", "bitnet_b1_58-3B", Arch::kBitnet, 3200, 26, 32, 32, 8640, 2048, 32002, 10000.0f,
       1e-5f, false},
  };
  EXPECT_EQ(presets().size(), std::size(expected) + 1);  // and tiny
  for (const Expected& e : expected) {
    SCOPED_TRACE(std::string(e.name));
    const Preset* p = find_preset(e.name);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->model, e.model);
    EXPECT_EQ(p->arch, e.arch);
    EXPECT_EQ(p->config.n_embd, e.d);
    EXPECT_EQ(p->config.n_layers, e.layers);
    EXPECT_EQ(p->config.n_heads, e.heads);
    EXPECT_EQ(p->config.n_kv_heads, e.kv_heads);
    EXPECT_EQ(p->config.n_ff, e.ff);
    EXPECT_EQ(p->config.n_ctx_train, e.ctx);
    EXPECT_EQ(p->n_vocab, e.n_vocab);
    EXPECT_EQ(p->config.rope_freq_base, e.rope_base);
    EXPECT_EQ(p->config.rms_eps, e.eps);
    EXPECT_EQ(p->untied_head, e.untied);
    // Each published shape is told apart from every other one.
    model::ModelConfig c = p->config;
    c.n_vocab = e.n_vocab;
    EXPECT_EQ(match_published_shape(c), p);
    c.n_layers = 1;
    EXPECT_EQ(match_published_shape(c), nullptr);
  }
  model::ModelConfig tiny = find_preset("tiny")->config;
  tiny.n_vocab = 128256;
  EXPECT_EQ(match_published_shape(tiny), nullptr);  // not a published model
  EXPECT_FALSE(preset_config("falcon-e-1b", Arch::kLlama).ok());
}

// Padding the vocabulary: the reference's Llama 2 SentencePiece vocabulary (32000 tokens) padded
// to bitnet_b1_58's 32002 with unused tokens, as llama.cpp's converter does; a vocabulary larger
// than the target is refused.
TEST(Presets, PadsTheVocabularyToThePublishedSize) {
  test::TempDir dir;
  SynthOptions o;
  o.config = *preset_config("tiny", model::Arch::kBitnet);
  o.vocab_path = std::string(BITNET_REFERENCE_DIR) + "/models/ggml-vocab-llama-spm.gguf";
  o.pad_vocab_to = 32002;
  ASSERT_TRUE(write_synthetic_model(o, dir.path("spm.gguf")).ok());
  auto f = gguf::File::open(dir.path("spm.gguf"));
  ASSERT_TRUE(f.ok()) << f.message();
  const auto& tokens = f->find("tokenizer.ggml.tokens")->as_array()->items;
  ASSERT_EQ(tokens.size(), 32002u);
  EXPECT_EQ(*tokens[32001].as_string(), "[PAD32001]");
  EXPECT_EQ(*f->find("tokenizer.ggml.token_type")->as_array()->items[32000].as_int(), 5);
  EXPECT_EQ(f->find("tokenizer.ggml.scores")->as_array()->items.size(), 32002u);
  EXPECT_EQ(*f->get_uint("bitnet.vocab_size"), 32002u);
  EXPECT_EQ(f->find_tensor("token_embd.weight")->dims, (std::vector<uint64_t>{256, 32002}));

  o.vocab_path = vocab();  // 128256 tokens
  auto st = write_synthetic_model(o, dir.path("big.gguf"));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("has 128256 tokens, more than the 32002"), std::string::npos);
}

// Every preset end to end through the CLI: synth (its default family, vocabulary and head) ->
// inspect -> run --greedy, identical over 1 and 2 threads. One block and narrower, but keeping
// what sets each preset apart: head dimension, GQA ratio, tied or untied head, vocabulary.
struct PresetRun {
  const char* preset;
  const char* shrink;  // overrides that make it small
  const char* arch;
  uint32_t head_dim, gqa, n_vocab;
  bool tied;
  const char* pre;  // tokenizer.ggml.pre written ("" for none, as in the official 2B4T file)
};

class PresetCli : public ::testing::TestWithParam<PresetRun> {};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST_P(PresetCli, SynthInspectRunDeterministic) {
  const PresetRun& p = GetParam();
  test::TempDir dir;
  const auto path = dir.path("m.gguf");
  const std::string bin = test::bitnet_binary();
  auto s =
      test::run_command(bin + " synth -q --preset " + p.preset + " " + p.shrink + " -o " + path);
  ASSERT_EQ(s.exit_code, 0) << s.err;

  auto i = test::run_command(bin + " inspect --json " + path);
  ASSERT_EQ(i.exit_code, 0) << i.err;
  const auto j = nlohmann::json::parse(i.out);
  const auto& m = j["summary"]["model"];
  EXPECT_EQ(m["arch"], p.arch);
  EXPECT_EQ(m["n_layers"], 1);
  EXPECT_EQ(m["head_dim"], p.head_dim);
  EXPECT_EQ(m["n_heads"].get<uint32_t>() / m["n_kv_heads"].get<uint32_t>(), p.gqa);
  EXPECT_EQ(m["n_vocab"], p.n_vocab);
  EXPECT_EQ(m["tied_head"], p.tied);
  EXPECT_TRUE(m["published_shape"].is_null());  // one block: no published model's shape
  const auto& meta = j["metadata"];
  EXPECT_EQ(meta.contains("tokenizer.ggml.pre") ? meta["tokenizer.ggml.pre"].get<std::string>()
                                                : std::string(),
            p.pre);

  // The same tokens and the same logits, bit for bit, whatever the thread count.
  std::string out[2], logits[2];
  for (int t = 1; t <= 2; ++t) {
    const auto npy = dir.path("logits" + std::to_string(t) + ".npy");
    auto r = test::run_command(bin + " run -m " + path +
                               " -p \"Hello there\" -n 4 --greedy --json --dump-logits " + npy +
                               " --threads " + std::to_string(t));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto run = nlohmann::json::parse(r.out);
    EXPECT_EQ(run["generated_ids"].size(), 4u);
    out[t - 1] = run["generated_ids"].dump();
    logits[t - 1] = read_bytes(npy);
  }
  EXPECT_EQ(out[0], out[1]);
  EXPECT_FALSE(logits[0].empty());
  EXPECT_TRUE(logits[0] == logits[1]) << "logits differ between 1 and 2 threads";
}

INSTANTIATE_TEST_SUITE_P(
    AllPresets, PresetCli,
    ::testing::Values(
        PresetRun{"tiny", "--layers 1", "bitnet-b1.58", 64, 2, 128256, true, ""},
        PresetRun{"2b4t", "--layers 1 --n-embd 512 --heads 4 --kv-heads 1 --n-ff 512",
                  "bitnet-b1.58", 128, 4, 128256, true, ""},
        PresetRun{"falcon3-1b", "--layers 1 --n-embd 512 --heads 2 --kv-heads 1 --n-ff 512",
                  "llama", 256, 2, 131072, false, "falcon3"},
        PresetRun{"falcon3-3b", "--layers 1 --n-embd 768 --heads 3 --kv-heads 1 --n-ff 512",
                  "llama", 256, 3, 131072, false, "falcon3"},
        PresetRun{"falcon3-7b", "--layers 1 --n-embd 768 --heads 3 --kv-heads 1 --n-ff 512",
                  "llama", 256, 3, 131072, false, "falcon3"},
        PresetRun{"falcon3-10b", "--layers 1 --n-embd 768 --heads 3 --kv-heads 1 --n-ff 512",
                  "llama", 256, 3, 131072, false, "falcon3"},
        PresetRun{"llama3-8b", "--layers 1 --n-embd 512 --heads 4 --kv-heads 1 --n-ff 512", "llama",
                  128, 4, 128256, false, "llama-bpe"},
        // The 1bitLLM shapes keep their odd head dimensions (96, 100) and no GQA.
        PresetRun{"bitnet-large", "--layers 1 --n-embd 384 --heads 4 --kv-heads 4 --n-ff 512",
                  "bitnet", 96, 1, 32002, true, "default"},
        PresetRun{"bitnet-3b",
                  "--layers 1 --n-embd 400 --heads 4 --kv-heads 4 --n-ff 540 --weights f16",
                  "bitnet", 100, 1, 32002, true, "default"}),
    [](const ::testing::TestParamInfo<PresetRun>& param_info) {
      std::string n = param_info.param.preset;
      for (char& c : n) {
        if (c == '-') c = '_';
      }
      return n;
    });

// `bitnet inspect` names the family and, when the shape is a published model's, the model. The
// full-size files are gigabytes, and the naming reads only the hyper-parameters, so each file
// here is the published config.json's metadata without tensors.
TEST(Presets, InspectNamesFamilyAndPublishedShape) {
  test::TempDir dir;
  for (const Preset& p : presets()) {
    if (p.model.empty()) continue;
    SCOPED_TRACE(std::string(p.name));
    const std::string arch(model::arch_name(p.arch));
    auto key = [&](std::string_view k) { return model::hp_key(arch, k); };
    const auto& c = p.config;
    gguf::Writer w;
    w.set("general.architecture", gguf::Value(arch));
    w.set(key(model::hp::kVocabSize), gguf::Value(p.n_vocab));
    w.set(key(model::hp::kContextLength), gguf::Value(c.n_ctx_train));
    w.set(key(model::hp::kEmbeddingLength), gguf::Value(c.n_embd));
    w.set(key(model::hp::kBlockCount), gguf::Value(c.n_layers));
    w.set(key(model::hp::kFeedForwardLength), gguf::Value(c.n_ff));
    w.set(key(model::hp::kRopeDimensionCount), gguf::Value(c.head_dim()));
    w.set(key(model::hp::kHeadCount), gguf::Value(c.n_heads));
    w.set(key(model::hp::kHeadCountKv), gguf::Value(c.n_kv_heads));
    w.set(key(model::hp::kRopeFreqBase), gguf::Value(c.rope_freq_base));
    w.set(key(model::hp::kRmsEps), gguf::Value(c.rms_eps));
    const auto path = dir.path(std::string(p.name) + ".gguf");
    ASSERT_TRUE(w.begin(path).ok());
    ASSERT_TRUE(w.finish().ok());

    auto r = test::run_command(test::bitnet_binary() + " inspect " + path);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("  shape: " + std::string(p.model) + "\n"), std::string::npos) << r.out;
    EXPECT_NE(
        r.out.find("  family: " + arch + " (" + std::string(model::family_graph(p.arch)) + ")\n"),
        std::string::npos)
        << r.out;
    auto j = test::run_command(test::bitnet_binary() + " inspect --json " + path);
    ASSERT_EQ(j.exit_code, 0) << j.err;
    EXPECT_EQ(nlohmann::json::parse(j.out)["summary"]["model"]["published_shape"], p.model);
  }
}

}  // namespace
}  // namespace bitnet::synth
