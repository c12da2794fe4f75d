#include "synth/synth.h"

#include <cmath>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "core/fp16.h"
#include "core/random.h"
#include "gguf/reader.h"
#include "gguf/writer.h"
#include "quant/encode.h"
#include "synth/tensors.h"

namespace bitnet::synth {

using gguf::TensorType;
using gguf::Value;
using model::TensorRole;

namespace {

model::ModelConfig shape(uint32_t d, uint32_t layers, uint32_t heads, uint32_t kv_heads,
                         uint32_t ff, uint32_t ctx, float rope_base, float eps) {
  model::ModelConfig c;
  c.n_embd = d;
  c.n_layers = layers;
  c.n_heads = heads;
  c.n_kv_heads = kv_heads;
  c.n_ff = ff;
  c.n_ctx_train = ctx;
  c.rope_freq_base = rope_base;
  c.rms_eps = eps;
  c.rope_dims = c.head_dim();
  return c;
}

constexpr std::string_view kLlamaBpe = "ggml-vocab-llama-bpe.gguf";  // Llama 3's, 128256 tokens
constexpr std::string_view kLlamaSpm = "ggml-vocab-llama-spm.gguf";  // Llama 2's, 32000 tokens

// The published shapes, from each model's config.json (hidden_size, num_hidden_layers,
// num_attention_heads, num_key_value_heads, intermediate_size, max_position_embeddings,
// rope_theta, rms_norm_eps, vocab_size, tie_word_embeddings). Values marked "unconfirmed" were not
// found in a config.json when these presets were written; the model cards give the rest where
// noted. Falcon-E (Falcon-E-1B / 3B) has no preset: its config.json values were not found.
std::vector<Preset> make_presets() {
  using model::Arch;
  return {
      {"tiny", "", Arch::kBitnetB158, kLlamaBpe, "", 0, std::nullopt,
       shape(256, 2, 4, 2, 512, 2048, 10000.0f, 1e-5f)},
      {"2b4t", "BitNet-b1.58-2B-4T", Arch::kBitnetB158, kLlamaBpe, "", 128256, false,
       shape(2560, 30, 20, 5, 6912, 4096, 500000.0f, 1e-5f)},
      // Falcon3 (tiiuae/Falcon3-*-Instruct-1.58bit; bitnet.cpp writes them as `llama`): head
      // dimension 256, rope_theta 1000042, 131072-token vocabulary, its own lm_head. Context:
      // 8K for 1B, 32K for the others (model cards). rms_norm_eps 1e-6 and the untied head are
      // unconfirmed.
      {"falcon3-1b", "Falcon3-1B-Instruct-1.58bit", Arch::kLlama, kLlamaBpe, "falcon3", 131072,
       true, shape(2048, 18, 8, 4, 8192, 8192, 1000042.0f, 1e-6f)},
      {"falcon3-3b", "Falcon3-3B-Instruct-1.58bit", Arch::kLlama, kLlamaBpe, "falcon3", 131072,
       true, shape(3072, 22, 12, 4, 9216, 32768, 1000042.0f, 1e-6f)},
      // One third-party listing gives the 7B a vocab_size of 131080; 131072 (the family's, as the
      // model card says "131K") is kept, unconfirmed.
      {"falcon3-7b", "Falcon3-7B-Instruct-1.58bit", Arch::kLlama, kLlamaBpe, "falcon3", 131072,
       true, shape(3072, 28, 12, 4, 23040, 32768, 1000042.0f, 1e-6f)},
      {"falcon3-10b", "Falcon3-10B-Instruct-1.58bit", Arch::kLlama, kLlamaBpe, "falcon3", 131072,
       true, shape(3072, 40, 12, 4, 23040, 32768, 1000042.0f, 1e-6f)},
      // HF1BitLLM/Llama3-8B-1.58-100B-tokens, fine-tuned from Llama 3 8B Instruct, whose shape,
      // tokenizer (exactly the reference's llama-bpe vocabulary), rope_theta 500000 and 8K
      // context it keeps (the context and RoPE base are Llama 3 8B's, unconfirmed for this repo).
      {"llama3-8b", "Llama3-8B-1.58-100B-tokens", Arch::kLlama, kLlamaBpe, "", 128256, true,
       shape(4096, 32, 32, 8, 14336, 8192, 500000.0f, 1e-5f)},
      // 1bitLLM/bitnet_b1_58-*: Llama 2's SentencePiece tokenizer padded to vocab_size 32002,
      // no GQA, head dimension 96 (large) and 100 (3B). The `bitnet` graph always uses
      // token_embd as the head.
      {"bitnet-large", "bitnet_b1_58-large", Arch::kBitnet, kLlamaSpm, "", 32002, false,
       shape(1536, 24, 16, 16, 4096, 2048, 10000.0f, 1e-5f)},
      {"bitnet-3b", "bitnet_b1_58-3B", Arch::kBitnet, kLlamaSpm, "", 32002, false,
       shape(3200, 26, 32, 32, 8640, 2048, 10000.0f, 1e-5f)},
  };
}

}  // namespace

const std::vector<Preset>& presets() {
  static const std::vector<Preset> all = make_presets();
  return all;
}

const Preset* find_preset(std::string_view name) {
  for (const Preset& p : presets()) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

std::string preset_names() {
  std::string s;
  for (const Preset& p : presets()) {
    if (!s.empty()) s += ", ";
    s += p.name;
  }
  return s;
}

const Preset* match_published_shape(const model::ModelConfig& c) {
  for (const Preset& p : presets()) {
    const auto& s = p.config;
    if (!p.model.empty() && s.n_embd == c.n_embd && s.n_layers == c.n_layers &&
        s.n_heads == c.n_heads && s.n_kv_heads == c.n_kv_heads && s.n_ff == c.n_ff &&
        p.n_vocab == c.n_vocab) {
      return &p;
    }
  }
  return nullptr;
}

Result<model::ModelConfig> preset_config(const std::string& preset, model::Arch arch) {
  const Preset* p = find_preset(preset);
  if (p == nullptr) {
    return make_error("unknown preset '%s' (known: %s)", preset.c_str(), preset_names().c_str());
  }
  model::ModelConfig c = p->config;
  c.arch = arch;
  return c;
}

void ternary_values(uint64_t seed, const std::string& tensor_name, size_t n, int8_t* out) {
  SplitMix64 rng(seed ^ fnv1a64(tensor_name));
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<int8_t>(static_cast<int>(rng.below(3)) - 1);
}

float projection_scale(uint64_t k) {
  // A ternary row with ~2/3 non-zeros over unit-RMS inputs has output RMS ~ sqrt(2k/3).
  const double ideal = 1.0 / std::sqrt(2.0 * static_cast<double>(k) / 3.0);
  return std::exp2f(std::round(std::log2(static_cast<float>(ideal))));
}

std::vector<PlannedTensor> plan_tensors(const SynthOptions& o) {
  const auto& c = o.config;
  const uint64_t d = c.n_embd, dkv = c.n_embd_kv(), f = c.n_ff, v = c.n_vocab;
  using K = PlannedTensor::Kind;
  std::vector<PlannedTensor> p;
  const bool sub_norms = model::is_bitnet_family(c.arch);  // llama has none
  p.push_back({model::tensor_name(TensorRole::kTokenEmbd), o.embd_type, {d, v}, K::kEmbedding});
  struct Proj {
    TensorRole role;
    uint64_t in, out;
  };
  for (int l = 0; l < static_cast<int>(c.n_layers); ++l) {
    auto norm = [&](TensorRole r, uint64_t n) {
      p.push_back({model::tensor_name(r, l), TensorType::F32, {n}, K::kNorm});
    };
    auto proj = [&](TensorRole r, uint64_t in, uint64_t out) {
      p.push_back({model::tensor_name(r, l), o.weight_type, {in, out}, K::kProjection});
      if (o.scale_tensors) {
        p.push_back({model::scale_tensor_name(r, l), TensorType::F32, {1}, K::kScale});
      }
    };
    norm(TensorRole::kAttnNorm, d);
    proj(TensorRole::kAttnQ, d, d);
    proj(TensorRole::kAttnK, d, dkv);
    proj(TensorRole::kAttnV, d, dkv);
    proj(TensorRole::kAttnOutput, d, d);
    if (sub_norms) norm(TensorRole::kAttnSubNorm, d);
    norm(TensorRole::kFfnNorm, d);
    proj(TensorRole::kFfnGate, d, f);
    proj(TensorRole::kFfnUp, d, f);
    if (sub_norms) norm(TensorRole::kFfnSubNorm, f);
    proj(TensorRole::kFfnDown, f, d);
  }
  p.push_back({model::tensor_name(TensorRole::kOutputNorm), TensorType::F32, {d}, K::kNorm});
  if (o.untied_head.value_or(!sub_norms)) {
    p.push_back({model::tensor_name(TensorRole::kOutput), o.embd_type, {d, v}, K::kEmbedding});
  }
  return p;
}

// The tokenizer.* keys of the vocabulary file, with tokenizer.ggml.pre adjusted as asked.
Result<std::vector<gguf::KeyValue>> tokenizer_keys(const SynthOptions& o) {
  BITNET_ASSIGN_OR_RETURN(gguf::File vocab, gguf::File::open(o.vocab_path));
  std::vector<gguf::KeyValue> keys;
  for (const auto& kv : vocab.metadata()) {
    if (kv.key.rfind("tokenizer.", 0) != 0) continue;
    if (kv.key == "tokenizer.ggml.pre" && !o.pre_tokenizer.empty()) continue;
    keys.push_back(kv);
  }
  const Value* tokens = vocab.find("tokenizer.ggml.tokens");
  if (tokens == nullptr || tokens->as_array() == nullptr || tokens->as_array()->items.empty()) {
    return make_error("%s: no tokenizer.ggml.tokens array to copy", o.vocab_path.c_str());
  }
  const size_t n_tokens = tokens->as_array()->items.size();
  if (o.pad_vocab_to != 0 && n_tokens > o.pad_vocab_to) {
    return make_error("%s has %zu tokens, more than the %u the model's vocabulary holds",
                      o.vocab_path.c_str(), n_tokens, o.pad_vocab_to);
  }
  if (o.pad_vocab_to > n_tokens) {
    // What llama.cpp's converters write for ids the tokenizer does not define: "[PAD{id}]",
    // score -1000, type UNUSED (5), so neither engine's tokenizer ever produces them.
    for (auto& kv : keys) {
      auto* arr = std::get_if<gguf::Array>(&kv.value.mutable_storage());
      if (arr == nullptr || arr->items.size() != n_tokens) continue;
      for (size_t id = n_tokens; id < o.pad_vocab_to; ++id) {
        using gguf::ValueType;
        if (kv.key == "tokenizer.ggml.tokens" && arr->element_type == ValueType::STRING) {
          arr->items.emplace_back("[PAD" + std::to_string(id) + "]");
        } else if (kv.key == "tokenizer.ggml.scores" && arr->element_type == ValueType::F32) {
          arr->items.emplace_back(-1000.0f);
        } else if (kv.key == "tokenizer.ggml.token_type" && arr->element_type == ValueType::I32) {
          arr->items.emplace_back(int32_t{5});
        } else {
          return make_error("%s: cannot pad the per-token array %s", o.vocab_path.c_str(),
                            kv.key.c_str());
        }
      }
    }
  }
  if (!o.pre_tokenizer.empty() && o.pre_tokenizer != "none") {
    keys.push_back({"tokenizer.ggml.pre", Value(o.pre_tokenizer)});
  }
  // 2B4T adds BOS (<|begin_of_text|>); say so explicitly, since without tokenizer.ggml.pre the
  // reference engines would not add it by default.
  if (vocab.find("tokenizer.ggml.add_bos_token") == nullptr) {
    keys.push_back({"tokenizer.ggml.add_bos_token", Value(true)});
  }
  return keys;
}

Status check_shapes(const SynthOptions& o) {
  const auto& c = o.config;
  if (c.n_embd == 0 || c.n_layers == 0 || c.n_heads == 0 || c.n_kv_heads == 0 || c.n_ff == 0) {
    return make_error("synth: every dimension must be positive");
  }
  if (c.n_embd % c.n_heads != 0 || c.n_heads % c.n_kv_heads != 0 || c.head_dim() % 2 != 0) {
    return make_error(
        "synth: heads (%u) must divide d=%u into an even head dimension, and KV "
        "heads (%u) must divide heads",
        c.n_heads, c.n_embd, c.n_kv_heads);
  }
  // Projections must be whole blocks of the weight format along K (and I2_S's 128-blocks).
  for (uint64_t k : {uint64_t{c.n_embd}, uint64_t{c.n_ff}}) {  // the input lengths K
    if (!gguf::row_nbytes(o.weight_type, k) || (o.weight_type == TensorType::I2_S && k % 128)) {
      return make_error("synth: dimension %llu is not a whole number of %s blocks",
                        static_cast<unsigned long long>(k),
                        std::string(gguf::tensor_type_name(o.weight_type)).c_str());
    }
  }
  return {};
}

namespace {

// Norm weights in [0.75, 1.25): close to 1, but not all equal, so a wrong element order shows.
float norm_value(SplitMix64& rng) { return 0.75f + 0.5f * rng.uniform(); }

class TensorStreamer {
 public:
  TensorStreamer(const SynthOptions& o, const ByteSink& sink, uint64_t total)
      : o_(o), sink_(sink), total_(total) {}

  Status write(const PlannedTensor& t) {
    switch (t.kind) {
      case PlannedTensor::Kind::kEmbedding:
        return write_embedding(t);
      case PlannedTensor::Kind::kNorm:
        return write_norm(t);
      case PlannedTensor::Kind::kScale:
        return write_scale(t);
      case PlannedTensor::Kind::kProjection:
        return write_projection(t);
    }
    return {};
  }

 private:
  Status emit(const std::vector<uint8_t>& bytes) {
    BITNET_TRY(sink_(bytes));
    done_ += bytes.size();
    if (o_.progress) o_.progress(done_, total_);
    return {};
  }

  Status write_embedding(const PlannedTensor& t) {
    // Gaussian rows with std 3/sqrt(d): logits = embd . normed_h then have std ~3.
    const uint64_t d = t.dims[0], rows = t.dims[1];
    const float sigma = 3.0f / std::sqrt(static_cast<float>(d));
    SplitMix64 rng(o_.seed ^ fnv1a64(t.name));
    const uint64_t chunk_rows = 1024;
    std::vector<uint8_t> buf;
    for (uint64_t r0 = 0; r0 < rows; r0 += chunk_rows) {
      const uint64_t nr = std::min(chunk_rows, rows - r0);
      const size_t n = static_cast<size_t>(nr * d);
      buf.resize(n * (t.type == TensorType::F16 ? 2 : 4));
      for (size_t i = 0; i < n; ++i) {
        const float x = rng.normal() * sigma;
        if (t.type == TensorType::F16) {
          const uint16_t h = fp32_to_fp16(x);
          std::memcpy(buf.data() + 2 * i, &h, 2);
        } else {
          std::memcpy(buf.data() + 4 * i, &x, 4);
        }
      }
      BITNET_TRY(emit(buf));
    }
    return {};
  }

  Status write_norm(const PlannedTensor& t) {
    SplitMix64 rng(o_.seed ^ fnv1a64(t.name));
    std::vector<uint8_t> buf(t.dims[0] * 4);
    for (uint64_t i = 0; i < t.dims[0]; ++i) {
      const float x = norm_value(rng);
      std::memcpy(buf.data() + 4 * i, &x, 4);
    }
    return emit(buf);
  }

  Status write_scale(const PlannedTensor& t) {
    // Powers of two from {0.5, 1, 2}: exact, and visibly applied (or not) in the output.
    SplitMix64 rng(o_.seed ^ fnv1a64(t.name));
    const float x = std::exp2f(static_cast<float>(static_cast<int>(rng.below(3)) - 1));
    std::vector<uint8_t> buf(4);
    std::memcpy(buf.data(), &x, 4);
    return emit(buf);
  }

  Status write_projection(const PlannedTensor& t) {
    const uint64_t k = t.dims[0], n_out = t.dims[1];
    const size_t n = static_cast<size_t>(k * n_out);
    std::vector<int8_t> ternary(n);
    ternary_values(o_.seed, t.name, n, ternary.data());
    std::vector<uint8_t> buf;
    BITNET_TRY(quant::encode_ternary(t.type, ternary.data(), k, n_out, projection_scale(k), buf));
    return emit(buf);
  }

  const SynthOptions& o_;
  const ByteSink& sink_;
  uint64_t total_;
  uint64_t done_ = 0;
};

}  // namespace

Status tensor_bytes(const SynthOptions& o, const PlannedTensor& t, const ByteSink& sink) {
  TensorStreamer s(o, sink, 0);
  return s.write(t);
}

Status write_synthetic_model(const SynthOptions& o_in, const std::string& out_path) {
  SynthOptions o = o_in;
  gguf::Writer w;
  const std::string arch(model::arch_name(o.config.arch));
  w.set("general.architecture", Value(arch));
  w.set("general.name", Value(o.name));
  w.set("general.file_type", Value(gguf::llama_ftype_for(o.weight_type)));
  w.set("general.quantization_version", Value(uint32_t{2}));
  BITNET_ASSIGN_OR_RETURN(auto tok_keys, tokenizer_keys(o));
  for (const auto& kv : tok_keys) {
    if (kv.key == "tokenizer.ggml.tokens") {
      o.config.n_vocab = static_cast<uint32_t>(kv.value.as_array()->items.size());
    }
  }
  BITNET_TRY(check_shapes(o));

  // Architecture keys first, then the (large) tokenizer arrays, as the converters order them.
  const auto& c = o.config;
  auto key = [&](std::string_view s) { return model::hp_key(arch, s); };
  w.set(key(model::hp::kVocabSize), Value(c.n_vocab));
  w.set(key(model::hp::kContextLength), Value(c.n_ctx_train));
  w.set(key(model::hp::kEmbeddingLength), Value(c.n_embd));
  w.set(key(model::hp::kBlockCount), Value(c.n_layers));
  w.set(key(model::hp::kFeedForwardLength), Value(c.n_ff));
  w.set(key(model::hp::kRopeDimensionCount), Value(c.head_dim()));
  w.set(key(model::hp::kHeadCount), Value(c.n_heads));
  w.set(key(model::hp::kHeadCountKv), Value(c.n_kv_heads));
  w.set(key(model::hp::kRopeFreqBase), Value(c.rope_freq_base));
  w.set(key(model::hp::kRmsEps), Value(c.rms_eps));
  for (auto& kv : tok_keys) w.set(kv.key, std::move(kv.value));

  const auto plan = plan_tensors(o);
  for (const auto& t : plan) BITNET_TRY(w.add_tensor(t.name, t.type, t.dims));
  BITNET_TRY(w.begin(out_path));
  const ByteSink sink = [&](std::span<const uint8_t> b) { return w.write(b); };
  TensorStreamer streamer(o, sink, w.total_data_bytes());
  for (const auto& t : plan) BITNET_TRY(streamer.write(t));
  return w.finish();
}

}  // namespace bitnet::synth
