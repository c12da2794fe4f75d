#include "model/config.h"

#include <cinttypes>
#include <optional>

namespace bitnet::model {
namespace {

Result<uint32_t> read_u32(const gguf::File& f, const std::string& key, bool required,
                          uint32_t fallback) {
  if (f.find(key) == nullptr) {
    if (required) return make_error("%s: missing metadata key '%s'", f.path().c_str(), key.c_str());
    return fallback;
  }
  BITNET_ASSIGN_OR_RETURN(uint64_t v, f.get_uint(key));
  if (v == 0 || v > (uint64_t{1} << 24)) {
    return make_error("%s: metadata key '%s' = %" PRIu64 " is out of range (1..16777216)",
                      f.path().c_str(), key.c_str(), v);
  }
  return static_cast<uint32_t>(v);
}

// Keys of llama.cpp's llama graph that change its math and that this engine does not implement:
// refused with one line each rather than run as if absent. (Sliding windows, attention-scale
// overrides and the like are not read by llama.cpp's llama graph either.)
Status check_llama_keys(const gguf::File& f, const std::string& arch, uint32_t head_dim) {
  auto key = [&](std::string_view s) { return hp_key(arch, s); };
  auto number = [&](std::string_view suffix) -> Result<std::optional<double>> {
    if (f.find(key(suffix)) == nullptr) return std::optional<double>();
    BITNET_ASSIGN_OR_RETURN(double v, f.get_number(key(suffix)));
    return std::optional<double>(v);
  };
  BITNET_ASSIGN_OR_RETURN(auto experts, number("expert_count"));
  if (experts && *experts > 0) {
    return make_error("%s: %s = %g: mixture-of-experts llama models are not supported",
                      f.path().c_str(), key("expert_count").c_str(), *experts);
  }
  std::string scaling = "linear";  // llama.cpp's default
  if (f.find(key("rope.scaling.type"))) {
    BITNET_ASSIGN_OR_RETURN(scaling, f.get_string(key("rope.scaling.type")));
    if (scaling != "none" && scaling != "linear") {
      return make_error(
          "%s: %s = '%s': RoPE scaling is not supported (only none, or linear "
          "with factor 1)",
          f.path().c_str(), key("rope.scaling.type").c_str(), scaling.c_str());
    }
  }
  for (std::string_view k : {"rope.scaling.factor", "rope.scale_linear"}) {
    BITNET_ASSIGN_OR_RETURN(auto factor, number(k));
    // llama.cpp: 0 means unset; any factor is ignored with scaling type none.
    if (factor && *factor != 0 && *factor != 1 && scaling != "none") {
      return make_error("%s: %s = %g: RoPE scaling is not supported", f.path().c_str(),
                        key(k).c_str(), *factor);
    }
  }
  BITNET_ASSIGN_OR_RETURN(auto attn_factor, number("rope.scaling.attn_factor"));
  if (attn_factor && *attn_factor != 1) {
    return make_error("%s: %s = %g: scaled RoPE magnitudes are not supported", f.path().c_str(),
                      key("rope.scaling.attn_factor").c_str(), *attn_factor);
  }
  for (std::string_view k : {"attention.key_length", "attention.value_length"}) {
    BITNET_ASSIGN_OR_RETURN(auto len, number(k));
    if (len && *len != head_dim) {
      return make_error("%s: %s = %g differs from the head dimension %u", f.path().c_str(),
                        key(k).c_str(), *len, head_dim);
    }
  }
  return {};
}

}  // namespace

Result<ModelConfig> read_config(const gguf::File& f) {
  const std::string arch = f.architecture();
  if (arch.empty()) return make_error("%s: missing general.architecture", f.path().c_str());
  auto a = arch_from_name(arch);
  if (!a) {
    return make_error("%s: unknown architecture '%s' (supported: %s)", f.path().c_str(),
                      arch.c_str(), std::string(supported_arch_names()).c_str());
  }
  ModelConfig c;
  c.arch = *a;
  auto key = [&](std::string_view s) { return hp_key(arch, s); };
  BITNET_ASSIGN_OR_RETURN(c.n_embd, read_u32(f, key(hp::kEmbeddingLength), true, 0));
  BITNET_ASSIGN_OR_RETURN(c.n_layers, read_u32(f, key(hp::kBlockCount), true, 0));
  BITNET_ASSIGN_OR_RETURN(c.n_heads, read_u32(f, key(hp::kHeadCount), true, 0));
  BITNET_ASSIGN_OR_RETURN(c.n_kv_heads, read_u32(f, key(hp::kHeadCountKv), false, c.n_heads));
  BITNET_ASSIGN_OR_RETURN(c.n_ff, read_u32(f, key(hp::kFeedForwardLength), true, 0));
  BITNET_ASSIGN_OR_RETURN(c.n_ctx_train, read_u32(f, key(hp::kContextLength), false, 4096));
  if (c.n_embd % c.n_heads != 0) {
    return make_error("%s: embedding_length %u is not a multiple of head_count %u",
                      f.path().c_str(), c.n_embd, c.n_heads);
  }
  if (c.n_kv_heads > c.n_heads || c.n_heads % c.n_kv_heads != 0) {
    return make_error("%s: head_count %u is not a multiple of head_count_kv %u", f.path().c_str(),
                      c.n_heads, c.n_kv_heads);
  }
  if (c.head_dim() > kMaxHeadDim) {
    return make_error("%s: head dimension %u is larger than the supported %u", f.path().c_str(),
                      c.head_dim(), kMaxHeadDim);
  }
  if (c.head_dim() % 2 != 0) {
    return make_error("%s: head dimension %u is odd (RoPE needs pairs)", f.path().c_str(),
                      c.head_dim());
  }
  BITNET_ASSIGN_OR_RETURN(c.rope_dims,
                          read_u32(f, key(hp::kRopeDimensionCount), false, c.head_dim()));
  if (c.rope_dims != c.head_dim()) {
    return make_error(
        "%s: rope.dimension_count %u differs from the head dimension %u "
        "(partial rotary embeddings are not part of any BitNet model)",
        f.path().c_str(), c.rope_dims, c.head_dim());
  }
  if (f.find(key(hp::kRopeFreqBase))) {
    BITNET_ASSIGN_OR_RETURN(double base, f.get_number(key(hp::kRopeFreqBase)));
    if (!(base > 0))
      return make_error("%s: rope.freq_base %g must be positive", f.path().c_str(), base);
    c.rope_freq_base = static_cast<float>(base);
  }
  if (f.find(key(hp::kRmsEps))) {
    BITNET_ASSIGN_OR_RETURN(double eps, f.get_number(key(hp::kRmsEps)));
    if (!(eps > 0 && eps < 1)) {
      return make_error("%s: layer_norm_rms_epsilon %g must be in (0, 1)", f.path().c_str(), eps);
    }
    c.rms_eps = static_cast<float>(eps);
  }
  if (c.arch == Arch::kLlama) BITNET_TRY(check_llama_keys(f, arch, c.head_dim()));

  // Vocabulary size: explicit key, else the tokenizer's list, else the embedding's shape.
  if (f.find(key(hp::kVocabSize))) {
    BITNET_ASSIGN_OR_RETURN(c.n_vocab, read_u32(f, key(hp::kVocabSize), true, 0));
  } else if (const gguf::Value* toks = f.find("tokenizer.ggml.tokens"); toks && toks->as_array()) {
    c.n_vocab = static_cast<uint32_t>(toks->as_array()->size());
  } else if (const gguf::TensorInfo* e = f.find_tensor(tensor_name(TensorRole::kTokenEmbd));
             e && e->dims.size() == 2) {
    c.n_vocab = static_cast<uint32_t>(e->dims[1]);
  }
  if (c.n_vocab == 0) {
    return make_error(
        "%s: cannot tell the vocabulary size (no %s, tokenizer.ggml.tokens or "
        "token_embd.weight)",
        f.path().c_str(), key(hp::kVocabSize).c_str());
  }
  return c;
}

}  // namespace bitnet::model
