// A loaded model: the memory-mapped GGUF file, its hyper-parameters, and views of every weight.
// Matrices are used in place from the mapping, and only the small norm vectors are copied to
// f32; when the kernels it is loaded for (LoadOptions::kernels) have packed layouts
// (kernels/packed.h: AVX-512 for ternary and F16 matrices, AVX2 for ternary ones), load() also
// repacks every packable matrix into one allocation of the same total size and releases the
// file's pages of those tensors (the mapping stays; the scalar reference and --verify-kernels
// read it again on demand), so the resident size stays that of the file.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "gguf/reader.h"
#include "kernels/dispatch.h"
#include "kernels/matmul.h"
#include "kernels/screened_head.h"
#include "model/config.h"

namespace bitnet::model {

// A projection: the matrix and the optional scalar `.scale` (`bitnet` arch) applied after it.
struct Projection {
  kernels::WeightMatrix w;
  bool has_scale = false;
  float scale = 1.0f;
};

struct LayerWeights {
  std::vector<float> attn_norm;      // [d]
  Projection q, k, v, o;             // [d -> d], [d -> d_kv] x2, [d -> d]
  std::vector<float> attn_sub_norm;  // [d] (BitNet families; empty for llama)
  std::vector<float> ffn_norm;       // [d]
  Projection gate, up, down;         // [d -> f] x2, [f -> d]
  std::vector<float> ffn_sub_norm;   // [f] (BitNet families; empty for llama)
};

// Unmaps the packed weights' anonymous mapping.
struct PackedUnmap {
  size_t bytes;
  void operator()(uint8_t* p) const;
};

// How the LM head is computed:
//  kFile: the weights as stored, products summed in double in element order (FloatSums
//         kDouble): ggml's portable path bit for bit, the exact default;
//  kFast: the weights as stored, products summed in float per block of 64 elements, the blocks
//         in double (FloatSums kBlocks): a third of the arithmetic per weight, so the head keeps
//         up with memory; logits differ from kFile in the last bits (see crossval);
//  kQ8_0: ggml's Q8_0 made at load (kernels/q8_0_head.h: about half the bytes per token, logits
//         change; see crossval);
//  kScreened: kFile's logits where they matter, from about half the bytes per token
//         (kernels/screened_head.h): rows that ask for only their `top` largest logits
//         (BatchRow::top) get exactly kFile's values for those, and -infinity for rows that
//         cannot be among them; rows that ask for every logit get kFile's head in full.
//  kAuto (LoadOptions only, resolved at load): kScreened where it can be built (a float head,
//         rows of whole 32-blocks) and the kernels have a SIMD screen product, else kFile.
enum class HeadType { kFile, kFast, kQ8_0, kScreened, kAuto };
// "file" | "fast" | "q8_0" | "screened" | "auto"
Result<HeadType> head_type_from_name(const std::string& name);
std::string_view head_type_name(HeadType t);

struct LoadOptions {
  bool repack = true;  // repack for `kernels` where they have a packed layout
  HeadType head = HeadType::kFile;
  // The kernel variant every product and op on this model runs (the CLI: --kernels /
  // BITNET_KERNELS).
  kernels::Kernels kernels = kernels::Kernels::best();
  // Back the packed copy with transparent huge pages (madvise MADV_HUGEPAGE; the CLI:
  // BITNET_HUGEPAGES=1). Off by default: on the VMs measured, zeroing 2 MiB pages on first touch
  // made loading slower for no gain in tokens per second beyond the noise.
  bool hugepages = false;
  // false: metadata arrays of more than kKeptArrayItems items (the vocabulary, the merges) are
  // not kept in file(), for a caller that has its tokenizer already; some 20 MB less resident.
  bool keep_metadata_arrays = true;
  static constexpr uint64_t kKeptArrayItems = 1024;
};

class Model {
 public:
  static Result<std::unique_ptr<Model>> load(const std::string& path, const LoadOptions& o = {});
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const { return config_; }
  const gguf::File& file() const { return file_; }
  const kernels::WeightMatrix& token_embd() const { return token_embd_; }  // [vocab rows of d]
  // The LM head: token_embd (tied) unless the arch uses output.weight (llama, when the file has
  // it; see load()).
  const kernels::WeightMatrix& head() const { return head_; }
  bool head_is_tied() const { return head_tied_; }
  const std::vector<float>& output_norm() const { return output_norm_; }
  const std::vector<LayerWeights>& layers() const { return layers_; }
  // Type of the block projections (all the same in every known file), for reporting.
  gguf::TensorType weight_type() const { return layers_.front().q.w.type; }
  // token_embd row `token` as f32 (bounds checked by the caller).
  void embedding_row(int32_t token, float* out) const;
  // Bytes of packed weight copies (0: none, the kernels read the mapped file).
  size_t packed_bytes() const { return packed_bytes_; }
  HeadType head_type() const { return head_type_; }
  // With HeadType::kScreened: the screen and the exact head it stands for; null otherwise.
  const kernels::ScreenedHead* screened_head() const {
    return head_type_ == HeadType::kScreened ? &screened_ : nullptr;
  }

  // The kernel variant this model was loaded for (its packed layouts are that variant's).
  const kernels::Kernels& kernels() const { return kernels_; }
  // Weight bytes one decode step reads: every block matrix and the LM head (in its precision).
  uint64_t decode_weight_bytes() const;

 private:
  Model(gguf::File f, const LoadOptions& o)
      : file_(std::move(f)), kernels_(o.kernels), hugepages_(o.hugepages) {}
  // pack_float: F16 matrices too (only the AVX-512 kernels read their packed layout).
  void repack(bool pack_float);
  void build_q8_0_head();
  void build_screened_head();
  // The weights the LM head computes with: token_embd_ when tied, else output_.
  const kernels::WeightMatrix& head_weights() const { return head_tied_ ? token_embd_ : output_; }
  // head_ = head_weights(), summed as head_type_ says (kFile or kFast).
  void set_float_head();
  gguf::File file_;
  ModelConfig config_;
  kernels::WeightMatrix token_embd_, output_, head_;  // output_: output.weight when untied
  bool head_tied_ = true;
  std::vector<float> output_norm_;
  std::vector<LayerWeights> layers_;
  std::unique_ptr<uint8_t, PackedUnmap> packed_, q8_0_head_;  // q8_0_head_: also the screen
  std::vector<float> screen_norms_;                           // kScreened: |w - w'|, then |w'|
  kernels::ScreenedHead screened_;  // its fd (exact rows) is ours to close
  HeadType head_type_ = HeadType::kFile;
  kernels::Kernels kernels_;
  bool hugepages_ = false;
  size_t packed_bytes_ = 0;
};

}  // namespace bitnet::model
