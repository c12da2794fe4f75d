// Writes small valid inputs for each fuzz target into DIR/<target>/ (libFuzzer starts from these
// and mutates): GGUF files with metadata of every kind, a tensor of each ternary type and a tiny
// tokenizer; tiny synthetic models of each weight type (I2_S, TQ2_0, TQ1_0 with .scale tensors,
// F16) that load and run; texts for the BPE tokenizer; a tokenizer.json; a complete receipt,
// unsigned, signed and with several references; --explain arguments. Each seed is checked to be
// valid before it is written.
//   fuzz_seeds DIR
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "crossval/crossval.h"
#include "crossval/ed25519.h"
#include "crossval/multi.h"
#include "crossval/receipt.h"
#include "gguf/gguf_bytes.h"
#include "gguf/reader.h"
#include "model/context.h"
#include "model/weights.h"
#include "synth/synth.h"

namespace {

namespace fs = std::filesystem;
using bitnet::test::GgufBytes;
using bitnet::test::small_valid_file;

void write(const fs::path& p, const std::string& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << bytes;
}
void write(const fs::path& p, const std::vector<uint8_t>& b) {
  write(p, std::string(b.begin(), b.end()));
}

bool fail(const std::string& what) {
  std::fprintf(stderr, "fuzz_seeds: %s\n", what.c_str());
  return false;
}

// Tiny synthetic models (one block, an 8-token vocabulary) that load and evaluate two tokens.
bool write_model_seeds(const fs::path& dir, const fs::path& work) {
  using bitnet::gguf::TensorType;
  using bitnet::model::Arch;
  GgufBytes vocab = GgufBytes().header(0, 4);
  vocab.kv_str("general.architecture", "bitnet")
      .kv_str("tokenizer.ggml.model", "gpt2")
      .kv_strs("tokenizer.ggml.tokens", {"a", "b", "ab", "<s>", "c", "d", "cd", "</s>"})
      .kv_strs("tokenizer.ggml.merges", {"a b", "c d"});
  const fs::path vocab_path = work / "vocab.gguf";
  write(vocab_path, vocab.b);
  struct Seed {
    const char* name;
    Arch arch;
    TensorType type;
    uint32_t d, heads, ff;
    bool scales;
  };
  const Seed seeds[] = {{"i2_s.gguf", Arch::kBitnetB158, TensorType::I2_S, 128, 2, 128, false},
                        {"tq2_0.gguf", Arch::kBitnet, TensorType::TQ2_0, 256, 4, 256, false},
                        {"tq1_0.gguf", Arch::kBitnet, TensorType::TQ1_0, 256, 4, 256, true},
                        {"f16.gguf", Arch::kBitnet, TensorType::F16, 64, 1, 64, false}};
  for (const Seed& s : seeds) {
    bitnet::synth::SynthOptions o;
    o.config.arch = s.arch;
    o.config.n_embd = s.d;
    o.config.n_layers = 1;
    o.config.n_heads = s.heads;
    o.config.n_kv_heads = 1;
    o.config.n_ff = s.ff;
    o.config.n_ctx_train = 64;
    o.config.rope_freq_base = 10000.0f;
    o.config.rms_eps = 1e-5f;
    o.config.rope_dims = o.config.head_dim();
    o.weight_type = s.type;
    o.scale_tensors = s.scales;
    o.vocab_path = vocab_path.string();
    const fs::path path = dir / "model" / s.name;
    fs::create_directories(path.parent_path());
    if (auto st = bitnet::synth::write_synthetic_model(o, path.string()); !st.ok())
      return fail(st.message());
    auto m = bitnet::model::Model::load(path.string());
    if (!m.ok()) return fail(m.message());
    auto ctx = bitnet::model::Context::create(**m, {.n_ctx = 8, .n_threads = 1});
    if (!ctx.ok()) return fail(ctx.message());
    std::vector<float> logits;
    const std::vector<int32_t> tokens = {0, 7};
    if (auto st = (*ctx)->eval(tokens, true, &logits); !st.ok()) return fail(st.message());
  }
  return true;
}

// A complete receipt (every required key, consistent rows and summary, sealed), and the same
// signed with a key made for the purpose.
bool write_receipt_seeds(const fs::path& dir, const fs::path& work) {
  using namespace bitnet::crossval;
  RunResult run;
  run.model = {{"path", "/nonexistent/m.gguf"},
               {"sha256", std::string(64, 'a')},
               {"arch", "bitnet"},
               {"weight_type", "TQ2_0"},
               {"n_layers", 1}};
  run.tokenizer = {{"source", "/nonexistent/m.gguf"}};
  run.reference = {
      {"library", "/lib/libllama.so"}, {"cpu_variant", "x64"}, {"settings", {{"n_threads", 1}}}};
  run.tol.exact = true;
  CaseResult c;
  c.id = "c0";
  c.c = {"Hello", 2};
  c.ids_ours = c.ids_ref = {1, 2};
  c.tokens_match = true;
  c.generated_ref = c.greedy_ours = {5, 6};
  for (int p = 0; p < 3; ++p) {
    PositionRow row;
    row.position = p;
    row.decode = p == 2;
    row.token = p;
    row.m.cosine = 1;
    row.m.top1_match = row.m.identical = true;
    row.m.top5_overlap = 5;
    row.passed = true;
    c.rows.push_back(row);
    c.heat[{p, 0}] = 0.0;
  }
  c.ops_compared = c.ops_identical = 40;
  c.passed = true;
  c.verdict = "pass (exact)";
  run.cases.push_back(c);
  ReceiptContext ctx;
  ctx.replay = "bitnet crossval --model m.gguf --prompt Hello --max-tokens 2";
  ctx.tol = run.tol;
  nlohmann::ordered_json r = make_receipt(run, ctx);
  seal_receipt(&r);
  if (const auto v = verify_receipt(nlohmann::json(r), false); !v.ok)
    return fail("the receipt seed does not verify: " + v.problems[0]);
  write(dir / "receipt" / "receipt.json", r.dump(1));
  {
    // Against two references (the same run twice): the multi_reference block and its checks.
    nlohmann::ordered_json m = r;
    m.erase("integrity");
    m["multi_reference"] = references_json({{"x64", run}, {"best", run}});
    seal_receipt(&m);
    if (const auto v = verify_receipt(nlohmann::json(m), false); !v.ok)
      return fail("the multi-reference receipt seed does not verify: " + v.problems[0]);
    write(dir / "receipt" / "multi.json", m.dump(1));
  }

  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  const fs::path pem = work / "key.pem";
  FILE* f = key ? std::fopen(pem.c_str(), "w") : nullptr;
  const bool written =
      f && PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  if (f) std::fclose(f);
  EVP_PKEY_free(key);
  if (!written) return fail("cannot make an Ed25519 key");
  auto signing = SigningKey::from_pem_file(pem.string());
  if (!signing.ok()) return fail(signing.message());
  r.erase("integrity");
  if (auto st = sign_receipt(&r, *signing); !st.ok()) return fail(st.message());
  seal_receipt(&r);
  if (const auto v = verify_receipt(nlohmann::json(r), false); !v.ok)
    return fail("the signed receipt seed does not verify: " + v.problems[0]);
  write(dir / "receipt" / "signed.json", r.dump(1));
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_seeds DIR\n");
    return 2;
  }
  const fs::path dir = argv[1];

