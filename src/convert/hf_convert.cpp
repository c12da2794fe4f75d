#include "convert/hf_convert.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <vector>

#include "convert/hf_layout.h"
#include "convert/hf_tokenizer.h"
#include "convert/safetensors.h"
#include "core/fp16.h"
#include "gguf/reader.h"
#include "gguf/writer.h"
#include "quant/encode.h"

namespace bitnet::convert {

using gguf::TensorType;
using gguf::Value;
using model::TensorRole;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct HfConfig {
  HfFamily family;
  model::ModelConfig c;
  uint32_t vocab_size = 0;
  std::string name_or_path;
};

Result<uint32_t> positive(const json& cfg, const char* key, std::optional<uint32_t> fallback) {
  if (!cfg.contains(key) || cfg[key].is_null()) {
    if (fallback) return *fallback;
    return make_error("config.json: %s missing", key);
  }
  const json& v = cfg[key];
  if (!v.is_number_integer() || v.get<int64_t>() <= 0 || v.get<int64_t>() > (1 << 30)) {
    return make_error("config.json: %s must be a positive integer", key);
  }
  return static_cast<uint32_t>(v.get<int64_t>());
}

Result<float> positive_number(const json& cfg, const char* key, float fallback) {
  if (!cfg.contains(key) || cfg[key].is_null()) return fallback;
  const json& v = cfg[key];
  if (!v.is_number() || !(v.get<double>() > 0) || !std::isfinite(v.get<double>())) {
    return make_error("config.json: %s must be a positive number", key);
  }
  return static_cast<float>(v.get<double>());
}

Result<HfConfig> read_config(const std::string& dir) {
  const fs::path path = fs::path(dir) / "config.json";
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return make_error("%s: cannot open (not a Hugging Face checkpoint folder?)", path.c_str());
  std::stringstream ss;
  ss << in.rdbuf();
  const json cfg = json::parse(ss.str(), nullptr, false);
  if (cfg.is_discarded() || !cfg.is_object())
    return make_error("%s: not a JSON object", path.c_str());
  const json& archs = cfg.contains("architectures") ? cfg["architectures"] : json();
  if (!archs.is_array() || archs.empty() || !archs[0].is_string()) {
    return make_error("%s: no \"architectures\" list", path.c_str());
  }
  HfConfig h;
  BITNET_ASSIGN_OR_RETURN(h.family, hf_family(archs[0].get<std::string>()));
  if (cfg.contains("rope_scaling") && !cfg["rope_scaling"].is_null()) {
    return make_error("%s: rope_scaling is not supported", path.c_str());
  }
  model::ModelConfig& c = h.c;
  c.arch = h.family.arch;
  BITNET_ASSIGN_OR_RETURN(c.n_embd, positive(cfg, "hidden_size", std::nullopt));
  BITNET_ASSIGN_OR_RETURN(c.n_layers, positive(cfg, "num_hidden_layers", std::nullopt));
  BITNET_ASSIGN_OR_RETURN(c.n_heads, positive(cfg, "num_attention_heads", std::nullopt));
  BITNET_ASSIGN_OR_RETURN(c.n_kv_heads, positive(cfg, "num_key_value_heads", c.n_heads));
  BITNET_ASSIGN_OR_RETURN(c.n_ff, positive(cfg, "intermediate_size", std::nullopt));
  BITNET_ASSIGN_OR_RETURN(c.n_ctx_train, positive(cfg, "max_position_embeddings", 2048u));
  BITNET_ASSIGN_OR_RETURN(h.vocab_size, positive(cfg, "vocab_size", std::nullopt));
  BITNET_ASSIGN_OR_RETURN(c.rope_freq_base, positive_number(cfg, "rope_theta", 10000.0f));
  BITNET_ASSIGN_OR_RETURN(c.rms_eps, positive_number(cfg, "rms_norm_eps", 1e-6f));
  if (c.n_embd % c.n_heads != 0 || c.n_heads % c.n_kv_heads != 0 || c.head_dim() % 2 != 0) {
    return make_error("%s: %u heads (%u KV heads) do not split hidden_size %u into even heads",
                      path.c_str(), c.n_heads, c.n_kv_heads, c.n_embd);
  }
  c.rope_dims = c.head_dim();
  if (cfg.contains("_name_or_path") && cfg["_name_or_path"].is_string()) {
    h.name_or_path = cfg["_name_or_path"].get<std::string>();
  }
  return h;
}

// tokenizer.* keys of a GGUF file, padded to the model's vocabulary as synth pads them.
Result<std::vector<gguf::KeyValue>> gguf_tokenizer_keys(const std::string& path, uint32_t pad_to) {
  BITNET_ASSIGN_OR_RETURN(gguf::File f, gguf::File::open(path));
  std::vector<gguf::KeyValue> keys;
  size_t n = 0;
  for (const auto& kv : f.metadata()) {
    if (kv.key.rfind("tokenizer.", 0) != 0) continue;
    keys.push_back(kv);
    if (kv.key == "tokenizer.ggml.tokens" && kv.value.as_array())
      n = kv.value.as_array()->items.size();
  }
  if (n == 0) return make_error("%s: no tokenizer.ggml.tokens", path.c_str());
  if (n > pad_to) {
    return make_error("%s: %zu tokens, more than config.json's vocab_size %u", path.c_str(), n,
                      pad_to);
  }
  for (auto& kv : keys) {
    auto* arr = std::get_if<gguf::Array>(&kv.value.mutable_storage());
    if (arr == nullptr || arr->items.size() != n) continue;
    for (size_t id = n; id < pad_to; ++id) {
      if (kv.key == "tokenizer.ggml.tokens") {
        arr->items.emplace_back("[PAD" + std::to_string(id) + "]");
      } else if (kv.key == "tokenizer.ggml.scores") {
        arr->items.emplace_back(-1000.0f);
      } else if (kv.key == "tokenizer.ggml.token_type") {
        arr->items.emplace_back(int32_t{5});
      }
    }
  }
  if (std::none_of(keys.begin(), keys.end(),
                   [](const auto& kv) { return kv.key == "tokenizer.ggml.add_bos_token"; })) {
    keys.push_back({"tokenizer.ggml.add_bos_token", Value(true)});
  }
  return keys;
}

// Drops the pages of a tensor read from the mapping: the checkpoint stays mapped but its
// resident size does not grow with every tensor converted.
void release(std::span<const uint8_t> bytes) {
  static const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  auto b = reinterpret_cast<uintptr_t>(bytes.data()) / page * page;
  const auto e = reinterpret_cast<uintptr_t>(bytes.data() + bytes.size());
  if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
}

struct Planned {
  std::string gguf_name;
  TensorRole role;
  int layer;
  TensorType type;
  std::vector<uint64_t> dims;  // GGUF order: {k, n_out} / {n}
};

class Converter {
 public:
  Converter(const HfConfig& h, const Checkpoint& ck) : h_(h), ck_(ck) {}

