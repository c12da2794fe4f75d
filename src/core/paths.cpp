#include "core/paths.h"

#include <cstdlib>

#ifndef BITNET_DEFAULT_REFERENCE_DIR
#define BITNET_DEFAULT_REFERENCE_DIR ".deps/reference"
#endif

namespace bitnet {

std::string reference_dir() {
  const char* env = std::getenv("BITNET_REFERENCE_DIR");
  if (env != nullptr && env[0] != '\0') return env;
  return BITNET_DEFAULT_REFERENCE_DIR;
}

std::string reference_vocab_path(const std::string& file_name) {
  return reference_dir() + "/models/" + file_name;
}

}  // namespace bitnet
