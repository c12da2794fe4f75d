// Model files are untrusted input all the way through loading, not only their GGUF container:
// after the file parses come the hyper-parameters, tensor shapes and types, the decoding of
// I2_S / TQ1_0 / TQ2_0 weights, the repacking for the kernels, the LM head's screen, the KV
// cache, and a forward pass. Any bytes must give a model and its logits, or a one-line error,
// never a crash, a hang or an out-of-bounds access. The seeds are tiny synthetic models of each
// weight type (fuzz_seeds).
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "model/context.h"
#include "model/weights.h"
#include "tokenizer/tokenizer.h"

namespace {

void require_one_line(const std::string& message) {
  if (message.empty() || message.find('\n') != std::string::npos) __builtin_trap();
}

// Model::load maps a path: the input goes to an in-memory file, reused for every input.
std::string as_file(const uint8_t* data, size_t size) {
  static const int fd = memfd_create("fuzz_model", 0);
  if (fd < 0 || ftruncate(fd, 0) != 0) __builtin_trap();
  for (size_t done = 0; done < size;) {
    const ssize_t n = pwrite(fd, data + done, size - done, static_cast<off_t>(done));
    if (n <= 0) __builtin_trap();
    done += static_cast<size_t>(n);
  }
  return "/proc/self/fd/" + std::to_string(fd);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace bitnet;
  auto model = model::Model::load(as_file(data, size));
  if (!model.ok()) {
    require_one_line(model.message());
    return 0;
  }
  if (auto tok = tokenizer::Tokenizer::from_gguf((*model)->file()); !tok.ok()) {
    require_one_line(tok.message());
  }
  auto ctx = model::Context::create(**model, {.n_ctx = 8, .n_threads = 1});
  if (!ctx.ok()) {
    require_one_line(ctx.message());
    return 0;
  }
  const int64_t n_vocab = (*model)->config().n_vocab;
  const std::vector<int32_t> tokens = {0, static_cast<int32_t>(n_vocab - 1)};
  std::vector<float> logits;
  if (auto st = (*ctx)->eval(tokens, true, &logits); !st.ok()) {
    require_one_line(st.message());
  } else if (logits.size() != tokens.size() * static_cast<size_t>(n_vocab)) {
    __builtin_trap();  // a forward pass gives a row of logits per token asked for
  }
  return 0;
}
