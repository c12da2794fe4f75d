#include "model/weights.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstring>
#include <functional>
#include <thread>

#include "core/fp16.h"
#include "core/thread_pool.h"
#include "kernels/dispatch.h"
#include "kernels/packed.h"
#include "kernels/q8_0_head.h"
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
    const bool flt =
        t->type == TensorType::F32 || t->type == TensorType::F16 || t->type == TensorType::BF16;
    if (!((ternary && allow_ternary) || (flt && allow_float))) {
      return type_error(
          *t, allow_ternary ? "I2_S, TQ2_0, TQ1_0, F16, BF16 or F32" : "F16, BF16 or F32");
    }
    if (t->type == TensorType::I2_S && k % quant::kI2sBlockElems != 0) {
      return make_error("%s: I2_S tensor '%s' has rows of %" PRIu64
                        " elements, not a multiple of 128",
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
        return make_error("%s: I2_S tensor '%s' has a non-finite scale", f_.path().c_str(),
                          name.c_str());
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
    return make_error("%s: tensor '%s' has type %s, expected %s", f_.path().c_str(), t.name.c_str(),
                      std::string(gguf::tensor_type_name(t.type)).c_str(), expected);
  }
  const gguf::File& f_;
};

// llama: every tensor of the file must be one the llama forward uses. llama.cpp's llama graph
// also knows optional biases, rope_freqs, fused attn_qkv, MoE experts and so on; this engine
// implements none of them, and a file that has one is refused by name instead of being run
// without it.
Status check_llama_tensors(const gguf::File& f, const ModelConfig& c) {
  std::vector<std::string> known = {tensor_name(TensorRole::kTokenEmbd),
                                    tensor_name(TensorRole::kOutputNorm),
                                    tensor_name(TensorRole::kOutput)};
  for (int l = 0; l < static_cast<int>(c.n_layers); ++l) {
    for (TensorRole r : {TensorRole::kAttnNorm, TensorRole::kAttnQ, TensorRole::kAttnK,
                         TensorRole::kAttnV, TensorRole::kAttnOutput, TensorRole::kFfnNorm,
                         TensorRole::kFfnGate, TensorRole::kFfnUp, TensorRole::kFfnDown}) {
      known.push_back(tensor_name(r, l));
    }
  }
  std::sort(known.begin(), known.end());
  for (const gguf::TensorInfo& t : f.tensors()) {
    if (!std::binary_search(known.begin(), known.end(), t.name)) {
      return make_error(
          "%s: tensor '%s' is not supported in a llama-arch model (this engine "
          "runs llama files without biases, rope_freqs, .scale or other extra "
          "tensors)",
          f.path().c_str(), t.name.c_str());
    }
  }
  return {};
}

}  // namespace

