// Where the pinned reference (installed by scripts/setup.sh) lives: the .deps/reference folder of
// the source tree this binary was built from, unless the caller names another one (the CLI:
// $BITNET_REFERENCE_DIR). Reads no environment variable.
#pragma once

#include <string>

namespace bitnet {

// `dir` when it is not empty, else the compiled-in default.
std::string reference_dir(const std::string& dir = "");
// Path of a vocabulary file of the reference in reference_dir(dir), e.g.
// "ggml-vocab-llama-bpe.gguf".
std::string reference_vocab_path(const std::string& file_name, const std::string& dir = "");

}  // namespace bitnet
