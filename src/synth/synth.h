// Deterministic synthetic BitNet models (the BitNet families, and llama: the same weights without
// the sub-norm tensors). Every test and benchmark uses these: no trained weights
// can be downloaded where the project is built and tested.
//
// Properties the tests rely on:
//  - The same seed gives the same ternary weights in every format (I2_S, TQ2_0, TQ1_0, F16,
//    F32): weights depend only on (seed, tensor name), never on the encoding.
//  - Scales are powers of two, which every format stores exactly (f32 per tensor for I2_S, f16
//    per block for TQ*, the plain value for F16/F32), so an I2_S file and a TQ2_0 file are the
//    same model.
//  - The network is well-conditioned: each projection's scale keeps activations near unit RMS,
//    and the embedding scale gives logits a standard deviation of about 3, so the argmax varies
//    with the input instead of collapsing onto one token.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "gguf/tensor_types.h"
#include "model/arch.h"
#include "model/config.h"

namespace bitnet::synth {

struct SynthOptions {
  model::ModelConfig config;  // dimensions (see preset_config)
  gguf::TensorType weight_type = gguf::TensorType::I2_S;
  gguf::TensorType embd_type = gguf::TensorType::F16;
  std::string vocab_path;  // GGUF whose tokenizer.* keys are copied
  // When larger than the vocabulary's token count, the token list is padded up to this many
  // entries with unused "[PAD{id}]" tokens, as llama.cpp's converters pad a tokenizer up to a
  // model's vocab_size: the file then has the published model's n_vocab (embedding and head
  // rows), while the tokenizer never produces the padding. 0: the vocabulary's own count.
  uint32_t pad_vocab_to = 0;
  // tokenizer.ggml.pre: "" keeps the vocabulary's value, "none" removes the key (as in the
  // official 2B4T file), anything else sets it.
  std::string pre_tokenizer;
  uint64_t seed = 1;
  bool scale_tensors = false;  // `bitnet` arch: write blk.N.<proj>.scale tensors (shape {1})
  // Write an output.weight (of embd_type) besides token_embd. Unset: yes for llama (whose graph
  // uses it as the LM head), no for the BitNet families (which always use token_embd).
  std::optional<bool> untied_head;
  std::string name = "bitnet-synthetic";
  // Called as bytes are written (done, total); may be empty.
  std::function<void(uint64_t done, uint64_t total)> progress;
};

// A named shape: "tiny" (d=256, 2 blocks, 4 heads, 2 KV heads, f=512, for tests) or the shape of
// a published ternary model, from that model's config.json.
struct Preset {
  std::string_view name;   // "falcon3-1b"
  std::string_view model;  // published model, "" for tiny
  model::Arch arch;        // the family bitnet.cpp's converter writes for it
  // Reference vocabulary GGUF (in the reference's models dir) closest to the model's tokenizer,
  // the tokenizer.ggml.pre to write over its own ("" keeps it), and the published vocab_size
  // the token list is padded up to (0: the vocabulary's count). See README "Synthetic presets".
  std::string_view vocab_file;
  std::string_view pre;
  uint32_t n_vocab;
  // The published model has its own LM head (lm_head / output.weight); unset for tiny, where
  // the family decides (see SynthOptions::untied_head).
  std::optional<bool> untied_head;
  model::ModelConfig config;  // n_vocab left 0: it comes from the vocabulary (and padding)
};

// Every preset, tiny first.
const std::vector<Preset>& presets();
// nullptr when there is no preset of that name.
const Preset* find_preset(std::string_view name);
// "tiny, 2b4t, falcon3-1b, ..." for help text and errors.
std::string preset_names();
// The published preset whose shape (d, layers, heads, KV heads, f, n_vocab) is this one, or
// nullptr (tiny is not a published model and never matches).
const Preset* match_published_shape(const model::ModelConfig& c);

// A preset's dimensions with `arch` as the architecture; n_vocab is left 0.
Result<model::ModelConfig> preset_config(const std::string& preset, model::Arch arch);

// Writes the model; streams tensor data (no whole-file buffer).
Status write_synthetic_model(const SynthOptions& options, const std::string& out_path);

// The same model as a Hugging Face checkpoint folder (config.json, model.safetensors,
// tokenizer.json + tokenizer_config.json), as the published checkpoints of its family hold it
// (convert/hf_layout.h): `packed` uint8 weights with weight_scale, or float masters whose
// absmean ternarization gives back exactly the ternary values and scale (non-zero magnitudes
// are scale and 2 * scale, as many of the latter as make mean |w| = scale exactly). `bitnet
// convert` of the folder gives the GGUF file write_synthetic_model writes. Returns whether a
// tokenizer.json was written (byte-level BPE vocabularies only; convert a SentencePiece one
// with --vocab). Files hold at most shard_bytes of tensors each (save_pretrained's default 5 GB);
// more than one file come with model.safetensors.index.json.
Result<bool> write_synthetic_hf(const SynthOptions& options, bool packed, const std::string& dir,
                                uint64_t shard_bytes = 5'000'000'000);

// The ternary values (row-major, K contiguous) of a projection tensor, in {-1, 0, 1}.
void ternary_values(uint64_t seed, const std::string& tensor_name, size_t n, int8_t* out);
// Power-of-two scale keeping a K-input ternary projection near unit output RMS.
float projection_scale(uint64_t k);

}  // namespace bitnet::synth
