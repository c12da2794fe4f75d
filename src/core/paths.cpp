#include "core/paths.h"

#ifndef BITNET_DEFAULT_REFERENCE_DIR
#define BITNET_DEFAULT_REFERENCE_DIR ".deps/reference"
#endif

namespace bitnet {

std::string reference_dir(const std::string& dir) {
  return dir.empty() ? BITNET_DEFAULT_REFERENCE_DIR : dir;
}

std::string reference_vocab_path(const std::string& file_name, const std::string& dir) {
  return reference_dir(dir) + "/models/" + file_name;
}

}  // namespace bitnet
