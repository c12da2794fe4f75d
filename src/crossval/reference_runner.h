// Running the reference side: finding (or building) the bitnet-reference helper for the chosen
// llama.cpp tree, and running it as a subprocess that exchanges files (see
// src/reference/reference_main.cpp for the request / response format).
//
// Why a subprocess: the adapter is compiled against ONE llama.h and linked to that tree's
// libraries; trees with different C APIs (upstream 2025, bitnet.cpp's older fork) cannot share a
// process, and the `bitnet` engine binary never links llama.cpp. Which helper runs:
//   1. ReferenceOptions::helper (the CLI: --reference-helper PATH or $BITNET_REFERENCE_HELPER);
//   2. no --reference-dir: bitnet-reference next to the bitnet binary (built against the pinned
//      llama.cpp, .deps/reference);
//   3. --reference-dir D (or $BITNET_CPP_DIR): a bitnet-reference* next to the bitnet binary
//      built against D (its --tree says so; bitnet-reference-oldapi for .deps/reference-oldapi),
//      else one built once with CMake from this source tree (src/reference/standalone) into
//      <ReferenceOptions::cache_dir>/reference-helpers/<hash of D>/ (the CLI: $BITNET_CACHE_DIR,
//      else $XDG_CACHE_HOME/bitnet, else ~/.cache/bitnet).
// The library reads no environment variable: the caller fills the options.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "core/result.h"

namespace bitnet::crossval {

struct ReferenceOptions {
  std::string helper;               // explicit helper executable; "" = found as above
  std::string reference_dir;        // llama.cpp tree; "" = the pinned one
  std::string cpu_variant = "x64";  // "" = the best for this CPU
  int n_threads = 1;
  int n_batch = 0;  // 0: the prompt in one batch
  std::string kv_type = "f16";
  bool verbose = false;  // the helper echoes llama.cpp's log
  // Where helpers built for other trees are kept; "" = a folder in the temporary directory.
  std::string cache_dir;
};

// Path of the helper to run (building it for a foreign tree if needed; progress on stderr).
Result<std::string> find_reference_helper(const ReferenceOptions& o);

// Runs `helper --request request.json --out work_dir`; returns the parsed response.json.
Result<nlohmann::json> run_reference_helper(const std::string& helper,
                                            const nlohmann::json& request,
                                            const std::string& work_dir);

// The directory of the running executable (/proc/self/exe).
std::string executable_dir();

}  // namespace bitnet::crossval
