// GGUF writer that streams tensor data to disk: the header is written first, then tensor bytes
// are appended in declaration order as the caller produces them (in chunks of any size), so a
// 1.2 GB model never sits in memory.
//
//   Writer w;
//   w.set("general.architecture", Value(std::string("bitnet")));
//   w.add_tensor("token_embd.weight", TensorType::F16, {256, 1000});
//   BITNET_TRY(w.begin("model.gguf"));
//   BITNET_TRY(w.write(bytes_of_token_embd));   // possibly over several calls
//   BITNET_TRY(w.finish());
#pragma once

#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

#include "core/result.h"
#include "gguf/reader.h"

namespace bitnet::gguf {

class Writer {
 public:
  explicit Writer(uint32_t version = 3) : version_(version) {}
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Sets (or replaces) a metadata key; order of first insertion is kept.
  void set(const std::string& key, Value value);
  void remove(const std::string& key);
  // Renames every key starting with `from` to start with `to` (e.g. an architecture prefix).
  void rename_prefix(const std::string& from, const std::string& to);
  // Declares a tensor; its data must later be written in declaration order.
  Status add_tensor(const std::string& name, TensorType type, std::vector<uint64_t> dims);

  // Opens the file and writes the header (metadata + tensor infos + padding).
  Status begin(const std::string& path);
  // Appends tensor data; chunks may split or span tensors, padding is inserted between them.
  Status write(std::span<const uint8_t> bytes);
  // Checks every declared byte was written, flushes and closes.
  Status finish();

  uint64_t total_data_bytes() const;
  const std::vector<TensorInfo>& tensors() const { return tensors_; }

 private:
  Status write_raw(const void* p, size_t n);
  Status write_padding_to(uint64_t target_in_data);
  uint64_t alignment() const;

  uint32_t version_;
  std::vector<KeyValue> metadata_;
  std::vector<TensorInfo> tensors_;
  std::string path_;
  std::FILE* file_ = nullptr;
  size_t current_tensor_ = 0;   // tensor being written
  uint64_t written_in_tensor_ = 0;
  uint64_t data_pos_ = 0;       // bytes written into the data section so far
};

}  // namespace bitnet::gguf