  // GGUF: metadata and two tensors (TQ2_0, I2_S), as the reader's own fuzz test starts from.
  const GgufBytes a = small_valid_file();
  // A model's configuration keys and a four-token byte-level vocabulary with one merge.
  GgufBytes b = GgufBytes().header(1, 9);
  b.kv_str("general.architecture", "bitnet")
      .kv_u32("bitnet.block_count", 1)
      .kv_u32("bitnet.embedding_length", 256)
      .kv_u32("bitnet.feed_forward_length", 512)
      .kv_u32("bitnet.attention.head_count", 4)
      .kv_u32("bitnet.context_length", 64)
      .kv_str("tokenizer.ggml.model", "gpt2")
      .kv_strs("tokenizer.ggml.tokens", {"a", "b", "ab", "<s>"})
      .kv_strs("tokenizer.ggml.merges", {"a b"})
      .tensor("token_embd.weight", {256, 4}, 1, 0)
      .align()
      .zeros(256 * 4 * 2);
  for (const auto& [name, g] : {std::pair{"tensors.gguf", a}, std::pair{"model.gguf", b}}) {
    if (!bitnet::gguf::File::parse(g.b).ok()) {
      std::fprintf(stderr, "fuzz_seeds: seed %s does not parse\n", name);
      return 1;
    }
    write(dir / "gguf" / name, g.b);
  }

