// Writes small valid inputs for each fuzz target into DIR/<target>/ (libFuzzer starts from these
// and mutates): GGUF files with metadata of every kind, a tensor of each ternary type and a tiny
// tokenizer, texts for the BPE tokenizer, a tokenizer.json and a receipt.
//   fuzz_seeds DIR
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gguf/gguf_bytes.h"
#include "gguf/reader.h"

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

  write(dir / "receipt" / "receipt.json",
        R"({"schema":"bitnet.crossval.receipt","schema_version":1,"kind":"crossval",)"
        R"("tool":{"name":"bitnet"},"thresholds":{"logits_min_cosine":0.999},)"
        R"("cases":[{"id":"a","passed":true,"token_ids":{"match":true},"positions":[)"
        R"({"position":0,"cosine":1.0,"l2":0.0,"max_abs":0.0,"kl":0.0,"top1_match":true,)"
        R"("passed":true}]}],"positions":[],"summary":{"passed":true,"positions":1,)"
        R"("first_divergence":null},"integrity":{"algorithm":"sha256","digest":"00"}})");
  return 0;
}