  Result<const StTensor*> tensor(const Planned& p, std::string_view suffix = ".weight") const {
    const std::string name = hf_tensor_name(h_.family, p.role, p.layer) + std::string(suffix);
    const StTensor* t = ck_.find(name);
    if (t == nullptr) return make_error("checkpoint has no tensor %s", name.c_str());
    return t;
  }

  // Float tensor of `dims` (GGUF order, so the checkpoint's shape reversed) as F32 / F16.
  Status write_float(const Planned& p, gguf::Writer& w) {
    BITNET_ASSIGN_OR_RETURN(const StTensor* t, tensor(p));
    std::vector<uint64_t> want(p.dims.rbegin(), p.dims.rend());
    if (t->shape != want) return shape_error(*t, want);
    if (t->dtype != Dtype::F32 && t->dtype != Dtype::F16 && t->dtype != Dtype::BF16) {
      return make_error("%s: dtype %s, expected a float type", t->name.c_str(),
                        std::string(dtype_name(t->dtype)).c_str());
    }
    const bool same = (p.type == TensorType::F16 && t->dtype == Dtype::F16) ||
                      (p.type == TensorType::F32 && t->dtype == Dtype::F32);
    constexpr uint64_t kChunk = 1 << 20;
    std::vector<uint8_t> buf;
    for (uint64_t i0 = 0; i0 < t->n_elements; i0 += kChunk) {
      const uint64_t n = std::min(kChunk, t->n_elements - i0);
      if (same) {
        const size_t es = dtype_size(t->dtype);
        const auto part =
            t->data.subspan(static_cast<size_t>(i0 * es), static_cast<size_t>(n * es));
        BITNET_TRY(w.write(part));
        release(part);
        continue;
      }
      buf.resize(static_cast<size_t>(n * (p.type == TensorType::F16 ? 2 : 4)));
      for (uint64_t i = 0; i < n; ++i) {
        const float x = t->at(i0 + i);
        if (p.type == TensorType::F16) {
          const uint16_t hv = fp32_to_fp16(x);
          std::memcpy(buf.data() + 2 * i, &hv, 2);
        } else {
          std::memcpy(buf.data() + 4 * i, &x, 4);
        }
      }
      BITNET_TRY(w.write(buf));
    }
    release(t->data);
    return {};
  }

