// GGUF files are untrusted input: any bytes must give a parsed file or a one-line error, never a
// crash, a hang or an out-of-bounds read. A parsed file then goes where loading takes it: the
// model configuration and the tokenizer.
#include <cstddef>
#include <cstdint>
#include <span>

#include "gguf/reader.h"
#include "model/config.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file = bitnet::gguf::File::parse(std::span(data, size), "fuzz");
  if (!file.ok()) {
    if (file.message().find('\n') != std::string::npos) __builtin_trap();  // one-line errors
    return 0;
  }
  for (const auto& t : file->tensors()) {
    const auto bytes = file->tensor_data(t);
    if (!bytes.empty() && (bytes.data() < data || bytes.data() + bytes.size() > data + size))
      __builtin_trap();  // tensor data must lie inside the file
  }
  (void)bitnet::model::read_config(*file);
  (void)bitnet::tokenizer::Tokenizer::from_gguf(*file);
  return 0;
}
