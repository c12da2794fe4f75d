#include "model/arch.h"

namespace bitnet::model {

std::optional<Arch> arch_from_name(std::string_view name) {
  if (name == "bitnet") return Arch::kBitnet;
  if (name == "bitnet-b1.58") return Arch::kBitnetB158;
  if (name == "bitnet-25") return Arch::kBitnet25;
  if (name == "llama") return Arch::kLlama;
  return std::nullopt;
}

std::string_view arch_name(Arch a) {
  switch (a) {
    case Arch::kBitnet:
      return "bitnet";
    case Arch::kBitnetB158:
      return "bitnet-b1.58";
    case Arch::kBitnet25:
      return "bitnet-25";
    case Arch::kLlama:
      return "llama";
  }
  return "?";
}

FfnActivation ffn_activation(Arch a) {
  return a == Arch::kBitnet || a == Arch::kLlama ? FfnActivation::kSilu
                                                 : FfnActivation::kReluSquared;
}

RopeMode rope_mode(Arch a) { return a == Arch::kLlama ? RopeMode::kNorm : RopeMode::kNeox; }

bool is_bitnet_family(Arch a) { return a != Arch::kLlama; }

std::string_view family_graph(Arch a) {
  switch (a) {
    case Arch::kBitnetB158:
      return "bitnet.cpp's BitNet b1.58 graph: sub-norms, ReLU^2 FFN, NEOX RoPE, head token_embd";
    case Arch::kBitnet25:
      return "bitnet.cpp's BitNet b1.58 graph (its name before 2025-04): sub-norms, ReLU^2 FFN, "
             "NEOX RoPE, head token_embd";
    case Arch::kBitnet:
      return "upstream llama.cpp's BitNet graph: sub-norms, SiLU FFN, NEOX RoPE, optional .scale "
             "tensors, head token_embd";
    case Arch::kLlama:
      return "upstream llama.cpp's Llama graph: no sub-norms, SiLU FFN, NORM RoPE, head "
             "output.weight if present";
  }
  return "?";
}

std::string_view supported_arch_names() { return "bitnet, bitnet-b1.58, bitnet-25, llama"; }

std::string hp_key(std::string_view arch, std::string_view suffix) {
  std::string k(arch);
  k += '.';
  k += suffix;
  return k;
}

namespace {

std::string_view role_stem(TensorRole role) {
  switch (role) {
    case TensorRole::kTokenEmbd:
      return "token_embd";
    case TensorRole::kOutputNorm:
      return "output_norm";
    case TensorRole::kOutput:
      return "output";
    case TensorRole::kAttnNorm:
      return "attn_norm";
    case TensorRole::kAttnQ:
      return "attn_q";
    case TensorRole::kAttnK:
      return "attn_k";
    case TensorRole::kAttnV:
      return "attn_v";
    case TensorRole::kAttnOutput:
      return "attn_output";
    case TensorRole::kAttnSubNorm:
      return "attn_sub_norm";
    case TensorRole::kFfnNorm:
      return "ffn_norm";
    case TensorRole::kFfnGate:
      return "ffn_gate";
    case TensorRole::kFfnUp:
      return "ffn_up";
    case TensorRole::kFfnSubNorm:
      return "ffn_sub_norm";
    case TensorRole::kFfnDown:
      return "ffn_down";
  }
  return "?";
}

bool is_global(TensorRole role) {
  return role == TensorRole::kTokenEmbd || role == TensorRole::kOutputNorm ||
         role == TensorRole::kOutput;
}

std::string full_name(TensorRole role, int layer, std::string_view suffix) {
  std::string s;
  if (!is_global(role)) s = "blk." + std::to_string(layer) + ".";
  s += role_stem(role);
  s += suffix;
  return s;
}

}  // namespace

std::string tensor_name(TensorRole role, int layer) { return full_name(role, layer, ".weight"); }

std::string scale_tensor_name(TensorRole role, int layer) {
  return full_name(role, layer, ".scale");
}

bool is_projection(TensorRole role) {
  switch (role) {
    case TensorRole::kAttnQ:
    case TensorRole::kAttnK:
    case TensorRole::kAttnV:
    case TensorRole::kAttnOutput:
    case TensorRole::kFfnGate:
    case TensorRole::kFfnUp:
    case TensorRole::kFfnDown:
      return true;
    default:
      return false;
  }
}

}  // namespace bitnet::model
