// The trace folder a run writes (what --trace-dir / BITNET_TRACE_DIR switch on):
//
//   DIR/trace.jsonl         one record per line (record.h), in the order they were taken
//   DIR/meta.json           model, token ids, settings, record count (written by finish())
//   DIR/values/<flat>.npy   with values as npy: the f32 values of each selected f32 record
//   DIR/values.safetensors  with values as safetensors: all of them in one file, keyed by name
//   DIR/<flat>.trace        with the seed layout: one JSON object per record (f32 records)
//
// Writer is the Sink the forward pass feeds, and also the way other tools (crossval writing a
// reference engine's tensors) produce the same folder: add() takes a record built by
// make_record() with its values.
#pragma once

#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/result.h"
#include "trace/record.h"
#include "trace/selection.h"
#include "trace/sink.h"

namespace bitnet::trace {

enum class ValuesFormat { kNone, kNpy, kSafetensors };
Result<ValuesFormat> values_format_from_name(const std::string& name);  // "npy", "safetensors"
const char* values_format_name(ValuesFormat f);

struct WriterOptions {
  std::string dir;
  Selection selection;
  ValuesFormat values = ValuesFormat::kNone;
  bool seed_layout = false;
};

class Writer final : public Sink {
 public:
  // Creates DIR if needed; an existing trace.jsonl there is replaced.
  static Result<std::unique_ptr<Writer>> open(const WriterOptions& options);
  ~Writer() override;

  bool wants(const Point& p) const override;
  void record(const Point& p, std::span<const float> values,
              std::span<const int64_t> shape) override;
  void record_codes(const Point& p, QuantGrouping grouping, std::span<const int8_t> codes,
                    std::span<const float> scales) override;

  // Writes one record (its values too when values are on and `values` is not empty). Not
  // subject to the selection: the caller chose it.
  Status add(Record r, std::span<const float> values = {});
  // Writes meta.json: `meta` plus the writer's own fields (format, version, records, settings),
  // and closes every file. Returns the first error met while recording, if any.
  Status finish(nlohmann::ordered_json meta);

  int64_t n_records() const { return n_records_; }
  const std::string& dir() const { return o_.dir; }

 private:
  explicit Writer(const WriterOptions& o) : o_(o) {}
  Status write_values(Record* r, std::span<const float> values);
  Status finish_safetensors();

  WriterOptions o_;
  std::FILE* jsonl_ = nullptr;
  std::FILE* st_data_ = nullptr;  // safetensors payload, assembled by finish()
  struct StEntry {
    std::string key;
    std::vector<int64_t> shape;
    uint64_t begin, end;
  };
  std::vector<StEntry> st_entries_;
  uint64_t st_size_ = 0;
  std::map<std::string, int> seen_;  // names whose values were written, and how often
  int64_t n_records_ = 0;
  bool finished_ = false;
  Status error_;  // the first failure while recording (record() cannot return one)
};

}  // namespace bitnet::trace
