// GGUF reader: memory-mapped, versions 2 and 3, every metadata type (nested arrays too),
// validated so that any malformed or hostile file yields one clear error instead of a crash.
//
// Validation performed (each failure names the file and what is wrong):
//   bad magic, unsupported version, truncation anywhere in the header, string or array lengths
//   running past the end, absurd counts (more entries than bytes left could hold), unknown value
//   types, nesting too deep, duplicate keys or tensor names, bad general.alignment, tensor
//   dimension counts, zero/negative/overflowing dimensions, unknown tensor types, rows that are
//   not whole blocks, data offsets that are misaligned, out of bounds, or overlapping.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/mapped_file.h"
#include "core/result.h"
#include "gguf/tensor_types.h"
#include "gguf/value.h"

namespace bitnet::gguf {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr uint64_t kDefaultAlignment = 32;
constexpr uint32_t kMaxDims = 4;

struct TensorInfo {
  std::string name;
  std::vector<uint64_t> dims;  // ggml order: dims[0] is the contiguous (row) length
  TensorType type = TensorType::F32;
  uint64_t offset = 0;      // relative to the start of the data section
  uint64_t n_elements = 0;  // product of dims
  uint64_t n_bytes = 0;     // from the type table

  uint64_t row_length() const { return dims.empty() ? 1 : dims[0]; }
  uint64_t n_rows() const { return row_length() == 0 ? 0 : n_elements / row_length(); }
  std::string shape_string() const;  // "[2560, 6912]"
};

struct OpenOptions {
  // Top-level metadata arrays longer than this are validated but not kept (Array::elided): a
  // caller that needs only the hyper-parameters saves the vocabulary's tens of MB of strings.
  uint64_t max_array_items = UINT64_MAX;
};

class File {
 public:
  // Maps and validates a file.
  static Result<File> open(const std::string& path, const OpenOptions& o = {});
  // Parses an in-memory image (used by tests and the fuzzer); `name` appears in errors.
  static Result<File> parse(std::span<const uint8_t> bytes, std::string name = "<memory>");

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // absolute file offset of tensor data
  uint64_t file_size() const { return bytes_.size(); }
  std::span<const uint8_t> bytes() const { return bytes_; }  // the whole file (mapped)

  const std::vector<KeyValue>& metadata() const { return metadata_; }
  const Value* find(std::string_view key) const;
  // Typed accessors with errors naming the key (missing key / wrong type).
  Result<std::string> get_string(std::string_view key) const;
  Result<uint64_t> get_uint(std::string_view key) const;
  Result<double> get_number(std::string_view key) const;
  // general.architecture, or "" when absent.
  std::string architecture() const;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const;
  // The tensor's bytes inside the mapping (validated in bounds at open).
  std::span<const uint8_t> tensor_data(const TensorInfo& t) const;

 private:
  File() = default;
  static Result<File> parse_impl(std::span<const uint8_t> bytes, std::string name,
                                 std::shared_ptr<MappedFile> mapping, const OpenOptions& o);

  std::shared_ptr<MappedFile> mapping_;  // keeps bytes_ alive when opened from disk
  std::span<const uint8_t> bytes_;
  std::string path_;
  uint32_t version_ = 0;
  uint64_t alignment_ = kDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<KeyValue> metadata_;
  std::unordered_map<std::string, size_t> key_index_;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

}  // namespace bitnet::gguf
