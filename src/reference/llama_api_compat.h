// The seam between the reference adapter and the llama.cpp C API it is compiled against.
//
// llama.cpp renamed much of its API in 2024-2025; bitnet.cpp's fork (and any older upstream
// tree) still has the old names. Everything that differs between those trees lives behind the
// functions below; llama_api_compat.cpp picks the right calls from the BITNET_LLAMA_HAS_* /
// BITNET_GGML_HAS_* definitions that src/reference/llama_api_checks.cmake derives by compiling
// probes against the chosen headers. The rest of the adapter (llama_reference.cpp) only uses
// calls common to both: llama_model_default_params, llama_context_default_params, the
// llama_context_params fields n_ctx/n_batch/n_ubatch/n_threads/type_k/type_v/cb_eval,
// llama_batch_init/free, llama_decode, llama_get_logits_ith, llama_free, llama_log_set,
// llama_backend_init and ggml_backend_tensor_get.
//
// Internal to src/reference: this header includes llama.h, the public one does not.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "llama.h"

namespace bitnet::reference::compat {

// Which API flavour this build uses, for descriptions ("new" / "old").
const char* api_flavour();

// Model and context lifetime.
llama_model* load_model(const std::string& path, const llama_model_params& params);
void free_model(llama_model* model);
llama_context* new_context(llama_model* model, const llama_context_params& params);
void set_flash_attn(llama_context_params& params, bool enabled);

// Vocabulary.
int32_t n_vocab(const llama_model* model);
// llama_tokenize: the number of tokens written, or minus the number needed when n_max is too
// small (llama.cpp's own convention).
int32_t tokenize(const llama_model* model, const std::string& text, int32_t* tokens, int32_t n_max,
                 bool add_special, bool parse_special);

// Forgets every cached position (K/V data included) so the next batch starts at position 0.
void clear_kv(llama_context* ctx);

// "llama.cpp 0.5.0-dev, ggml 0.25.1 (commit 0ad4a86)" or what the tree can tell.
std::string version();

// Log levels, mapped from ggml_log_level (whose numeric values changed between versions).
enum class LogLevel { kDebug, kInfo, kWarn, kError, kCont, kOther };
LogLevel log_level(ggml_log_level level);

// What the CPU backend loading found.
struct CpuBackend {
  std::string search_dir;          // where plugins were looked for ("" if built in)
  std::string plugin_path;         // the libggml-cpu-<variant>.so that got loaded
  std::string variant;             // "<variant>", or "builtin" for a tree without plugins
  std::string reg_name;            // ggml_backend_reg_name of the CPU backend ("CPU")
  std::string device;              // "CPU: <description>"
  std::string features;            // "AVX2 AVX512 ..." as the CPU backend reports them
  std::vector<std::string> devices;  // every registered device, "name: description"
};

// Makes sure a CPU backend is registered. For trees with run-time plugins: loads the best
// libggml-cpu-*.so from `dir` for this CPU (ggml's own scoring), or exactly
// libggml-cpu-<variant>.so when `variant` is not empty. `dir` empty: the directory holding
// the loaded libggml. Trees without plugins have the CPU backend built in: nothing to load.
// Returns false (with *error set) if no CPU device is available afterwards.
bool load_cpu_backend(const std::string& dir, const std::string& variant, CpuBackend* out,
                      std::string* error);

}  // namespace bitnet::reference::compat
