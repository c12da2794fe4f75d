// `bitnet convert HF_DIR -o OUT.gguf`: a Hugging Face BitNet checkpoint (config.json,
// model.safetensors or a sharded index, tokenizer.json) to a GGUF file that bitnet.cpp,
// llama.cpp and this engine load, in one pass: one tensor at a time is read (memory-mapped,
// its pages released after use), ternarized or unpacked, and streamed out, so memory stays at
// about the largest projection whatever the model size. hf_layout.h describes the checkpoint
// families and their conventions.
//
// Output layout: the architecture names, metadata keys and tensor order and names of the files
// bitnet.cpp's and llama.cpp's converters write (the same as `bitnet synth`): general.*, the
// architecture's hyper-parameters, the tokenizer, then token_embd, the blocks, output_norm
// and output (when the checkpoint has its own lm_head).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "core/result.h"
#include "gguf/tensor_types.h"

namespace bitnet::convert {

struct ConvertOptions {
  gguf::TensorType type = gguf::TensorType::I2_S;  // projections: I2_S, TQ2_0, TQ1_0, F16, F32
  gguf::TensorType embd = gguf::TensorType::F16;   // token_embd / output: F16 or F32
  std::optional<std::string> pre;  // tokenizer.ggml.pre instead of the one recognised
  std::string vocab_gguf;          // take the tokenizer.* keys from this GGUF instead
  std::string name;                // general.name (default: config _name_or_path, else dir)
  // Called after each tensor: (tensors done, total, bytes written, bytes in all).
  std::function<void(size_t, size_t, uint64_t, uint64_t)> on_progress;
};

struct ConvertReport {
  std::string arch;     // the GGUF architecture written
  bool packed = false;  // the checkpoint held packed weights (else masters, ternarized)
  int projections = 0;
  int tensors = 0;
};

Result<ConvertReport> convert_hf(const std::string& dir, const std::string& out,
                                 const ConvertOptions& o);

}  // namespace bitnet::convert