Result<std::unique_ptr<Model>> Model::load(const std::string& path, const LoadOptions& o) {
  gguf::OpenOptions oo;
  if (!o.keep_metadata_arrays) oo.max_array_items = LoadOptions::kKeptArrayItems;
  BITNET_ASSIGN_OR_RETURN(gguf::File file, gguf::File::open(path, oo));
  std::unique_ptr<Model> m(new Model(std::move(file), o));
  BITNET_ASSIGN_OR_RETURN(m->config_, read_config(m->file_));
  const ModelConfig& c = m->config_;
  TensorFetcher fetch(m->file_);
  const uint64_t d = c.n_embd, dkv = c.n_embd_kv(), f = c.n_ff, v = c.n_vocab;

  BITNET_ASSIGN_OR_RETURN(m->token_embd_,
                          fetch.matrix(tensor_name(TensorRole::kTokenEmbd), d, v, false, true));
  BITNET_ASSIGN_OR_RETURN(m->output_norm_, fetch.norm(tensor_name(TensorRole::kOutputNorm), d));
  const bool bitnet = is_bitnet_family(c.arch);
  if (!bitnet) BITNET_TRY(check_llama_tensors(m->file_, c));
  // bitnet.cpp and upstream's `bitnet` graph both use token_embd as the LM head, even when an
  // output.weight exists (FACTS.md section 1); we do the same so logits match them. llama.cpp's
  // llama graph uses output.weight when the file has one, else token_embd (tied).
  m->head_tied_ = true;
  if (!bitnet && m->file_.find_tensor(tensor_name(TensorRole::kOutput)) != nullptr) {
    BITNET_ASSIGN_OR_RETURN(m->output_,
                            fetch.matrix(tensor_name(TensorRole::kOutput), d, v, false, true));
    m->head_tied_ = false;
  }
  m->head_type_ = o.head == HeadType::kFast ? HeadType::kFast : HeadType::kFile;
  m->set_float_head();

  m->layers_.resize(c.n_layers);
  for (int l = 0; l < static_cast<int>(c.n_layers); ++l) {
    LayerWeights& L = m->layers_[l];
    BITNET_ASSIGN_OR_RETURN(L.attn_norm, fetch.norm(tensor_name(TensorRole::kAttnNorm, l), d));
    BITNET_ASSIGN_OR_RETURN(L.q, fetch.projection(c.arch, TensorRole::kAttnQ, l, d, d));
    BITNET_ASSIGN_OR_RETURN(L.k, fetch.projection(c.arch, TensorRole::kAttnK, l, d, dkv));
    BITNET_ASSIGN_OR_RETURN(L.v, fetch.projection(c.arch, TensorRole::kAttnV, l, d, dkv));
    BITNET_ASSIGN_OR_RETURN(L.o, fetch.projection(c.arch, TensorRole::kAttnOutput, l, d, d));
    if (bitnet) {
      BITNET_ASSIGN_OR_RETURN(L.attn_sub_norm,
                              fetch.norm(tensor_name(TensorRole::kAttnSubNorm, l), d));
    }
    BITNET_ASSIGN_OR_RETURN(L.ffn_norm, fetch.norm(tensor_name(TensorRole::kFfnNorm, l), d));
    BITNET_ASSIGN_OR_RETURN(L.gate, fetch.projection(c.arch, TensorRole::kFfnGate, l, d, f));
    BITNET_ASSIGN_OR_RETURN(L.up, fetch.projection(c.arch, TensorRole::kFfnUp, l, d, f));
    if (bitnet) {
      BITNET_ASSIGN_OR_RETURN(L.ffn_sub_norm,
                              fetch.norm(tensor_name(TensorRole::kFfnSubNorm, l), f));
    }
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
  if (o.head == HeadType::kQ8_0) {
    if (!kernels::q8_0_head_supported(static_cast<int64_t>(d))) {
      return make_error(
          "%s: --head-type q8_0 needs an embedding length that is a multiple of 32 (it is %" PRIu64
          ")",
          path.c_str(), d);
    }
    m->build_q8_0_head();
  }
  const gguf::TensorType head_t = m->head_.type;
  const bool screenable =
      kernels::q8_0_head_supported(static_cast<int64_t>(d)) &&
      (head_t == TensorType::F16 || head_t == TensorType::BF16 || head_t == TensorType::F32);
  if (o.head == HeadType::kScreened && !screenable) {
    return make_error(
        "%s: --head-type screened needs an F16, BF16 or F32 head whose row length is a multiple "
        "of 32 (it is %s, %" PRIu64 ")",
        path.c_str(), std::string(gguf::tensor_type_name(head_t)).c_str(), d);
  }
  if (o.head == HeadType::kScreened ||
      (o.head == HeadType::kAuto && screenable && o.kernels.variant() != kernels::Variant::kScalar))
    m->build_screened_head();
  if (o.repack && o.kernels.variant() != kernels::Variant::kScalar)
    m->repack(o.kernels.variant() == kernels::Variant::kAvx512);
  return m;
}

Result<HeadType> head_type_from_name(const std::string& name) {
  if (name == "file") return HeadType::kFile;
  if (name == "fast") return HeadType::kFast;
  if (name == "q8_0") return HeadType::kQ8_0;
  if (name == "screened") return HeadType::kScreened;
  if (name == "auto") return HeadType::kAuto;
  return make_error("--head-type '%s' is not one of auto, file, screened, fast, q8_0",
                    name.c_str());
}

std::string_view head_type_name(HeadType t) {
  switch (t) {
    case HeadType::kFile:
      return "file";
    case HeadType::kFast:
      return "fast";
    case HeadType::kQ8_0:
      return "q8_0";
    case HeadType::kScreened:
      return "screened";
    case HeadType::kAuto:
      return "auto";
  }
  return "?";
}

void Model::set_float_head() {
  head_ = head_weights();
  head_.float_sums =
      head_type_ == HeadType::kFast ? kernels::FloatSums::kBlocks : kernels::FloatSums::kDouble;
}

uint64_t Model::decode_weight_bytes() const {
  uint64_t n = 0;
  for (const LayerWeights& L : layers_) {
    for (const Projection* p : {&L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down}) {
      n += static_cast<uint64_t>(p->w.bytes());
    }
  }
  // The screened head: its screen and row norms (the exact rows vary).
  if (head_type_ == HeadType::kScreened) return n + kernels::screen_bytes(screened_);
  return n + static_cast<uint64_t>(head_.bytes());
}

namespace {

// Tells the kernel it may drop this process's pages of [p, p + n) (whole pages inside the range
// only); the mapping stays valid and refaults from the page cache if read again.
void release_pages(const uint8_t* p, size_t n) {
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t b = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
  const uintptr_t e = (reinterpret_cast<uintptr_t>(p) + n) / page * page;
  if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
}

// An anonymous mapping of `bytes` (not the heap: released whole when the model goes), or null.
std::unique_ptr<uint8_t, PackedUnmap> map_anonymous(size_t bytes) {
  void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return nullptr;
  return std::unique_ptr<uint8_t, PackedUnmap>(static_cast<uint8_t*>(mem), PackedUnmap{bytes});
}

// Builds a load-time copy of `src` tile by tile (tiles of kernels::kPackRows rows), calling
// pack(t0, t1) on chunks of tiles spread over a short-lived pool, and releases the file's pages
// of each chunk's rows as soon as it is done, so the resident size never grows much beyond the
// file's (pages shared with a neighbouring chunk go with the final release of the whole matrix).
void pack_releasing_pages(const kernels::WeightMatrix& src,
                          const std::function<void(int64_t t0, int64_t t1)>& pack) {
  const int n_threads =
      std::max(1, std::min(8, static_cast<int>(std::thread::hardware_concurrency())));
  ThreadPool pool(n_threads, /*spin_micros=*/0);
  const int64_t tiles = (src.n_out + kernels::kPackRows - 1) / kernels::kPackRows, per_chunk = 16;
  pool.run((tiles + per_chunk - 1) / per_chunk, [&](int64_t c) {
    const int64_t t0 = c * per_chunk, t1 = std::min(tiles, (c + 1) * per_chunk);
    pack(t0, t1);
    const int64_t r0 = t0 * kernels::kPackRows, r1 = std::min(src.n_out, t1 * kernels::kPackRows);
    release_pages(src.row(r0), static_cast<size_t>((r1 - r0) * src.row_bytes()));
  });
  release_pages(src.data, static_cast<size_t>(src.row_bytes() * src.n_out));
}

}  // namespace

Model::~Model() {
  if (screened_.fd >= 0) ::close(screened_.fd);
}

void PackedUnmap::operator()(uint8_t* p) const { munmap(p, bytes); }

// Packs matrix by matrix (tiles spread over threads), releasing the file's pages of each chunk of
// rows as soon as it is packed, so the resident size never grows much beyond the file's.
void Model::repack(bool pack_float) {
  auto packs = [&](const kernels::WeightMatrix& w) {
    return kernels::packable(w) && (pack_float || w.type != gguf::TensorType::F16);
  };
  std::vector<kernels::WeightMatrix*> mats;
  for (LayerWeights& L : layers_) {
    for (Projection* p : {&L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down}) {
      if (packs(p->w)) mats.push_back(&p->w);
    }
  }
  // With a Q8_0 head, or an untied one, token_embd only serves embedding lookups (a few rows
  // per token): it stays in the mapping, where only the rows used become resident.
  // With the screened head, the exact head reads a few whole rows per token: also the file layout.
  kernels::WeightMatrix& head_w = head_tied_ ? token_embd_ : output_;
  if (head_type_ != HeadType::kQ8_0 && head_type_ != HeadType::kScreened && packs(head_w))
    mats.push_back(&head_w);
  if (mats.empty()) return;
  constexpr size_t kAlign = size_t{2} << 20;  // 2 MiB: whole huge pages if asked for
  std::vector<size_t> offset;
  size_t total = 0;
  for (const auto* w : mats) {
    offset.push_back(total);
    total += (kernels::packed_size(*w) + 4095) / 4096 * 4096;
  }
  total = (total + kAlign - 1) / kAlign * kAlign;
  // Huge pages only where LoadOptions::hugepages asks: on the VMs measured, zeroing 2 MiB pages
  // on first touch made loading slower for no gain in tokens per second beyond the noise.
  auto mem = map_anonymous(total);
  if (mem == nullptr) return;  // keep reading the file layout
  if (hugepages_) madvise(mem.get(), total, MADV_HUGEPAGE);
  uint8_t* buf = mem.get();
  packed_ = std::move(mem);
  packed_bytes_ = total;
  for (size_t i = 0; i < mats.size(); ++i) {
    kernels::WeightMatrix& w = *mats[i];
    uint8_t* dst = buf + offset[i];
    pack_releasing_pages(w, [&](int64_t t0, int64_t t1) { kernels::pack_tiles(w, dst, t0, t1); });
    w.packed = dst;
  }
  if (head_type_ != HeadType::kQ8_0 && head_type_ != HeadType::kScreened) set_float_head();
}

void Model::build_q8_0_head() {
  const kernels::WeightMatrix& src = head_weights();
  auto mem = map_anonymous(kernels::q8_0_head_size(src.k, src.n_out));
  if (mem == nullptr) return;  // keep the file's head
  uint8_t* buf = mem.get();
  q8_0_head_ = std::move(mem);
  pack_releasing_pages(
      src, [&](int64_t t0, int64_t t1) { kernels::q8_0_head_pack_tiles(src, buf, t0, t1); });
  head_ = kernels::q8_0_head_view(buf, src.k, src.n_out);
  head_type_ = HeadType::kQ8_0;
}

// The screen (a Q8_0 copy of the head) and its row norms, chunk by chunk while the rows are in
// cache. The file's pages of the head are released as for a packed copy: the exact head reads
// a few rows per token, which come back from the page cache on demand.
void Model::build_screened_head() {
  const kernels::WeightMatrix& src = head_;
  const int64_t n_out = src.n_out;
  auto mem = map_anonymous(kernels::q8_0_head_size(src.k, n_out));
  if (mem == nullptr) return;  // keep the full exact head
  uint8_t* buf = mem.get();
  q8_0_head_ = std::move(mem);
  screen_norms_.assign(static_cast<size_t>(2 * n_out), 0.0f);
  screened_.exact = &head_;
  screened_.screen = kernels::q8_0_head_view(buf, src.k, n_out);
  screened_.resid_norm = screen_norms_.data();
  screened_.screen_norm = screen_norms_.data() + n_out;
  pack_releasing_pages(src, [&](int64_t t0, int64_t t1) {
    kernels::q8_0_head_pack_tiles(src, buf, t0, t1);
    const int64_t r0 = t0 * 16, r1 = std::min(n_out, t1 * 16);
    kernels::screen_row_norms(src, screened_.screen, r0, r1, screen_norms_.data(),
                              screen_norms_.data() + n_out);
  });
  kernels::set_norm_maxima(&screened_);
  // The exact rows are read with pread (see ScreenedHead::fd); the mapping if this fails.
  if (!file_.path().empty()) {
    screened_.fd = ::open(file_.path().c_str(), O_RDONLY | O_CLOEXEC);
    screened_.file_offset = static_cast<int64_t>(src.data - file_.bytes().data());
  }
  head_type_ = HeadType::kScreened;
}

void Model::embedding_row(int32_t token, float* out) const {
  const int64_t d = token_embd_.k;
  if (token_embd_.packed != nullptr) {  // F16, packed (its file pages are released)
    for (int64_t i = 0; i < d; ++i)
      out[i] = fp16_to_fp32(kernels::packed_f16_at(token_embd_, token, i));
    return;
  }
  kernels::row_to_float(token_embd_, token, out);
}

}  // namespace bitnet::model
