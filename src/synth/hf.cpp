#include <bit>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "convert/hf_layout.h"
#include "convert/hf_tokenizer.h"
#include "convert/safetensors_writer.h"
#include "core/fp16.h"
#include "synth/synth.h"
#include "synth/tensors.h"

namespace bitnet::synth {

using convert::Dtype;
using gguf::TensorType;
using model::TensorRole;
namespace fs = std::filesystem;

namespace {

// The GGUF role and layer of a planned tensor name ("blk.3.attn_q.weight").
std::pair<TensorRole, int> role_of(const std::string& name, int n_layers) {
  for (int l = -1; l < n_layers; ++l) {
    for (int r = 0; r <= static_cast<int>(TensorRole::kFfnDown); ++r) {
      const auto role = static_cast<TensorRole>(r);
      if (model::tensor_name(role, l) == name) return {role, l};
    }
  }
  return {TensorRole::kTokenEmbd, -2};
}

uint16_t to_bf16(float x) { return static_cast<uint16_t>(std::bit_cast<uint32_t>(x) >> 16); }

// Tensors spread over files of at most `shard_bytes` (a tensor never split), as
// save_pretrained shards a checkpoint: one model.safetensors, or model-0000i-of-0000n.safetensors
// with model.safetensors.index.json mapping each tensor to its file. Bytes are written in
// declaration order, across file boundaries.
class ShardedWriter {
 public:
  explicit ShardedWriter(uint64_t shard_bytes) : shard_bytes_(shard_bytes) {}

  void add(const std::string& name, Dtype dtype, std::vector<uint64_t> shape) {
    uint64_t n = convert::dtype_size(dtype);
    for (uint64_t d : shape) n *= d;
    if (shards_.empty() || (shard_used_ > 0 && shard_used_ + n > shard_bytes_)) {
      shards_.push_back(std::make_unique<convert::SafetensorsWriter>());
      shards_.back()->set_metadata("format", "pt");
      shard_used_ = 0;
    }
    shards_.back()->add(name, dtype, std::move(shape));
    shard_used_ += n;
    names_.emplace_back(name, shards_.size() - 1);
    total_ += n;
  }

  Status begin(const std::string& dir) {
    const size_t n = shards_.size();
    for (size_t i = 0; i < n; ++i) {
      char name[64];
      std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, n);
      files_.push_back(n == 1 ? "model.safetensors" : name);
    }
    if (n > 1) {
      nlohmann::ordered_json index;
      index["metadata"] = {{"total_size", total_}};
      index["weight_map"] = nlohmann::ordered_json::object();
      for (const auto& [tensor, shard] : names_) index["weight_map"][tensor] = files_[shard];
      std::ofstream out(fs::path(dir) / "model.safetensors.index.json", std::ios::binary);
      out << index.dump(2) << '\n';
      if (!out) return make_error("%s/model.safetensors.index.json: cannot write", dir.c_str());
    }
    dir_ = dir;
    return shards_[0]->begin((fs::path(dir) / files_[0]).string());
  }

  Status write(std::span<const uint8_t> bytes) {
    while (!bytes.empty()) {
      convert::SafetensorsWriter& w = *shards_[current_];
      const uint64_t room = w.data_bytes() - in_current_;
      if (room == 0) {
        BITNET_TRY(w.finish());
        if (++current_ >= shards_.size()) return make_error("more bytes than the tensors hold");
        in_current_ = 0;
        BITNET_TRY(shards_[current_]->begin((fs::path(dir_) / files_[current_]).string()));
        continue;
      }
      const size_t n = static_cast<size_t>(std::min<uint64_t>(room, bytes.size()));
      BITNET_TRY(w.write(bytes.first(n)));
      in_current_ += n;
      bytes = bytes.subspan(n);
    }
    return {};
  }

  Status finish() {
    if (current_ + 1 != shards_.size()) return make_error("fewer bytes than the tensors hold");
    return shards_[current_]->finish();
  }

 private:
  uint64_t shard_bytes_, shard_used_ = 0, total_ = 0, in_current_ = 0;
  size_t current_ = 0;
  std::vector<std::unique_ptr<convert::SafetensorsWriter>> shards_;
  std::vector<std::pair<std::string, size_t>> names_;
  std::vector<std::string> files_;
  std::string dir_;
};

}  // namespace

