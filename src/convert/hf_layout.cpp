#include "convert/hf_layout.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/fp16.h"

namespace bitnet::convert {

using model::Arch;
using model::TensorRole;

std::optional<HfFamily> hf_family(Arch arch) {
  switch (arch) {
    case Arch::kBitnetB158:
      return HfFamily{arch, "BitNetForCausalLM", "bitnet", "relu2", true, false};
    case Arch::kLlama:
      return HfFamily{arch, "LlamaForCausalLM", "llama", "silu", false, true};
    case Arch::kBitnet:
      return HfFamily{arch, "BitnetForCausalLM", "llama", "silu", false, false};
    case Arch::kBitnet25:
      return std::nullopt;
  }
  return std::nullopt;
}

Result<HfFamily> hf_family(std::string_view architecture) {
  for (Arch a : {Arch::kBitnetB158, Arch::kLlama, Arch::kBitnet}) {
    if (hf_family(a)->architecture == architecture) return *hf_family(a);
  }
  return make_error(
      "config.json: architecture '%s' is not a BitNet checkpoint we convert (BitNetForCausalLM, "
      "LlamaForCausalLM with quant_method bitnet, BitnetForCausalLM)",
      std::string(architecture).c_str());
}

std::string hf_tensor_name(const HfFamily& f, TensorRole role, int layer) {
  const std::string blk = "model.layers." + std::to_string(layer) + ".";
  const bool one_bit_llm = f.arch == Arch::kBitnet;
  switch (role) {
    case TensorRole::kTokenEmbd:
      return "model.embed_tokens";
    case TensorRole::kOutputNorm:
      return "model.norm";
    case TensorRole::kOutput:
      return "lm_head";
    case TensorRole::kAttnNorm:
      return blk + "input_layernorm";
    case TensorRole::kAttnQ:
      return blk + "self_attn.q_proj";
    case TensorRole::kAttnK:
      return blk + "self_attn.k_proj";
    case TensorRole::kAttnV:
      return blk + "self_attn.v_proj";
    case TensorRole::kAttnOutput:
      return blk + "self_attn.o_proj";
    case TensorRole::kAttnSubNorm:
      return blk + (one_bit_llm ? "self_attn.inner_attn_ln" : "self_attn.attn_sub_norm");
    case TensorRole::kFfnNorm:
      return blk + "post_attention_layernorm";
    case TensorRole::kFfnGate:
      return blk + "mlp.gate_proj";
    case TensorRole::kFfnUp:
      return blk + "mlp.up_proj";
    case TensorRole::kFfnSubNorm:
      return blk + (one_bit_llm ? "mlp.ffn_layernorm" : "mlp.ffn_sub_norm");
    case TensorRole::kFfnDown:
      return blk + "mlp.down_proj";
  }
  return "";
}

namespace {

// Within each head of hd rows: Hugging Face row i * hd/2 + j <-> GGUF row 2j + i.
void permute_rows(int8_t* rows, uint64_t n_rows, uint64_t k, uint32_t n_heads, bool to_gguf) {
  const uint64_t hd = n_rows / n_heads, half = hd / 2;
  std::vector<int8_t> head(static_cast<size_t>(hd * k));
  for (uint64_t h = 0; h < n_heads; ++h) {
    int8_t* base = rows + h * hd * k;
    std::memcpy(head.data(), base, head.size());
    for (uint64_t i = 0; i < 2; ++i) {
      for (uint64_t j = 0; j < half; ++j) {
        const uint64_t hf = i * half + j, gg = 2 * j + i;
        const uint64_t dst = to_gguf ? gg : hf, src = to_gguf ? hf : gg;
        std::memcpy(base + dst * k, head.data() + src * k, static_cast<size_t>(k));
      }
    }
  }
}

}  // namespace

void permute_qk_to_gguf(int8_t* rows, uint64_t n_rows, uint64_t k, uint32_t n_heads) {
  permute_rows(rows, n_rows, k, n_heads, true);
}
void permute_qk_to_hf(int8_t* rows, uint64_t n_rows, uint64_t k, uint32_t n_heads) {
  permute_rows(rows, n_rows, k, n_heads, false);
}

Status unpack_hf_ternary(const uint8_t* packed, uint64_t n_out, uint64_t k, int8_t* values) {
  const uint64_t r_count = n_out / 4;
  for (uint64_t r = 0; r < r_count; ++r) {
    for (uint64_t c = 0; c < k; ++c) {
      const uint8_t byte = packed[r * k + c];
      for (uint64_t i = 0; i < 4; ++i) {
        const int code = (byte >> (2 * i)) & 3;
        if (code == 3) {
          return make_error(
              "packed byte [%llu, %llu] holds code 3, which no ternary value packs to",
              static_cast<unsigned long long>(r), static_cast<unsigned long long>(c));
        }
        values[(i * r_count + r) * k + c] = static_cast<int8_t>(code - 1);
      }
    }
  }
  return {};
}

void pack_hf_ternary(const int8_t* values, uint64_t n_out, uint64_t k, uint8_t* packed) {
  const uint64_t r_count = n_out / 4;
  for (uint64_t r = 0; r < r_count; ++r) {
    for (uint64_t c = 0; c < k; ++c) {
      uint8_t byte = 0;
      for (uint64_t i = 0; i < 4; ++i) {
        byte |= static_cast<uint8_t>((values[(i * r_count + r) * k + c] + 1) << (2 * i));
      }
      packed[r * k + c] = byte;
    }
  }
}

float absmean_in_dtype(const StTensor& w, Dtype dtype) {
  double sum = 0.0;
  for (uint64_t i = 0; i < w.n_elements; ++i) sum += std::fabs(static_cast<double>(w.at(i)));
  const auto mean = static_cast<float>(sum / static_cast<double>(w.n_elements));
  switch (dtype) {
    case Dtype::BF16: {
      // Round to nearest even on the 16 bits bf16 keeps.
      const uint32_t b = std::bit_cast<uint32_t>(mean);
      const uint32_t rounded = (b + 0x7FFFu + ((b >> 16) & 1u)) & 0xFFFF0000u;
      return std::bit_cast<float>(rounded);
    }
    case Dtype::F16:
      return fp16_to_fp32(fp32_to_fp16(mean));
    default:
      return mean;
  }
}

}  // namespace bitnet::convert
