// One trace record: which point (position, layer, op), what it holds (shape, dtype), a BLAKE3
// of its bytes and statistics that stay comparable across engines (hashes only match within one
// engine). Built from values by make_record(), so tools outside the forward pass (crossval
// writing a reference engine's tensors) produce records in exactly the same form.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "core/result.h"
#include "trace/ops.h"
#include "trace/sink.h"

namespace bitnet::trace {

// f32: an op's output values. q8: the int8 codes a BitLinear input was quantized to (recorded
// under the op that produced the input, e.g. attn_norm for q/k/v), named "<op name>/q8".
enum class Kind { kF32, kQ8 };

struct Stats {
  // Over the finite values only (NaN/Inf are counted, and would make every sum meaningless).
  double rms = 0, mean = 0, min = 0, max = 0, absmax = 0;
  int64_t nan_count = 0, inf_count = 0;
};
Stats compute_stats(std::span<const float> values);

struct Record {
  int position = 0;
  int layer = -1;  // -1: embeddings, final_norm, logits
  Op op = Op::kEmbeddings;
  Kind kind = Kind::kF32;
  std::vector<int64_t> shape;
  int64_t num_elements = 0;
  std::string blake3;  // hex; f32: the values' little-endian bytes; q8: the int8 codes
  Stats stats;         // q8: of the dequantized values
  // q8 only: the scales as the kernel holds them (see QuantGrouping) and their BLAKE3.
  QuantGrouping grouping = QuantGrouping::kPerToken;
  std::vector<float> scales;
  std::string scales_blake3;
  // Where the raw values are, relative to the trace folder ("" when not stored): an .npy file,
  // or a safetensors file plus the tensor's key in it.
  std::string values_file, values_key;

  std::string name() const;  // "t3/blk0/q_proj", "t0/embeddings", "t3/blk0/attn_norm/q8"
  std::string dtype() const { return kind == Kind::kF32 ? "f32" : "i8"; }
};

// Record names and the seed-compatible file name ("t0_blk0_attn_norm.trace" without the suffix).
std::string point_name(int position, int layer, Op op, Kind kind = Kind::kF32);
std::string flat_name(int position, int layer, Op op, Kind kind = Kind::kF32);
// Parses a record name back (for seed-layout folders); nullopt when it is not one of ours.
struct ParsedName {
  int position, layer;
  Op op;
  Kind kind;
};
std::optional<ParsedName> parse_point_name(std::string_view name);

// The record of f32 values (any engine: pass the op from the table and the logical shape).
Record make_record(int position, int layer, Op op, std::span<const int64_t> shape,
                   std::span<const float> values);
// The record of a quantized BitLinear input.
Record make_quantized_record(int position, int layer, Op op, QuantGrouping grouping,
                             std::span<const int8_t> codes, std::span<const float> scales);

// The JSON-lines form (one object per record) and back.
nlohmann::ordered_json to_json(const Record& r);
Result<Record> record_from_json(const nlohmann::json& j);
// The seed-compatible object: name, shape, dtype, blake3, rms, num_elements.
nlohmann::ordered_json to_seed_json(const Record& r);

// Order of the forward pass: position, then embeddings, blocks in order (ops in table order,
// the q8 record right after its op), final_norm, logits.
bool forward_order_less(const Record& a, const Record& b);

// BLAKE3 as lowercase hex (the form b3sum prints).
std::string blake3_hex(const void* data, size_t size);
Result<std::string> blake3_file_hex(const std::string& path);

}  // namespace bitnet::trace