  Status write_projection(const Planned& p, gguf::Writer& w) {
    BITNET_ASSIGN_OR_RETURN(const StTensor* t, tensor(p));
    const uint64_t k = p.dims[0], n_out = p.dims[1];
    std::vector<int8_t> values(static_cast<size_t>(k * n_out));
    float scale = 0.0f;
    if (t->dtype == Dtype::U8) {
      if (t->shape != std::vector<uint64_t>{n_out / 4, k} || n_out % 4 != 0) {
        return shape_error(*t, {n_out / 4, k});
      }
      BITNET_ASSIGN_OR_RETURN(const StTensor* s, tensor(p, ".weight_scale"));
      if (s->n_elements != 1 || s->dtype == Dtype::U8 || s->dtype == Dtype::I8) {
        return make_error("%s: weight_scale must be one float", s->name.c_str());
      }
      const float ws = s->at(0);
      if (!(ws > 0.0f) || !std::isfinite(ws)) {
        return make_error("%s: weight_scale %g is not a positive number", s->name.c_str(), ws);
      }
      if (auto st = unpack_hf_ternary(t->data.data(), n_out, k, values.data()); !st) {
        return make_error("%s: %s", t->name.c_str(), st.message().c_str());
      }
      scale = h_.family.scale_multiplies ? ws : 1.0f / ws;
      packed_ = true;
    } else {
      if (t->shape != std::vector<uint64_t>{n_out, k}) return shape_error(*t, {n_out, k});
      if (t->dtype != Dtype::F32 && t->dtype != Dtype::F16 && t->dtype != Dtype::BF16) {
        return make_error("%s: dtype %s is neither packed (U8) nor a float master", t->name.c_str(),
                          std::string(dtype_name(t->dtype)).c_str());
      }
      scale = std::max(absmean_in_dtype(*t, t->dtype), 1e-5f);
      for (uint64_t i = 0; i < t->n_elements; ++i) {
        const float x = t->at(i);
        if (!std::isfinite(x)) {
          return make_error("%s: element %llu is %g", t->name.c_str(),
                            static_cast<unsigned long long>(i), x);
        }
        values[i] = static_cast<int8_t>(std::clamp(std::nearbyint(x / scale), -1.0f, 1.0f));
      }
    }
    release(t->data);
    if (h_.family.permute_qk && (p.role == TensorRole::kAttnQ || p.role == TensorRole::kAttnK)) {
      permute_qk_to_gguf(values.data(), n_out, k,
                         p.role == TensorRole::kAttnQ ? h_.c.n_heads : h_.c.n_kv_heads);
    }
    if ((p.type == TensorType::TQ2_0 || p.type == TensorType::TQ1_0) &&
        fp16_to_fp32(fp32_to_fp16(scale)) != scale) {
      return make_error(
          "%s: scale %.9g has no exact fp16 form, which %s block scales need (use "
          "--type i2_s)",
          t->name.c_str(), static_cast<double>(scale),
          std::string(gguf::tensor_type_name(p.type)).c_str());
    }
    std::vector<uint8_t> buf;
    BITNET_TRY(quant::encode_ternary(p.type, values.data(), k, n_out, scale, buf));
    return w.write(buf);
  }

  bool packed() const { return packed_; }

 private:
  static Error shape_error(const StTensor& t, const std::vector<uint64_t>& want) {
    auto str = [](const std::vector<uint64_t>& s) {
      std::string r = "[";
      for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
      return r + "]";
    };
    return make_error("%s: shape %s, config.json implies %s", t.name.c_str(), str(t.shape).c_str(),
                      str(want).c_str());
  }

  const HfConfig& h_;
  const Checkpoint& ck_;
  bool packed_ = false;
};

}  // namespace

