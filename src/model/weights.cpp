#include "model/weights.h"

#include <cinttypes>
#include <cmath>
#include <cstring>

#include "core/fp16.h"
#include "quant/i2s.h"

namespace bitnet::model {
namespace {

using gguf::TensorType;

std::string shape_str(std::initializer_list<uint64_t> dims) {
  std::string s = "[";
  size_t i = 0;
  for (uint64_t d : dims) s += (i++ ? ", " : "") + std::to_string(d);
  return s + "]";
}

class TensorFetcher {
 public:
  TensorFetcher(const gguf::File& f) : f_(f) {}

  Result<const gguf::TensorInfo*> get(const std::string& name, std::initializer_list<uint64_t> dims,
                                      bool required = true) {
    const gguf::TensorInfo* t = f_.find_tensor(name);
    if (t == nullptr) {
      if (!required) return static_cast<const gguf::TensorInfo*>(nullptr);
      return make_error("%s: missing tensor '%s' (expected shape %s)", f_.path().c_str(),
                        name.c_str(), shape_str(dims).c_str());
    }
    bool same = t->dims.size() == dims.size();
    size_t i = 0;
    for (uint64_t d : dims) same = same && t->dims[i++] == d;
    if (!same) {
      return make_error("%s: tensor '%s' has shape %s, expected %s", f_.path().c_str(),
                        name.c_str(), t->shape_string().c_str(), shape_str(dims).c_str());
    }
    return t;
  }

  Result<std::vector<float>> norm(const std::string& name, uint64_t n) {
    BITNET_ASSIGN_OR_RETURN(const gguf::TensorInfo* t, get(name, {n}));
    auto bytes = f_.tensor_data(*t);
    std::vector<float> out(n);
    if (t->type == TensorType::F32) {
      std::memcpy(out.data(), bytes.data(), n * 4);
    } else if (t->type == TensorType::F16 || t->type == TensorType::BF16) {
      for (uint64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, bytes.data() + 2 * i, 2);
        out[i] = t->type == TensorType::F16 ? fp16_to_fp32(h) : bf16_to_fp32(h);
      }
    } else {
      return type_error(*t, "F32, F16 or BF16");
    }
    return out;
  }

  Result<kernels::WeightMatrix> matrix(const std::string& name, uint64_t k, uint64_t n_out,
                                       bool allow_ternary, bool allow_float) {
    BITNET_ASSIGN_OR_RETURN(const gguf::TensorInfo* t, get(name, {k, n_out}));
    const bool ternary = kernels::is_ternary(t->type);
    const bool flt = t->type == TensorType::F32 || t->type == TensorType::F16 || t->type == TensorType::BF16;
    if (!((ternary && allow_ternary) || (flt && allow_float))) {
      return type_error(*t, allow_ternary ? "I2_S, TQ2_0, TQ1_0, F16, BF16 or F32" : "F16, BF16 or F32");
    }
    if (t->type == TensorType::I2_S && k % quant::kI2sBlockElems != 0) {
      return make_error("%s: I2_S tensor '%s' has rows of %" PRIu64 " elements, not a multiple of 128",
                        f_.path().c_str(), name.c_str(), k);
    }
    kernels::WeightMatrix w;
    w.type = t->type;
    w.data = f_.tensor_data(*t).data();
    w.k = static_cast<int64_t>(k);
    w.n_out = static_cast<int64_t>(n_out);
    if (t->type == TensorType::I2_S) {
      w.tensor_scale = quant::i2s_scale(w.data, t->n_elements);
      if (!std::isfinite(w.tensor_scale)) {
        return make_error("%s: I2_S tensor '%s' has a non-finite scale", f_.path().c_str(), name.c_str());
      }
    }
    return w;
  }

  Result<Projection> projection(Arch arch, TensorRole role, int layer, uint64_t k, uint64_t n_out) {
    Projection p;
    BITNET_ASSIGN_OR_RETURN(p.w, matrix(tensor_name(role, layer), k, n_out, true, true));
    if (arch == Arch::kBitnet) {
      const std::string sname = scale_tensor_name(role, layer);
      BITNET_ASSIGN_OR_RETURN(const gguf::TensorInfo* s, get(sname, {1}, false));
      if (s != nullptr) {
        if (s->type != TensorType::F32) return type_error(*s, "F32");
        std::memcpy(&p.scale, f_.tensor_data(*s).data(), 4);
        p.has_scale = true;
      }
    }
    return p;
  }