  // Tokenizer texts: the first byte picks the options (bit 0 parse_special, bit 1 add_special).
  const std::vector<std::string> texts = {
      std::string("\x00", 1) + "Hello world, it's 2026!",
      "\x01<|begin_of_text|>Hi<|eot_id|> there",
      "\x02h\xc3\xa9llo \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x99\x82  \n\n\ttabs",
      std::string("\x03", 1) + "bad \xff\xfe utf-8 \xc3( and \xed\xa0\x80 surrogate",
  };
  for (size_t i = 0; i < texts.size(); ++i)
    write(dir / "tokenizer" / ("text" + std::to_string(i)), texts[i]);

  write(dir / "tokenizer_json" / "bpe.json",
        R"({"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2,"<s>":3},"merges":["a b"]},)"
        R"("pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false},)"
        R"("added_tokens":[{"id":3,"content":"<s>","special":true}]})");

  // OpenAI request bodies: the first byte picks the template (bits 0-1) and chat (bit 2).
  const std::vector<std::string> bodies = {
      std::string("\x05", 1) +
          R"({"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":)"
          R"("Hi"}],"max_tokens":8,"temperature":0.7,"top_k":5,"stop":["\n"],"stream":true,)"
          R"("stream_options":{"include_usage":true},"logprobs":true,"top_logprobs":2})",
      std::string("\x06", 1) +
          R"({"messages":[{"role":"user","content":[{"type":"text","text":"a"}]}],"seed":1})",
      std::string("\x00", 1) + R"({"prompt":"Once upon a time","max_tokens":4,"logprobs":3})",
      std::string("\x01", 1) + R"({"prompt":[1,2,3],"n_predict":2,"min_p":0.1,"top_p":0.9})",
  };
  for (size_t i = 0; i < bodies.size(); ++i)
    write(dir / "openai" / ("body" + std::to_string(i)), bodies[i]);

  // safetensors: two tensors with metadata, and an empty one.
  {
    auto st = [](const std::string& header, size_t data_bytes) {
      std::string out(8, '\0');
      const uint64_t n = header.size();
      std::memcpy(out.data(), &n, 8);
      return out + header + std::string(data_bytes, '\x3f');
    };
    write(dir / "safetensors" / "two",
          st(R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
             R"("b":{"dtype":"BF16","shape":[3],"data_offsets":[16,22]},)"
             R"("__metadata__":{"format":"pt"}})",
             22));
    write(dir / "safetensors" / "u8",
          st(R"({"w":{"dtype":"U8","shape":[4,2],"data_offsets":[0,8]}})", 8));
    write(dir / "safetensors" / "empty", st("{}", 0));
  }

  // --explain arguments.
  const std::vector<std::string> explain = {"3/1/attn_out", "0/embeddings", "12/logits",
                                            "2/0/k_rope"};
  for (size_t i = 0; i < explain.size(); ++i) {
    if (!bitnet::crossval::parse_explain(explain[i]).ok()) {
      std::fprintf(stderr, "fuzz_seeds: seed %s does not parse\n", explain[i].c_str());
      return 1;
    }
    write(dir / "explain" / ("arg" + std::to_string(i)), explain[i]);
  }

  const fs::path work = dir / "work";
  fs::create_directories(work);
  const bool ok = write_model_seeds(dir, work) && write_receipt_seeds(dir, work);
  fs::remove_all(work);
  return ok ? 0 : 1;
}
