// How Hugging Face BitNet checkpoints lay out a model, and the mapping to the GGUF layout: the
// facts both directions share (`bitnet convert` reads them, `bitnet synth --format hf` writes
// them). docs/hf-checkpoints.md says where each fact comes from.
//
// Families (config.json "architectures"[0] -> the GGUF architecture written):
//   BitNetForCausalLM (microsoft/bitnet-b1.58-2B-4T)  -> bitnet-b1.58: packed uint8 weights with a
//       weight_scale the layer multiplies by (linear_class autobitlinear), or bf16 masters;
//   LlamaForCausalLM with quantization_config.quant_method "bitnet" (Falcon3-*-1.58bit,
//       Llama3-8B-1.58)                              -> llama: packed weights, weight_scale
//       divides; Q and K rows in Hugging Face's rotate-half order, permuted for NORM RoPE;
//   BitnetForCausalLM (1bitLLM bitnet_b1_58-*)      -> bitnet: fp16 masters, sub-norms named
//       inner_attn_ln / ffn_layernorm.
// Packed: a [out, in] projection is uint8 [out/4, in]; output row i*(out/4) + r takes bits
// 2i..2i+1 of byte [r, c]; the code minus one is the ternary value (code 3 is never written).
// Masters: absmean ternarization as those models were trained and as their converters do:
// beta = mean |w| (rounded to the masters' dtype, as torch computes it), values
// clamp(round_half_even(w / beta), -1, 1), scale beta.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "convert/safetensors.h"
#include "core/result.h"
#include "model/arch.h"
#include "model/config.h"

namespace bitnet::convert {

enum class HfWeights { kPacked, kMasters };

struct HfFamily {
  model::Arch arch;
  std::string_view architecture;  // config.json "architectures"[0]
  std::string_view model_type;    // config.json "model_type"
  std::string_view hidden_act;
  bool scale_multiplies;  // packed: W = codes * weight_scale (else codes / weight_scale)
  bool permute_qk;        // Q/K rows stored for rotate-half RoPE (llama)
};

// The family a GGUF architecture is converted from / written as; nullopt for bitnet-25 (a name
// of bitnet.cpp's converter only).
std::optional<HfFamily> hf_family(model::Arch arch);
// From config.json's architectures[0]; an error names the supported ones.
Result<HfFamily> hf_family(std::string_view architecture);

// The Hugging Face name of a GGUF tensor role (layer < 0 for whole-model tensors), without the
// ".weight" suffix: "model.layers.3.self_attn.q_proj".
std::string hf_tensor_name(const HfFamily& f, model::TensorRole role, int layer = -1);

// Row order of a Q or K projection (rows x k, row-major): Hugging Face's order (heads of
// [first halves, second halves]) to the GGUF order for NORM RoPE (pairs interleaved), as
// llama.cpp's converter permutes them, and back.
void permute_qk_to_gguf(int8_t* rows, uint64_t n_rows, uint64_t k, uint32_t n_heads);
void permute_qk_to_hf(int8_t* rows, uint64_t n_rows, uint64_t k, uint32_t n_heads);

// Packed uint8 [n_out/4, k] <-> ternary values [n_out, k] (row-major). Unpacking fails on code 3.
Status unpack_hf_ternary(const uint8_t* packed, uint64_t n_out, uint64_t k, int8_t* values);
void pack_hf_ternary(const int8_t* values, uint64_t n_out, uint64_t k, uint8_t* packed);

// mean |w| in double, rounded to `dtype` (BF16, F16 or F32) as torch's mean of such a tensor is.
float absmean_in_dtype(const StTensor& w, Dtype dtype);

}  // namespace bitnet::convert
