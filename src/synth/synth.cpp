#include "synth/synth.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "core/fp16.h"
#include "core/random.h"
#include "gguf/reader.h"
#include "gguf/writer.h"
#include "synth/encode.h"

namespace bitnet::synth {

using gguf::TensorType;
using gguf::Value;
using model::TensorRole;

Result<model::ModelConfig> preset_config(const std::string& preset, model::Arch arch) {
  model::ModelConfig c;
  c.arch = arch;
  if (preset == "tiny") {
    c.n_embd = 256;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.n_ff = 512;
    c.n_ctx_train = 2048;
    c.rope_freq_base = 10000.0f;
  } else if (preset == "2b4t") {
    // The official BitNet b1.58 2B4T shape.
    c.n_embd = 2560;
    c.n_layers = 30;
    c.n_heads = 20;
    c.n_kv_heads = 5;
    c.n_ff = 6912;
    c.n_ctx_train = 4096;
    c.rope_freq_base = 500000.0f;
  } else {
    return make_error("unknown preset '%s' (known: tiny, 2b4t)", preset.c_str());
  }
  c.rms_eps = 1e-5f;
  c.rope_dims = c.head_dim();
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

namespace {

// llama_ftype values (general.file_type) for a file whose projections have this type.
uint32_t file_type_for(TensorType t) {
  switch (t) {
    case TensorType::F32:
      return 0;
    case TensorType::F16:
      return 1;
    case TensorType::TQ1_0:
      return 36;
    case TensorType::TQ2_0:
      return 37;
    case TensorType::I2_S:
      return 40;  // what the official 2B4T file carries
    default:
      return 0;
  }
}

struct PlannedTensor {
  std::string name;
  TensorType type;
  std::vector<uint64_t> dims;
  enum class Kind { kEmbedding, kNorm, kProjection, kScale } kind;
};

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
    return make_error("synth: heads (%u) must divide d=%u into an even head dimension, and KV "
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

// Norm weights in [0.75, 1.25): close to 1, but not all equal, so a wrong element order shows.
float norm_value(SplitMix64& rng) { return 0.75f + 0.5f * rng.uniform(); }

class TensorStreamer {
 public:
  TensorStreamer(const SynthOptions& o, gguf::Writer& w) : o_(o), w_(w) {}

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
    BITNET_TRY(w_.write(bytes));
    done_ += bytes.size();
    if (o_.progress) o_.progress(done_, w_.total_data_bytes());
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
    BITNET_TRY(encode_ternary(t.type, ternary.data(), k, n_out, projection_scale(k), buf));
    return emit(buf);
  }

  const SynthOptions& o_;
  gguf::Writer& w_;
  uint64_t done_ = 0;
};

}  // namespace

Status write_synthetic_model(const SynthOptions& o_in, const std::string& out_path) {
  SynthOptions o = o_in;
  gguf::Writer w;
  const std::string arch(model::arch_name(o.config.arch));
  w.set("general.architecture", Value(arch));
  w.set("general.name", Value(o.name));
  w.set("general.file_type", Value(file_type_for(o.weight_type)));
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
  TensorStreamer streamer(o, w);
  for (const auto& t : plan) BITNET_TRY(streamer.write(t));
  return w.finish();
}

}  // namespace bitnet::synth
