// Writing safetensors files, streamed: tensors are declared first (names, dtypes, shapes), the
// header is written, then their bytes are appended in declaration order as they are produced.
// The header is padded with spaces to a multiple of 8 bytes, as the reference implementation
// writes it, so tensor data starts aligned.
//
//   SafetensorsWriter w;
//   w.add("model.norm.weight", Dtype::BF16, {2560});
//   BITNET_TRY(w.begin("model.safetensors"));
//   BITNET_TRY(w.write(bytes));   // possibly over several calls
//   BITNET_TRY(w.finish());
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "convert/safetensors.h"
#include "core/result.h"

namespace bitnet::convert {

class SafetensorsWriter {
 public:
  SafetensorsWriter() = default;
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  void add(const std::string& name, Dtype dtype, std::vector<uint64_t> shape);
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  Status begin(const std::string& path);
  Status write(std::span<const uint8_t> bytes);
  Status finish();
  uint64_t data_bytes() const { return total_; }

 private:
  struct Entry {
    std::string name;
    Dtype dtype;
    std::vector<uint64_t> shape;
    uint64_t begin, end;
  };
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
  uint64_t total_ = 0, written_ = 0;
  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace bitnet::convert
