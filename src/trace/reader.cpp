#include "trace/reader.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/npy.h"

namespace bitnet::trace {
namespace fs = std::filesystem;

namespace {

Result<nlohmann::json> read_json_file(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return make_error("%s: cannot open", path.c_str());
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    return make_error("%s: not JSON: %s", path.c_str(), e.what());
  }
}

}  // namespace

Result<Trace> read_trace(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return make_error("%s: not a trace folder (no such directory)", dir.c_str());
  Trace t;
  t.dir = dir;
  const fs::path jsonl = fs::path(dir) / "trace.jsonl";
  if (fs::exists(jsonl, ec)) {
    t.layout = "jsonl";
    std::ifstream in(jsonl);
    if (!in) return make_error("%s: cannot open", jsonl.c_str());
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
      if (line.empty()) continue;
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception&) {
        return make_error("%s:%d: not a JSON object", jsonl.c_str(), n);
      }
      auto r = record_from_json(j);
      if (!r) return make_error("%s:%d: %s", jsonl.c_str(), n, r.message().c_str());
      t.records.push_back(std::move(*r));
    }
    if (fs::exists(fs::path(dir) / "meta.json", ec)) {
      BITNET_ASSIGN_OR_RETURN(t.meta, read_json_file(fs::path(dir) / "meta.json"));
    }
    return t;
  }
  t.layout = "seed";
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.path().extension() != ".trace") continue;
    BITNET_ASSIGN_OR_RETURN(auto j, read_json_file(e.path()));
    auto r = record_from_json(j);
    if (!r) return make_error("%s: %s", e.path().c_str(), r.message().c_str());
    t.records.push_back(std::move(*r));
  }
  if (ec) return make_error("%s: cannot list: %s", dir.c_str(), ec.message().c_str());
  if (t.records.empty())
    return make_error("%s: no trace.jsonl and no *.trace files: not a trace folder", dir.c_str());
  std::sort(t.records.begin(), t.records.end(), forward_order_less);
  return t;
}

Result<std::vector<float>> ValueStore::load(const Record& r) {
  if (r.values_file.empty()) return std::vector<float>{};
  const std::string path = (fs::path(dir_) / r.values_file).string();
  if (r.values_key.empty()) {
    BITNET_ASSIGN_OR_RETURN(auto a, read_npy_f32(path));
    if (static_cast<int64_t>(a.data.size()) != r.num_elements) {
      return make_error("%s: %zu values, the record says %lld", path.c_str(), a.data.size(),
                        static_cast<long long>(r.num_elements));
    }
    return std::move(a.data);
  }
  auto it = st_.find(path);
  if (it == st_.end()) {
    Safetensors s;
    BITNET_ASSIGN_OR_RETURN(s.file, MappedFile::open(path));
    uint64_t hlen = 0;
    if (s.file->size() < 8) return make_error("%s: too short for safetensors", path.c_str());
    std::memcpy(&hlen, s.file->data(), 8);
    if (hlen > s.file->size() - 8)
      return make_error("%s: header length past the end", path.c_str());
    try {
      s.header = nlohmann::json::parse(s.file->data() + 8, s.file->data() + 8 + hlen);
    } catch (const nlohmann::json::exception& e) {
      return make_error("%s: bad header: %s", path.c_str(), e.what());
    }
    s.data_start = 8 + hlen;
    it = st_.emplace(path, std::move(s)).first;
  }
  const Safetensors& s = it->second;
  const auto entry = s.header.find(r.values_key);
  if (entry == s.header.end())
    return make_error("%s: no tensor '%s'", path.c_str(), r.values_key.c_str());
  uint64_t begin = 0, end = 0;
  try {
    if (entry->at("dtype") != "F32")
      return make_error("%s: '%s' is not F32", path.c_str(), r.values_key.c_str());
    begin = entry->at("data_offsets").at(0).get<uint64_t>();
    end = entry->at("data_offsets").at(1).get<uint64_t>();
  } catch (const nlohmann::json::exception& e) {
    return make_error("%s: '%s': %s", path.c_str(), r.values_key.c_str(), e.what());
  }
  if (end < begin || end > s.file->size() - s.data_start ||
      (end - begin) != static_cast<uint64_t>(r.num_elements) * 4) {
    return make_error("%s: '%s' has a bad byte range", path.c_str(), r.values_key.c_str());
  }
  std::vector<float> v(r.num_elements);
  std::memcpy(v.data(), s.file->data() + s.data_start + begin, end - begin);
  return v;
}

}  // namespace bitnet::trace
