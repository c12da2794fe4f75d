// Reading a trace folder back (trace-diff, trace-show, tests): the JSON-lines index with its
// meta.json, or, for folders written by older scripts, the seed layout (*.trace files).
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "core/result.h"
#include "trace/record.h"

namespace bitnet::trace {

struct Trace {
  std::string dir;
  std::string layout;           // "jsonl" or "seed"
  nlohmann::json meta;          // {} when there is no meta.json
  std::vector<Record> records;  // in file order (jsonl) or forward order (seed)
};

Result<Trace> read_trace(const std::string& dir);

// The stored f32 values of records (.npy files or one safetensors file), mapped once.
class ValueStore {
 public:
  explicit ValueStore(std::string dir) : dir_(std::move(dir)) {}
  // Empty when the record has no stored values.
  Result<std::vector<float>> load(const Record& r);

 private:
  struct Safetensors {
    std::shared_ptr<MappedFile> file;
    size_t data_start = 0;
    nlohmann::json header;
  };
  std::string dir_;
  std::map<std::string, Safetensors> st_;
};

}  // namespace bitnet::trace
