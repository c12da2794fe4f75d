#include "trace/writer.h"

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/npy.h"

namespace bitnet::trace {
namespace fs = std::filesystem;

namespace {

constexpr const char* kPartName = "values.safetensors.part";

Error io_error(const std::string& path, const char* what) {
  return make_error("%s: %s: %s", path.c_str(), what, std::strerror(errno));
}

}  // namespace

Result<ValuesFormat> values_format_from_name(const std::string& name) {
  if (name == "npy") return ValuesFormat::kNpy;
  if (name == "safetensors") return ValuesFormat::kSafetensors;
  return make_error("values format '%s' is not one of npy, safetensors", name.c_str());
}

const char* values_format_name(ValuesFormat f) {
  switch (f) {
    case ValuesFormat::kNpy:
      return "npy";
    case ValuesFormat::kSafetensors:
      return "safetensors";
    case ValuesFormat::kNone:
      break;
  }
  return "none";
}

Result<std::unique_ptr<Writer>> Writer::open(const WriterOptions& o) {
  if (o.dir.empty()) return make_error("the trace folder name is empty");
  std::error_code ec;
  fs::create_directories(o.dir, ec);
  if (ec || !fs::is_directory(o.dir)) {
    return make_error("%s: cannot create the trace folder: %s", o.dir.c_str(),
                      ec ? ec.message().c_str() : "not a directory");
  }
  std::unique_ptr<Writer> w(new Writer(o));
  const std::string jsonl = (fs::path(o.dir) / "trace.jsonl").string();
  w->jsonl_ = std::fopen(jsonl.c_str(), "wb");
  if (w->jsonl_ == nullptr) return io_error(jsonl, "cannot create");
  if (o.values == ValuesFormat::kNpy) {
    fs::create_directories(fs::path(o.dir) / "values", ec);
    if (ec) return make_error("%s/values: cannot create: %s", o.dir.c_str(), ec.message().c_str());
  } else if (o.values == ValuesFormat::kSafetensors) {
    const std::string part = (fs::path(o.dir) / kPartName).string();
    w->st_data_ = std::fopen(part.c_str(), "w+b");
    if (w->st_data_ == nullptr) return io_error(part, "cannot create");
  }
  return w;
}

Writer::~Writer() {
  if (!finished_) (void)finish({});
}

bool Writer::wants(const Point& p) const {
  const Selection& s = o_.selection;
  if (s.all()) return true;
  if (!s.position_selected(p.position)) return false;
  return s.name_selected(point_name(p.position, p.layer, p.op)) ||
         (feeds_bitlinear(p.op) &&
          s.name_selected(point_name(p.position, p.layer, p.op, Kind::kQ8)));
}

void Writer::record(const Point& p, std::span<const float> values, std::span<const int64_t> shape) {
  if (!error_.ok() || !o_.selection.selected(p.position, p.layer, p.op, Kind::kF32)) return;
  auto st = add(make_record(p.position, p.layer, p.op, shape, values), values);
  if (!st.ok()) error_ = st;
}

void Writer::record_codes(const Point& p, QuantGrouping grouping, std::span<const int8_t> codes,
                          std::span<const float> scales) {
  if (!error_.ok() || !o_.selection.selected(p.position, p.layer, p.op, Kind::kQ8)) return;
  auto st = add(make_quantized_record(p.position, p.layer, p.op, grouping, codes, scales));
  if (!st.ok()) error_ = st;
}

Status Writer::write_values(Record* r, std::span<const float> values) {
  // A context re-evaluating a position records a name twice: keep both sets of values.
  const std::string flat = flat_name(r->position, r->layer, r->op, r->kind);
  const int dup = seen_[r->name()]++;
  const std::string suffix = dup > 0 ? "." + std::to_string(dup) : "";
  if (o_.values == ValuesFormat::kNpy) {
    r->values_file = "values/" + flat + suffix + ".npy";
    return write_npy_f32((fs::path(o_.dir) / r->values_file).string(), values, r->shape);
  }
  const std::string key = r->name() + suffix;
  const size_t bytes = values.size_bytes();
  if (std::fwrite(values.data(), 1, bytes, st_data_) != bytes) {
    return io_error((fs::path(o_.dir) / kPartName).string(), "write failed");
  }
  st_entries_.push_back({key, r->shape, st_size_, st_size_ + bytes});
  st_size_ += bytes;
  r->values_file = "values.safetensors";
  r->values_key = key;
  return {};
}

Status Writer::add(Record r, std::span<const float> values) {
  if (finished_) return make_error("%s: the trace is already finished", o_.dir.c_str());
  if (o_.values != ValuesFormat::kNone && r.kind == Kind::kF32 && !values.empty()) {
    BITNET_TRY(write_values(&r, values));
  }
  const std::string line = to_json(r).dump() + "\n";
  if (std::fwrite(line.data(), 1, line.size(), jsonl_) != line.size()) {
    return io_error((fs::path(o_.dir) / "trace.jsonl").string(), "write failed");
  }
  if (o_.seed_layout && r.kind == Kind::kF32) {
    const std::string path =
        (fs::path(o_.dir) / (flat_name(r.position, r.layer, r.op) + ".trace")).string();
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (f == nullptr) return io_error(path, "cannot create");
    const std::string text = to_seed_json(r).dump() + "\n";
    const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
    if (std::fclose(f) != 0 || !ok) return io_error(path, "write failed");
  }
  ++n_records_;
  return {};
}

// safetensors: u64 little-endian header length, a JSON header naming each tensor's dtype, shape
// and byte range, then the data. The data went to a side file during the run.
Status Writer::finish_safetensors() {
  nlohmann::ordered_json h;
  h["__metadata__"] = {{"format", "bitnet-trace"}};
  for (const auto& e : st_entries_) {
    h[e.key] = {{"dtype", "F32"}, {"shape", e.shape}, {"data_offsets", {e.begin, e.end}}};
  }
  std::string header = h.dump();
  header.append((8 - header.size() % 8) % 8, ' ');
  const std::string path = (fs::path(o_.dir) / "values.safetensors").string();
  std::FILE* out = std::fopen(path.c_str(), "wb");
  if (out == nullptr) return io_error(path, "cannot create");
  const uint64_t hlen = header.size();
  bool ok = std::fwrite(&hlen, 8, 1, out) == 1 &&
            std::fwrite(header.data(), 1, header.size(), out) == header.size();
  std::rewind(st_data_);
  std::vector<char> buf(1 << 20);
  size_t n;
  while (ok && (n = std::fread(buf.data(), 1, buf.size(), st_data_)) > 0) {
    ok = std::fwrite(buf.data(), 1, n, out) == n;
  }
  if (std::fclose(out) != 0 || !ok) return io_error(path, "write failed");
  std::fclose(st_data_);
  st_data_ = nullptr;
  std::error_code ec;
  fs::remove(fs::path(o_.dir) / kPartName, ec);
  return {};
}

Status Writer::finish(nlohmann::ordered_json meta) {
  if (finished_) return error_;
  finished_ = true;
  Status st = error_;
  if (st_data_ != nullptr) {
    auto s = finish_safetensors();
    if (st.ok()) st = s;
  }
  if (jsonl_ != nullptr && std::fclose(jsonl_) != 0 && st.ok()) {
    st = io_error((fs::path(o_.dir) / "trace.jsonl").string(), "write failed");
  }
  jsonl_ = nullptr;
  nlohmann::ordered_json m;
  m["format"] = "bitnet-trace";
  m["version"] = 1;
  for (auto& [k, v] : meta.items()) m[k] = v;
  m["records"] = n_records_;
  m["values"] = values_format_name(o_.values);
  m["seed_layout"] = o_.seed_layout;
  std::vector<std::string> ops(kOpNames.begin(), kOpNames.end());
  m["ops"] = ops;
  const std::string path = (fs::path(o_.dir) / "meta.json").string();
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return st.ok() ? io_error(path, "cannot create") : st;
  const std::string text = m.dump(2) + "\n";
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if ((std::fclose(f) != 0 || !ok) && st.ok()) st = io_error(path, "write failed");
  return st;
}

}  // namespace bitnet::trace
