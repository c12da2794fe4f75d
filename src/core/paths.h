// Where the pinned reference (installed by scripts/setup.sh) lives: $BITNET_REFERENCE_DIR, else
// the .deps/reference folder of the source tree this binary was built from.
#pragma once

#include <string>

namespace bitnet {

std::string reference_dir();
// Path of a vocabulary file of the reference, e.g. "ggml-vocab-llama-bpe.gguf".
std::string reference_vocab_path(const std::string& file_name);

}  // namespace bitnet
