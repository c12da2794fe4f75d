// One table for every GGUF string the engine uses: architectures, hyper-parameter keys and
// tensor names (shared by the loader, the synthetic-model generator, tracing and crossval).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace bitnet::model {

enum class Arch {
  kBitnet,      // "bitnet": upstream llama.cpp / 1bitLLM; SiLU FFN, optional .scale tensors
  kBitnetB158,  // "bitnet-b1.58": official 2B4T file; ReLU^2 FFN
  kBitnet25,    // "bitnet-25": older name of bitnet-b1.58 (bitnet.cpp before 2025-04)
  kLlama,       // "llama": upstream llama.cpp's Llama graph over ternary (TQ1_0/TQ2_0) or float
                // projections; no sub-norms, SiLU FFN, NORM RoPE, output.weight head if present
};

enum class FfnActivation { kSilu, kReluSquared };

// How RoPE pairs a head's elements (ggml's rope modes): NEOX rotates (i, i + head_dim/2), NORM
// (GGML_ROPE_TYPE_NORMAL) rotates adjacent pairs (2i, 2i + 1); both with the same angles.
enum class RopeMode { kNeox, kNorm };

std::optional<Arch> arch_from_name(std::string_view name);
std::string_view arch_name(Arch a);
FfnActivation ffn_activation(Arch a);
RopeMode rope_mode(Arch a);
// The BitNet families (bitnet, bitnet-b1.58, bitnet-25): attn_sub_norm / ffn_sub_norm tensors,
// the LM head is always token_embd, optional .scale tensors (bitnet only). Not llama.
bool is_bitnet_family(Arch a);
// One line naming whose graph a family runs and how it differs from the others, for `inspect`:
// "upstream llama.cpp's Llama graph: no sub-norms, SiLU FFN, NORM RoPE, ...".
std::string_view family_graph(Arch a);
// "bitnet, bitnet-b1.58, bitnet-25, llama" for error messages.
std::string_view supported_arch_names();

// Hyper-parameter keys, prefixed by the architecture name: key(a, kBlockCount) ->
// "bitnet-b1.58.block_count".
namespace hp {
inline constexpr std::string_view kContextLength = "context_length";
inline constexpr std::string_view kEmbeddingLength = "embedding_length";
inline constexpr std::string_view kBlockCount = "block_count";
inline constexpr std::string_view kFeedForwardLength = "feed_forward_length";
inline constexpr std::string_view kHeadCount = "attention.head_count";
inline constexpr std::string_view kHeadCountKv = "attention.head_count_kv";
inline constexpr std::string_view kRmsEps = "attention.layer_norm_rms_epsilon";
inline constexpr std::string_view kRopeFreqBase = "rope.freq_base";
inline constexpr std::string_view kRopeDimensionCount = "rope.dimension_count";
inline constexpr std::string_view kVocabSize = "vocab_size";
}  // namespace hp
std::string hp_key(std::string_view arch, std::string_view suffix);

// Tensors, in the order the official file stores them within a block.
enum class TensorRole {
  kTokenEmbd,    // token_embd.weight        [d, vocab]
  kOutputNorm,   // output_norm.weight       [d]
  kOutput,       // output.weight            [d, vocab] (absent when tied)
  kAttnNorm,     // blk.N.attn_norm.weight   [d]
  kAttnQ,        // blk.N.attn_q.weight      [d, d]
  kAttnK,        // blk.N.attn_k.weight      [d, d_kv]
  kAttnV,        // blk.N.attn_v.weight      [d, d_kv]
  kAttnOutput,   // blk.N.attn_output.weight [d, d]
  kAttnSubNorm,  // blk.N.attn_sub_norm.weight [d]
  kFfnNorm,      // blk.N.ffn_norm.weight    [d]
  kFfnGate,      // blk.N.ffn_gate.weight    [d, f]
  kFfnUp,        // blk.N.ffn_up.weight      [d, f]
  kFfnSubNorm,   // blk.N.ffn_sub_norm.weight [f]
  kFfnDown,      // blk.N.ffn_down.weight    [f, d]
};

// "blk.3.attn_q.weight"; layer is ignored for global tensors.
std::string tensor_name(TensorRole role, int layer = -1);
// "blk.3.attn_q.scale": the optional per-projection scalar of the `bitnet` arch.
std::string scale_tensor_name(TensorRole role, int layer);
bool is_projection(TensorRole role);  // the seven BitLinear matrices of a block

}  // namespace bitnet::model
