// Any bytes as the body of POST /v1/chat/completions or /v1/completions (the first byte picks
// which), through the server's request parser with a real byte-level BPE vocabulary
// (BITNET_FUZZ_VOCAB): it returns a request or an ApiError, never crashes; an accepted request
// fits the context and asks for known logprobs.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "serve/openai.h"
#include "tokenizer/tokenizer.h"

namespace {
std::optional<bitnet::tokenizer::Tokenizer> g_tok;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* path = std::getenv("BITNET_FUZZ_VOCAB");
  if (path == nullptr) {
    std::fprintf(stderr, "fuzz_openai: set BITNET_FUZZ_VOCAB to a byte-level BPE GGUF\n");
    std::exit(2);
  }
  auto tok = bitnet::tokenizer::Tokenizer::load(path);
  if (!tok.ok()) {
    std::fprintf(stderr, "fuzz_openai: %s\n", tok.message().c_str());
    std::exit(2);
  }
  g_tok.emplace(std::move(*tok));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  using namespace bitnet;
  serve::ApiContext ctx;
  ctx.tok = &*g_tok;
  ctx.chat_template = static_cast<tokenizer::ChatTemplate>(data[0] % 4);
  ctx.n_ctx = 256;
  const std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
  auto r = serve::parse_completion(body, (data[0] & 4) != 0, ctx);
  if (auto* ok = std::get_if<serve::CompletionRequest>(&r)) {
    const auto& q = ok->request;
    if (q.prompt.empty() || static_cast<int>(q.prompt.size()) + q.options.max_tokens > ctx.n_ctx ||
        q.n_logprobs < -1 || q.n_logprobs > 20) {
      std::fprintf(stderr, "fuzz_openai: accepted a request out of bounds\n");
      std::abort();
    }
    (void)serve::dump(serve::json{{"prompt", ok->prompt_text}});
  } else {
    (void)serve::dump(serve::error_body(std::get<serve::ApiError>(r)));
  }
  return 0;
}