Result<bool> write_synthetic_hf(const SynthOptions& o_in, bool packed, const std::string& dir,
                                uint64_t shard_bytes) {
  SynthOptions o = o_in;
  BITNET_ASSIGN_OR_RETURN(auto tok, tokenizer_keys(o));
  for (const auto& kv : tok) {
    if (kv.key == "tokenizer.ggml.tokens") {
      o.config.n_vocab = static_cast<uint32_t>(kv.value.as_array()->items.size());
    }
  }
  BITNET_TRY(check_shapes(o));
  const auto family = convert::hf_family(o.config.arch);
  if (!family) return make_error("synth --format hf: no Hugging Face form of bitnet-25");
  if (o.scale_tensors) return make_error("synth --format hf: checkpoints have no .scale tensors");
  if (o.embd_type != TensorType::F16 && o.embd_type != TensorType::F32) {
    return make_error("synth --format hf: embeddings are f16 or f32");
  }
  const auto& c = o.config;
  const Dtype master = o.config.arch == model::Arch::kBitnetB158 ? Dtype::BF16 : Dtype::F16;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return make_error("%s: cannot create: %s", dir.c_str(), ec.message().c_str());

  const auto plan = plan_tensors(o);
  bool untied = false;
  ShardedWriter st(shard_bytes);
  for (const PlannedTensor& t : plan) {
    const auto [role, layer] = role_of(t.name, static_cast<int>(c.n_layers));
    const std::string name = convert::hf_tensor_name(*family, role, layer);
    untied = untied || role == TensorRole::kOutput;
    if (t.kind == PlannedTensor::Kind::kProjection) {
      const uint64_t k = t.dims[0], n_out = t.dims[1];
      if (packed) {
        st.add(name + ".weight", Dtype::U8, {n_out / 4, k});
        st.add(name + ".weight_scale", Dtype::BF16, {1});
      } else {
        st.add(name + ".weight", master, {n_out, k});
      }
    } else {
      const Dtype dt = t.type == TensorType::F16 ? Dtype::F16 : Dtype::F32;
      st.add(name + ".weight", dt, std::vector<uint64_t>(t.dims.rbegin(), t.dims.rend()));
    }
  }

  nlohmann::ordered_json cfg;
  cfg["_name_or_path"] = o.name;
  cfg["architectures"] = {std::string(family->architecture)};
  cfg["model_type"] = std::string(family->model_type);
  cfg["hidden_act"] = std::string(family->hidden_act);
  cfg["hidden_size"] = c.n_embd;
  cfg["intermediate_size"] = c.n_ff;
  cfg["num_hidden_layers"] = c.n_layers;
  cfg["num_attention_heads"] = c.n_heads;
  cfg["num_key_value_heads"] = c.n_kv_heads;
  cfg["max_position_embeddings"] = c.n_ctx_train;
  cfg["rope_theta"] = static_cast<double>(c.rope_freq_base);
  cfg["rms_norm_eps"] = static_cast<double>(c.rms_eps);
  cfg["vocab_size"] = c.n_vocab;
  cfg["tie_word_embeddings"] = !untied;
  for (const auto& kv : tok) {
    if (kv.key == "tokenizer.ggml.bos_token_id") cfg["bos_token_id"] = *kv.value.as_uint();
    if (kv.key == "tokenizer.ggml.eos_token_id") cfg["eos_token_id"] = *kv.value.as_uint();
  }
  cfg["torch_dtype"] = master == Dtype::BF16 ? "bfloat16" : "float16";
  if (packed) {
    cfg["quantization_config"] = {{"quant_method", "bitnet"}, {"quantization_mode", "offline"}};
    if (family->scale_multiplies) cfg["quantization_config"]["linear_class"] = "autobitlinear";
  }
  {
    std::ofstream out(fs::path(dir) / "config.json", std::ios::binary);
    out << cfg.dump(2) << '\n';
    if (!out) return make_error("%s/config.json: cannot write", dir.c_str());
  }

  BITNET_TRY(st.begin(dir));
  const ByteSink sink = [&](std::span<const uint8_t> b) { return st.write(b); };
  for (const PlannedTensor& t : plan) {
    if (t.kind != PlannedTensor::Kind::kProjection) {
      BITNET_TRY(tensor_bytes(o, t, sink));
      continue;
    }
    const auto [role, layer] = role_of(t.name, static_cast<int>(c.n_layers));
    const uint64_t k = t.dims[0], n_out = t.dims[1];
    const size_t n = static_cast<size_t>(k * n_out);
    std::vector<int8_t> v(n);
    ternary_values(o.seed, t.name, n, v.data());
    if (family->permute_qk && (role == TensorRole::kAttnQ || role == TensorRole::kAttnK)) {
      convert::permute_qk_to_hf(v.data(), n_out, k,
                                role == TensorRole::kAttnQ ? c.n_heads : c.n_kv_heads);
    }
    const float scale = projection_scale(k);
    std::vector<uint8_t> buf;
    if (packed) {
      buf.resize(n / 4);
      convert::pack_hf_ternary(v.data(), n_out, k, buf.data());
      BITNET_TRY(st.write(buf));
      // The layer multiplies by weight_scale or divides by it (hf_layout.h); powers of two are
      // exact either way, in bf16 too.
      const uint16_t s = to_bf16(family->scale_multiplies ? scale : 1.0f / scale);
      buf.assign(2, 0);
      std::memcpy(buf.data(), &s, 2);
      BITNET_TRY(st.write(buf));
      continue;
    }
    size_t nnz = 0;
    for (int8_t x : v) nnz += x != 0;
    size_t twos = n - nnz;  // sum |w| = scale * (nnz + twos) = scale * n
    if (twos > nnz) {
      return make_error("synth --format hf: %s has too few non-zero weights for exact masters",
                        t.name.c_str());
    }
    buf.resize(n * 2);
    for (size_t i = 0; i < n; ++i) {
      float w = static_cast<float>(v[i]) * scale;
      if (v[i] != 0 && twos > 0) {
        w *= 2.0f;
        --twos;
      }
      const uint16_t h = master == Dtype::BF16 ? to_bf16(w) : fp32_to_fp16(w);
      std::memcpy(buf.data() + 2 * i, &h, 2);
    }
    BITNET_TRY(st.write(buf));
  }
  BITNET_TRY(st.finish());

  const gguf::Value* model = nullptr;
  for (const auto& kv : tok) {
    if (kv.key == "tokenizer.ggml.model") model = &kv.value;
  }
  if (model == nullptr || model->as_string() == nullptr || *model->as_string() != "gpt2") {
    return false;
  }
  BITNET_TRY(convert::write_hf_tokenizer(tok, dir));
  return true;
}

}  // namespace bitnet::synth
