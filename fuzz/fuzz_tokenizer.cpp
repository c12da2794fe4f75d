// Any text, valid UTF-8 or not, through a real byte-level BPE vocabulary (BITNET_FUZZ_VOCAB, a
// GGUF such as the reference's ggml-vocab-llama-bpe.gguf): encoding must not crash, and decoding
// gives the text back (malformed UTF-8 in the canonical form the byte-level encoder maps it to).
// The first input byte picks the options.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string_view>

#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace {
std::optional<bitnet::tokenizer::Tokenizer> g_tok;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* path = std::getenv("BITNET_FUZZ_VOCAB");
  if (path == nullptr) {
    std::fprintf(stderr, "fuzz_tokenizer: set BITNET_FUZZ_VOCAB to a byte-level BPE GGUF\n");
    std::exit(2);
  }
  auto tok = bitnet::tokenizer::Tokenizer::load(path);
  if (!tok.ok()) {
    std::fprintf(stderr, "fuzz_tokenizer: %s\n", tok.message().c_str());
    std::exit(2);
  }
  g_tok.emplace(std::move(*tok));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool parse_special = (data[0] & 1) != 0, add_special = (data[0] & 2) != 0;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  const auto ids =
      g_tok->encode(text, {.add_special = add_special, .parse_special = parse_special});
  std::span<const int32_t> body(ids);
  if (add_special && g_tok->spec().add_bos && !body.empty() && body[0] == g_tok->bos())
    body = body.subspan(1);
  const std::string back = g_tok->decode(body);
  if (back != bitnet::tokenizer::canonicalize_utf8(text)) __builtin_trap();
  return 0;
}
