// bitnet convert: the checkpoint layouts against hand-worked examples of the published rules,
// round trips (synth --format hf -> convert gives byte for byte the file synth writes as GGUF,
// for every family, both weight flavours and every ternary type), the converted Llama-family
// TQ2_0 file cross-validated against the pinned llama.cpp, and bad checkpoints refused with
// one-line errors.
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "convert/hf_convert.h"
#include "convert/hf_layout.h"
#include "gguf/reader.h"
#include "gtest/gtest.h"
#include "synth/synth.h"
#include "test_util.h"

namespace bitnet::convert {
namespace {

using gguf::TensorType;
using model::Arch;
namespace fs = std::filesystem;

std::string vocab(bool spm) {
  return std::string(BITNET_REFERENCE_DIR) + "/models/ggml-vocab-llama-" + (spm ? "spm" : "bpe") +
         ".gguf";
}

synth::SynthOptions options(Arch arch, TensorType type) {
  synth::SynthOptions o;
  o.config = *synth::preset_config("tiny", arch);
  o.weight_type = type;
  // 1bitLLM's tokenizer is Llama 2's SentencePiece one (taken from a GGUF at convert time).
  o.vocab_path = vocab(arch == Arch::kBitnet);
  if (arch == Arch::kBitnetB158) o.pre_tokenizer = "none";  // as the official 2B4T file
  o.seed = 3;
  return o;
}

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// Packed uint8 [out/4, in]: output row i * out/4 + r is bits 2i..2i+1 of byte [r, c], value
// code - 1. Worked by hand for out = 8, in = 1: 0x24 = 00 10 01 00 and 0x19 = 00 01 10 01.
TEST(HfLayout, PackedCodesAreRowBlocked) {
  const uint8_t packed[2] = {0x24, 0x19};
  int8_t v[8];
  ASSERT_TRUE(unpack_hf_ternary(packed, 8, 1, v).ok());
  EXPECT_EQ(std::vector<int8_t>(v, v + 8), (std::vector<int8_t>{-1, 0, 0, 1, 1, 0, -1, -1}));
  uint8_t back[2];
  pack_hf_ternary(v, 8, 1, back);
  EXPECT_EQ(back[0], 0x24);
  EXPECT_EQ(back[1], 0x19);
  const uint8_t bad[2] = {0x03, 0x00};  // code 3
  EXPECT_NE(unpack_hf_ternary(bad, 8, 1, v).message().find("code 3"), std::string::npos);
}

// llama.cpp's permute: reshape(heads, 2, hd/2, k).swapaxes(1, 2): GGUF row h*hd + 2j + i is
// Hugging Face row h*hd + i*hd/2 + j. Two heads of 4 rows, one column holding the row number.
TEST(HfLayout, QkPermutationIsLlamaCpps) {
  std::vector<int8_t> rows = {0, 1, 2, 3, 4, 5, 6, 7};
  permute_qk_to_gguf(rows.data(), 8, 1, 2);
  EXPECT_EQ(rows, (std::vector<int8_t>{0, 2, 1, 3, 4, 6, 5, 7}));
  permute_qk_to_hf(rows.data(), 8, 1, 2);
  EXPECT_EQ(rows, (std::vector<int8_t>{0, 1, 2, 3, 4, 5, 6, 7}));
}

// Every family, packed and master weights, each ternary type: the converted file is the synth
// GGUF byte for byte (metadata, tensor order, names, types and data).
TEST(Convert, RoundTripIsByteIdentical) {
  test::TempDir dir;
  struct Case {
    Arch arch;
    bool packed;
    TensorType type;
  };
  const Case cases[] = {
      {Arch::kBitnetB158, true, TensorType::I2_S}, {Arch::kBitnetB158, false, TensorType::TQ2_0},
      {Arch::kLlama, true, TensorType::TQ2_0},     {Arch::kLlama, false, TensorType::TQ1_0},
      {Arch::kBitnet, true, TensorType::TQ1_0},    {Arch::kBitnet, false, TensorType::I2_S},
  };
  for (const Case& c : cases) {
    const std::string what = std::string(model::arch_name(c.arch)) +
                             (c.packed ? " packed " : " masters ") +
                             std::string(gguf::tensor_type_name(c.type));
    auto o = options(c.arch, c.type);
    if (c.arch == Arch::kLlama) o.untied_head = true;
    ASSERT_TRUE(synth::write_synthetic_model(o, dir.path("want.gguf")).ok()) << what;
    // One case sharded (1 MB files and an index), as large checkpoints are published.
    const uint64_t shard = c.arch == Arch::kLlama && !c.packed ? 1'000'000 : 5'000'000'000;
    auto wrote = synth::write_synthetic_hf(o, c.packed, dir.path("hf"), shard);
    ASSERT_TRUE(wrote.ok()) << what << ": " << wrote.message();
    EXPECT_EQ(*wrote, c.arch != Arch::kBitnet) << "tokenizer.json for byte-level BPE only";
    ConvertOptions co;
    co.type = c.type;
    if (c.arch == Arch::kBitnet) co.vocab_gguf = vocab(true);
    auto r = convert_hf(dir.path("hf"), dir.path("got.gguf"), co);
    ASSERT_TRUE(r.ok()) << what << ": " << r.message();
    EXPECT_EQ(r->packed, c.packed) << what;
    EXPECT_EQ(r->projections, 14) << what;
    EXPECT_TRUE(read_all(dir.path("want.gguf")) == read_all(dir.path("got.gguf"))) << what;
    EXPECT_EQ(fs::exists(dir.path("hf/model.safetensors.index.json")), shard < 5'000'000'000);
    fs::remove_all(dir.path("hf"));
  }
}

// The converted Llama-family checkpoint (Q/K permuted back, untied head) runs bit-identically
// with the pinned llama.cpp.
TEST(Convert, LlamaCheckpointCrossValidatesWithLlamaCpp) {
  test::TempDir dir;
  auto o = options(Arch::kLlama, TensorType::TQ2_0);
  o.untied_head = true;
  ASSERT_TRUE(synth::write_synthetic_hf(o, true, dir.path("hf")).ok());
  const std::string out = dir.path("llama.gguf"), receipt = dir.path("r.json");
  auto conv = test::run_command(test::bitnet_binary() + " convert " + dir.path("hf") + " -o " +
                                out + " --type tq2_0");
  ASSERT_EQ(conv.exit_code, 0) << conv.err;
  auto r = test::run_command(test::bitnet_binary() + " crossval -m " + out +
                             " -p 'Hello world' -n 3 --threads 2 -q --json " + receipt);
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  std::ifstream f(receipt);
  const auto j = nlohmann::json::parse(f);
  EXPECT_TRUE(j["summary"]["passed"].get<bool>());
  for (const auto& p : j["positions"]) EXPECT_EQ(p["max_abs"].get<double>(), 0.0);
}

// generation_config.json's ids win over the tokenizer files' (an EOS list: its first id).
TEST(Convert, GenerationConfigNamesEos) {
  test::TempDir dir;
  const auto o = options(Arch::kBitnetB158, TensorType::I2_S);
  ASSERT_TRUE(synth::write_synthetic_hf(o, true, dir.path("hf")).ok());
  std::ofstream(dir.path("hf/generation_config.json")) << R"({"eos_token_id": [128009, 128001]})";
  ASSERT_TRUE(convert_hf(dir.path("hf"), dir.path("m.gguf"), {}).ok());
  auto f = gguf::File::open(dir.path("m.gguf"));
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(*f->get_uint("tokenizer.ggml.eos_token_id"), 128009u);
  EXPECT_EQ(*f->get_uint("tokenizer.ggml.bos_token_id"), 128000u);
}

// A bad checkpoint: one line naming the problem, non-zero exit, no output file left behind.
TEST(Convert, BadCheckpointsAreOneLineErrors) {
  test::TempDir dir;
  const auto o = options(Arch::kLlama, TensorType::TQ2_0);
  const std::string good = dir.path("good");
  ASSERT_TRUE(synth::write_synthetic_hf(o, true, good).ok());
  const nlohmann::json cfg = nlohmann::json::parse(read_all(good + "/config.json"));

  auto with_config = [&](const std::string& name, const std::function<void(nlohmann::json&)>& edit,
                         const std::string& raw = "") {
    const std::string d = dir.path(name);
    fs::create_directories(d);
    for (const char* f : {"model.safetensors", "tokenizer.json", "tokenizer_config.json"}) {
      fs::create_symlink(fs::absolute(good + "/" + f), d + "/" + f);
    }
    nlohmann::json c = cfg;
    edit(c);
    std::ofstream(d + "/config.json") << (raw.empty() ? c.dump() : raw);
    return d;
  };
  struct Case {
    std::string dir, args, expect;
  };
  std::vector<Case> cases = {
      {dir.path("missing"), "", "config.json: cannot open"},
      {with_config(
           "notjson", [](auto&) {}, "{oops"),
       "", "not a JSON object"},
      {with_config("noarch", [](auto& c) { c.erase("architectures"); }), "",
       "no \"architectures\" list"},
      {with_config("gpt2", [](auto& c) { c["architectures"] = {"GPT2LMHeadModel"}; }), "",
       "'GPT2LMHeadModel' is not a BitNet checkpoint"},
      {with_config("nohidden", [](auto& c) { c.erase("hidden_size"); }), "", "hidden_size missing"},
      {with_config("negheads", [](auto& c) { c["num_attention_heads"] = -4; }), "",
       "num_attention_heads must be a positive integer"},
      {with_config("oddheads", [](auto& c) { c["num_attention_heads"] = 3; }), "",
       "do not split hidden_size"},
      {with_config("kvheads", [](auto& c) { c["num_key_value_heads"] = 3; }), "",
       "do not split hidden_size"},
      {with_config("ropescale",
                   [](auto& c) {
                     c["rope_scaling"] = {{"type", "linear"}};
                   }),
       "", "rope_scaling is not supported"},
      {with_config("eps", [](auto& c) { c["rms_norm_eps"] = "small"; }), "",
       "rms_norm_eps must be a positive number"},
      {with_config("smallvocab", [](auto& c) { c["vocab_size"] = 1000; }), "",
       "more than config.json's vocab_size 1000"},
      {with_config("widerffn", [](auto& c) { c["intermediate_size"] = 1024; }), "",
       "model.layers.0.mlp.gate_proj.weight: shape [128, 256], config.json implies [256, 256]"},
      {with_config("morelayers", [](auto& c) { c["num_hidden_layers"] = 3; }), "",
       "checkpoint has no tensor model.layers.2."},
      {with_config("fewerlayers", [](auto& c) { c["num_hidden_layers"] = 1; }), "",
       "checkpoint tensor model.layers.1."},
      {good, "--type q4_0", "--type: projections are written as"},
      {good, "--embd tq2_0", "--embd: embeddings are written as f16 or f32"},
      {good, "--pre nonesuch", "unknown pre-tokenizer 'nonesuch'"},
      {good, "--vocab " + dir.path("nofile.gguf"), "nofile.gguf"},
  };
  // No tokenizer.json; an unreadable one.
  const std::string notok = with_config("notok", [](auto&) {});
  fs::remove(notok + "/tokenizer.json");
  cases.push_back({notok, "", "no tokenizer.json (pass --vocab"});
  const std::string badtok = with_config("badtok", [](auto&) {});
  fs::remove(badtok + "/tokenizer.json");
  std::ofstream(badtok + "/tokenizer.json") << "[1, 2]";
  cases.push_back({badtok, "", "tokenizer.json"});
  const std::string badgen = with_config("badgen", [](auto&) {});
  std::ofstream(badgen + "/generation_config.json") << R"({"eos_token_id": 999999})";
  cases.push_back({badgen, "", "generation_config.json: eos_token_id is not a token id"});
  // Packed codes holding 3; a zero weight_scale.
  for (const char* what : {"code3", "zeroscale"}) {
    const std::string d = dir.path(what);
    ASSERT_TRUE(synth::write_synthetic_hf(o, true, d).ok());
    const bool code3 = std::string(what) == "code3";
    size_t at = 0;  // the tensor's first byte in the file: 8 + header + its data offset
    {
      auto ck = Checkpoint::open(d);
      ASSERT_TRUE(ck.ok());
      const StTensor* t = ck->find(code3 ? "model.layers.1.mlp.up_proj.weight"
                                         : "model.layers.1.mlp.up_proj.weight_scale");
      const StTensor* first = ck->find("model.embed_tokens.weight");  // data offset 0
      uint64_t header = 0;
      std::memcpy(&header, read_all(d + "/model.safetensors").data(), 8);
      at = 8 + static_cast<size_t>(header) +
           static_cast<size_t>(t->data.data() - first->data.data());
    }
    std::string bytes = read_all(d + "/model.safetensors");
    if (code3) {
      bytes[at + 5] = static_cast<char>(0xFF);
    } else {
      bytes[at] = bytes[at + 1] = 0;
    }
    std::ofstream(d + "/model.safetensors", std::ios::binary) << bytes;
    cases.push_back({d, "", code3 ? "holds code 3" : "weight_scale 0 is not a positive number"});
  }
  for (const Case& c : cases) {
    const std::string out = dir.path("out.gguf");
    auto r = test::run_command(test::bitnet_binary() + " convert " + c.dir + " -o " + out + " " +
                               c.args);
    EXPECT_EQ(r.exit_code, 1) << c.dir << " " << c.args;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.dir << " " << c.args << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(fs::exists(out)) << c.dir;
  }
}

}  // namespace
}  // namespace bitnet::convert
