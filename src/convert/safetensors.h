// Reading Hugging Face safetensors checkpoints, single file or sharded, memory-mapped.
//
// A file is an 8-byte little-endian header length N, N bytes of JSON, then the data buffer:
//   {"name": {"dtype": "BF16", "shape": [out, in], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"format": "pt"}}
// with offsets relative to the buffer. Everything is checked before any tensor is handed out:
// the header fits the file, the JSON is an object of well-formed entries, dtypes are known,
// each tensor's byte range is inside the buffer and exactly shape x dtype size (products
// checked for overflow), ranges do not overlap and cover the buffer without holes (as the
// reference implementation requires). A sharded checkpoint is a folder with
// model.safetensors.index.json whose "weight_map" names each tensor's shard; every tensor it
// names must be in that shard, and no tensor may appear in two shards. Any violation is a
// one-line error naming the file and the problem.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/mapped_file.h"
#include "core/result.h"

namespace bitnet::convert {

enum class Dtype { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

std::string_view dtype_name(Dtype d);
size_t dtype_size(Dtype d);

struct StTensor {
  std::string name;
  Dtype dtype = Dtype::F32;
  std::vector<uint64_t> shape;  // as in PyTorch: shape[0] is the slowest dimension
  uint64_t n_elements = 0;
  std::span<const uint8_t> data;  // inside the mapping
  std::string file;               // the shard it is in

  // Element i as f32 (F32 / F16 / BF16 / F64 / integer types); i < n_elements.
  float at(uint64_t i) const;
};

class Checkpoint {
 public:
  // A .safetensors file, or a folder holding model.safetensors or model.safetensors.index.json.
  static Result<Checkpoint> open(const std::string& path);
  // One safetensors image in memory (tests, the fuzzer); `name` appears in errors. The bytes
  // must outlive the checkpoint.
  static Result<Checkpoint> parse(std::span<const uint8_t> bytes, const std::string& name);

  const std::vector<StTensor>& tensors() const { return tensors_; }
  const StTensor* find(std::string_view name) const;
  // The "__metadata__" strings of the (first) file.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  Status add_file(std::span<const uint8_t> bytes, const std::string& name);

  std::vector<std::shared_ptr<MappedFile>> maps_;
  std::vector<StTensor> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace bitnet::convert
