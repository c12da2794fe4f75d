// The reference adapter: runs the pinned upstream llama.cpp (prebuilt shared libraries) on a
// GGUF model and returns what our engine must match - token ids, per-position logits and,
// through a tensor observer, intermediate tensors of llama.cpp's graph.
//
// Only the parity tests and tools link this (target bitnet_reference, built when
// BITNET_HAVE_REFERENCE); the engine never does. This header does not include llama.h.
//
// Determinism: with the same settings, the same model and the same CPU backend variant, every
// call gives bitwise the same results. Logits may differ in the last bits between batch shapes
// (a prompt evaluated in one batch vs token by token) and between CPU variants.
//
// Threading: one LlamaReference must be used by one thread at a time. llama.cpp's log and its
// backend registry are process-wide; this adapter installs its own log sink once per process.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"

namespace bitnet::reference {

struct ReferenceSettings {
  int n_threads = 1;  // n_threads and n_threads_batch
  // KV-cache size in positions. 0: sized to each request (llama.cpp rounds up to 256) and
  // re-created larger when a request needs more. Otherwise a request needing more positions
  // fails with "context too small".
  int n_ctx = 0;
  // Tokens per llama_decode call (also the micro-batch size n_ubatch). 0: a whole request in
  // one batch. Smaller values split a prompt into several decode calls.
  int n_batch = 0;
  bool kv_f16 = true;       // K and V cache in F16 (llama.cpp's default); false: F32
  bool flash_attn = false;  // llama.cpp's flash-attention path (off: the plain kq/softmax/kqv)

  // Process-wide, honoured by the first successful load only (later loads that ask for
  // something else get an error):
  std::string backend_dir;  // where libggml-cpu-*.so live; "": next to the loaded libggml
  std::string cpu_variant;  // "haswell", "icelake", "x64"...; "": the best for this CPU
  bool verbose = false;     // echo llama.cpp's log to stderr (otherwise it is only captured)
};

// What got loaded, once per process.
struct BackendInfo {
  std::string llama_library;  // path of the libllama actually in use
  std::string api;            // C API flavour the adapter was compiled for: "new" / "old"
  std::string version;        // "llama.cpp 0.5.0-dev, ggml 0.25.1 (commit 0ad4a86)"
  std::string backend_dir;    // where CPU plugins were searched
  std::string cpu_plugin;     // path of the libggml-cpu-<variant>.so in use ("" if built in)
  std::string cpu_variant;    // "<variant>" or "builtin"
  std::string cpu_device;     // "CPU: <cpu model name>"
  std::string cpu_features;   // features the CPU backend reports, e.g. "SSE3 AVX2 AVX512 ..."
  std::vector<std::string> devices;  // every registered ggml device, "name: description"
};

// Initialises llama.cpp and loads its CPU backend (once per process; retried if it failed).
// LlamaReference::load calls it; call it directly to inspect the backend without a model.
Result<BackendInfo> init_backends(const ReferenceSettings& settings = {});

// Tensor observer callbacks. `want` is asked for every node of llama.cpp's graph by name
// ("attn_norm-0", "Qcur-0", "kq_soft_max-0", "ffn_out-1", "l_out-1", "result_norm",
// "result_output"; names end in -<layer>). `got` then receives the computed tensor: `shape` in
// ggml order (ne0 first: the contiguous dimension, e.g. {n_embd, n_tokens}), trailing 1s
// trimmed; `data` dense with ne0 fastest, converted to f32 (F32, F16, BF16 and I32 tensors;
// other types are skipped). Called once per graph evaluation, i.e. per llama_decode micro-batch:
// a prompt in one batch gives one call per name, each generated token another.
using TensorWant = std::function<bool(const std::string& name)>;
using TensorGot = std::function<void(const std::string& name, const std::vector<int64_t>& shape,
                                     const std::vector<float>& data)>;

// The same with the ggml operation that produced the tensor ("MUL_MAT", "ROPE", "RESHAPE"...,
// ggml_op_name), which tells apart graph nodes sharing one name (llama.cpp names the
// projection, its reshape and the RoPE output all "Qcur-N").
struct ObservedTensor {
  std::string name;
  std::string op;
  std::vector<int64_t> shape;
  std::vector<float> data;
};
using NodeGot = std::function<void(const ObservedTensor& t)>;
// Called before every llama_decode micro-batch: its first position and its number of tokens,
// so observed tensors ([..., n_tokens]) can be mapped to positions.
using BatchStart = std::function<void(int32_t first_position, int32_t n_tokens)>;

class LlamaReference {
 public:
  // Loads the model with llama.cpp. Errors: missing file, a file llama.cpp refuses (the
  // message carries llama.cpp's own error line), bad settings.
  static Result<std::unique_ptr<LlamaReference>> load(const std::string& model_path,
                                                      const ReferenceSettings& settings = {});
  ~LlamaReference();
  LlamaReference(const LlamaReference&) = delete;
  LlamaReference& operator=(const LlamaReference&) = delete;

  // llama.cpp's tokenizer. add_special: add BOS/EOS as the model's metadata says;
  // parse_special: turn "<|eot_id|>" etc. in the text into their special tokens.
  Result<std::vector<int32_t>> tokenize(const std::string& text, bool add_special,
                                        bool parse_special) const;

  // Logits of every position, [tokens.size() x n_vocab()] row-major, evaluated from an empty
  // KV cache (positions 0..n-1), in one batch unless settings.n_batch is smaller.
  Result<std::vector<float>> eval_logits(const std::vector<int32_t>& tokens);
  // The same evaluation asking llama.cpp for the last position's logits only ([n_vocab()]), so
  // it skips the LM head of every other row (what a prompt's processing needs before decoding).
  Result<std::vector<float>> eval_last_logits(const std::vector<int32_t>& tokens);

  // Greedy continuation from an empty KV cache: evaluates the prompt (one batch, logits at
  // every position), then feeds each argmax token back one at a time. Returns exactly n_new
  // ids (no stop at end-of-generation tokens; ties go to the lowest id). With logits_out, it
  // receives the logits of every evaluated position, [(prompt.size() + max(n_new - 1, 0)) x
  // n_vocab()]: row i belongs to position i of prompt+generated and predicts token i+1 (the
  // last generated token is never evaluated). The prompt rows equal eval_logits(prompt).
  Result<std::vector<int32_t>> greedy(const std::vector<int32_t>& prompt, int n_new,
                                      std::vector<float>* logits_out = nullptr);

  int n_vocab() const;
  const BackendInfo& backend() const;
  const ReferenceSettings& settings() const;
  // One line: library, version, CPU backend variant, model path, settings.
  std::string description() const;

  // Installs (or, with empty functions, removes) the tensor observer; see TensorWant. Takes
  // effect from the next evaluation (llama.cpp's context is re-created with its cb_eval hook).
  // Observing may split llama.cpp's graph computation at the wanted nodes, which can disable
  // fused CPU kernels there; the parity tests check that logits stay identical.
  void set_tensor_observer(TensorWant want, TensorGot got);
  // The same, receiving each tensor's ggml op too (replaces a TensorGot observer).
  void set_node_observer(TensorWant want, NodeGot got);
  // Installs (or, empty, removes) the micro-batch hook; see BatchStart.
  void set_batch_observer(BatchStart on_batch);

 private:
  struct Impl;
  explicit LlamaReference(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace bitnet::reference