 private:
  Error type_error(const gguf::TensorInfo& t, const char* expected) {
    return make_error("%s: tensor '%s' has type %s, expected %s", f_.path().c_str(),
                      t.name.c_str(), std::string(gguf::tensor_type_name(t.type)).c_str(), expected);
  }
  const gguf::File& f_;
};

}  // namespace

Result<std::unique_ptr<Model>> Model::load(const std::string& path) {
  BITNET_ASSIGN_OR_RETURN(gguf::File file, gguf::File::open(path));
  std::unique_ptr<Model> m(new Model(std::move(file)));
  BITNET_ASSIGN_OR_RETURN(m->config_, read_config(m->file_));
  const ModelConfig& c = m->config_;
  TensorFetcher fetch(m->file_);
  const uint64_t d = c.n_embd, dkv = c.n_embd_kv(), f = c.n_ff, v = c.n_vocab;

  BITNET_ASSIGN_OR_RETURN(m->token_embd_, fetch.matrix(tensor_name(TensorRole::kTokenEmbd), d, v, false, true));
  BITNET_ASSIGN_OR_RETURN(m->output_norm_, fetch.norm(tensor_name(TensorRole::kOutputNorm), d));
  // bitnet.cpp and upstream's `bitnet` graph both use token_embd as the LM head, even when an
  // output.weight exists (FACTS.md section 1); we do the same so logits match them.
  m->head_ = m->token_embd_;
  m->head_tied_ = true;

  m->layers_.resize(c.n_layers);
  for (int l = 0; l < static_cast<int>(c.n_layers); ++l) {
    LayerWeights& L = m->layers_[l];
    BITNET_ASSIGN_OR_RETURN(L.attn_norm, fetch.norm(tensor_name(TensorRole::kAttnNorm, l), d));
    BITNET_ASSIGN_OR_RETURN(L.q, fetch.projection(c.arch, TensorRole::kAttnQ, l, d, d));
    BITNET_ASSIGN_OR_RETURN(L.k, fetch.projection(c.arch, TensorRole::kAttnK, l, d, dkv));
    BITNET_ASSIGN_OR_RETURN(L.v, fetch.projection(c.arch, TensorRole::kAttnV, l, d, dkv));
    BITNET_ASSIGN_OR_RETURN(L.o, fetch.projection(c.arch, TensorRole::kAttnOutput, l, d, d));
    BITNET_ASSIGN_OR_RETURN(L.attn_sub_norm, fetch.norm(tensor_name(TensorRole::kAttnSubNorm, l), d));
    BITNET_ASSIGN_OR_RETURN(L.ffn_norm, fetch.norm(tensor_name(TensorRole::kFfnNorm, l), d));
    BITNET_ASSIGN_OR_RETURN(L.gate, fetch.projection(c.arch, TensorRole::kFfnGate, l, d, f));
    BITNET_ASSIGN_OR_RETURN(L.up, fetch.projection(c.arch, TensorRole::kFfnUp, l, d, f));
    BITNET_ASSIGN_OR_RETURN(L.ffn_sub_norm, fetch.norm(tensor_name(TensorRole::kFfnSubNorm, l), f));
    BITNET_ASSIGN_OR_RETURN(L.down, fetch.projection(c.arch, TensorRole::kFfnDown, l, f, d));
    // BitLinear layers quantize their input per matrix kind; a block mixing I2_S with TQ would
    // quantize the shared input twice, differently. No real file does that; refuse it.
    for (const Projection* p : {&L.k, &L.v, &L.o, &L.gate, &L.up, &L.down}) {
      if (p->w.type != L.q.w.type) {
        return make_error("%s: block %d mixes projection types %s and %s", path.c_str(), l,
                          std::string(gguf::tensor_type_name(L.q.w.type)).c_str(),
                          std::string(gguf::tensor_type_name(p->w.type)).c_str());
      }
    }
  }
  return m;
}

void Model::embedding_row(int32_t token, float* out) const {
  const uint8_t* row = token_embd_.row(token);
  const int64_t d = token_embd_.k;
  if (token_embd_.type == TensorType::F32) {
    std::memcpy(out, row, static_cast<size_t>(d) * 4);
    return;
  }
  for (int64_t i = 0; i < d; ++i) {
    uint16_t h;
    std::memcpy(&h, row + 2 * i, 2);
    out[i] = token_embd_.type == TensorType::F16 ? fp16_to_fp32(h) : bf16_to_fp32(h);
  }
}

}  // namespace bitnet::model
