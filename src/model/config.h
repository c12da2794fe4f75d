// Hyper-parameters of a BitNet model, read from GGUF metadata and checked for consistency.
#pragma once

#include <cstdint>
#include <string>

#include "core/result.h"
#include "gguf/reader.h"
#include "model/arch.h"

namespace bitnet::model {

// Largest head dimension supported (BitNet models use 64 or 128); the attention kernel keeps a
// head's vectors on the stack.
inline constexpr uint32_t kMaxHeadDim = 256;

struct ModelConfig {
  Arch arch = Arch::kBitnetB158;
  uint32_t n_embd = 0;  // d
  uint32_t n_layers = 0;
  uint32_t n_heads = 0;
  uint32_t n_kv_heads = 0;
  uint32_t n_ff = 0;  // f
  uint32_t n_vocab = 0;
  uint32_t n_ctx_train = 0;  // context length from the file
  uint32_t rope_dims = 0;    // = head_dim for every BitNet model
  float rope_freq_base = 10000.0f;
  float rms_eps = 1e-5f;

  uint32_t head_dim() const { return n_heads ? n_embd / n_heads : 0; }
  uint32_t n_embd_kv() const { return head_dim() * n_kv_heads; }
};

// Reads and validates the hyper-parameters (positive, heads dividing d, even head_dim, ...).
// n_vocab comes from `<arch>.vocab_size`, else the token list, else token_embd's shape.
Result<ModelConfig> read_config(const gguf::File& file);

}  // namespace bitnet::model