Result<ConvertReport> convert_hf(const std::string& dir, const std::string& out,
                                 const ConvertOptions& o) {
  if (o.type != TensorType::I2_S && o.type != TensorType::TQ2_0 && o.type != TensorType::TQ1_0 &&
      o.type != TensorType::F16 && o.type != TensorType::F32) {
    return make_error("--type: projections are written as i2_s, tq2_0, tq1_0, f16 or f32");
  }
  if (o.embd != TensorType::F16 && o.embd != TensorType::F32) {
    return make_error("--embd: embeddings are written as f16 or f32");
  }
  BITNET_ASSIGN_OR_RETURN(HfConfig h, read_config(dir));
  BITNET_ASSIGN_OR_RETURN(Checkpoint ck, Checkpoint::open(dir));
  std::vector<gguf::KeyValue> tok;
  if (!o.vocab_gguf.empty()) {
    BITNET_ASSIGN_OR_RETURN(tok, gguf_tokenizer_keys(o.vocab_gguf, h.vocab_size));
  } else {
    BITNET_ASSIGN_OR_RETURN(
        tok, read_hf_tokenizer(dir, {o.pre, h.vocab_size, h.c.arch == model::Arch::kBitnetB158}));
  }
  for (const auto& kv : tok) {
    if (kv.key == "tokenizer.ggml.tokens") {
      h.c.n_vocab = static_cast<uint32_t>(kv.value.as_array()->items.size());
    }
  }

  model::ModelConfig& c = h.c;
  const std::string arch(model::arch_name(c.arch));
  gguf::Writer w;
  w.set("general.architecture", Value(arch));
  std::string name = o.name;
  if (name.empty()) name = fs::path(h.name_or_path).filename().string();
  if (name.empty()) name = fs::path(dir).lexically_normal().filename().string();
  if (name.empty()) name = fs::path(dir).lexically_normal().parent_path().filename().string();
  w.set("general.name", Value(name));
  w.set("general.file_type", Value(gguf::llama_ftype_for(o.type)));
  w.set("general.quantization_version", Value(uint32_t{2}));
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
  for (auto& kv : tok) w.set(kv.key, std::move(kv.value));

  // The tensors, in the order bitnet.cpp's and llama.cpp's converters write them.
  const uint64_t d = c.n_embd, dkv = c.n_embd_kv(), f = c.n_ff, v = c.n_vocab;
  const bool sub_norms = model::is_bitnet_family(c.arch);
  std::vector<Planned> plan;
  plan.push_back(
      {model::tensor_name(TensorRole::kTokenEmbd), TensorRole::kTokenEmbd, -1, o.embd, {d, v}});
  for (int l = 0; l < static_cast<int>(c.n_layers); ++l) {
    auto norm = [&](TensorRole r, uint64_t n) {
      plan.push_back({model::tensor_name(r, l), r, l, TensorType::F32, {n}});
    };
    auto proj = [&](TensorRole r, uint64_t in, uint64_t n_out) {
      plan.push_back({model::tensor_name(r, l), r, l, o.type, {in, n_out}});
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
  plan.push_back({model::tensor_name(TensorRole::kOutputNorm),
                  TensorRole::kOutputNorm,
                  -1,
                  TensorType::F32,
                  {d}});
  if (ck.find(hf_tensor_name(h.family, TensorRole::kOutput) + ".weight") != nullptr) {
    plan.push_back(
        {model::tensor_name(TensorRole::kOutput), TensorRole::kOutput, -1, o.embd, {d, v}});
  }
  // Every checkpoint tensor must be one of these (rotary tables excepted): a bias or an extra
  // tensor would otherwise be dropped without a word, and the model would compute something else.
  std::set<std::string> used;
  for (const Planned& p : plan) {
    const std::string base = hf_tensor_name(h.family, p.role, p.layer);
    used.insert(base + ".weight");
    if (model::is_projection(p.role)) used.insert(base + ".weight_scale");
  }
  for (const StTensor& t : ck.tensors()) {
    if (used.count(t.name) == 0 && !t.name.ends_with("rotary_emb.inv_freq")) {
      return make_error(
          "checkpoint tensor %s is not part of a %s model (biases and extra tensors "
          "are not converted)",
          t.name.c_str(), std::string(h.family.architecture).c_str());
    }
  }
  for (const Planned& p : plan) BITNET_TRY(w.add_tensor(p.gguf_name, p.type, p.dims));
  BITNET_TRY(w.begin(out));
  Converter conv(h, ck);
  ConvertReport r;
  r.arch = arch;
  uint64_t written = 0;
  for (size_t i = 0; i < plan.size(); ++i) {
    const Planned& p = plan[i];
    if (model::is_projection(p.role)) {
      BITNET_TRY(conv.write_projection(p, w));
      ++r.projections;
    } else {
      BITNET_TRY(conv.write_float(p, w));
    }
    ++r.tensors;
    uint64_t n = 1;
    for (uint64_t x : p.dims) n *= x;
    written += gguf::tensor_nbytes(p.type, n, p.dims[0]).value_or(0);
    if (o.on_progress) o.on_progress(i + 1, plan.size(), written, w.total_data_bytes());
  }
  BITNET_TRY(w.finish());
  r.packed = conv.packed();
  return r;
}

}  // namespace bitnet::convert
