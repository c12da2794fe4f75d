// The parts of a synthetic model both writers share (synth.cpp: GGUF; hf.cpp: a Hugging Face
// checkpoint): which tensors the model has, its tokenizer keys, and the bytes of its float
// tensors. Internal to the synth library.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "core/result.h"
#include "gguf/reader.h"
#include "synth/synth.h"

namespace bitnet::synth {

struct PlannedTensor {
  std::string name;  // GGUF name
  gguf::TensorType type;
  std::vector<uint64_t> dims;  // GGUF order
  enum class Kind { kEmbedding, kNorm, kProjection, kScale } kind;
};

// Every tensor of the model, in file order (config.n_vocab must be set).
std::vector<PlannedTensor> plan_tensors(const SynthOptions& o);
// The tokenizer.* keys of o.vocab_path, padded and adjusted as the options say.
Result<std::vector<gguf::KeyValue>> tokenizer_keys(const SynthOptions& o);
Status check_shapes(const SynthOptions& o);

using ByteSink = std::function<Status(std::span<const uint8_t>)>;
// A tensor's bytes in its planned type (projections encoded with projection_scale), in pieces.
Status tensor_bytes(const SynthOptions& o, const PlannedTensor& t, const ByteSink& sink);

}  // namespace bitnet::synth
