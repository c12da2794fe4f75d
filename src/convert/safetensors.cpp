#include "convert/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/fp16.h"

namespace bitnet::convert {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

// The header JSON is small (a few hundred bytes per tensor); a larger length field is garbage.
constexpr uint64_t kMaxHeaderBytes = 100u << 20;
constexpr size_t kMaxDims = 8;

struct DtypeInfo {
  const char* name;
  Dtype dtype;
  size_t size;
};
constexpr DtypeInfo kDtypes[] = {{"F64", Dtype::F64, 8}, {"F32", Dtype::F32, 4},
                                 {"F16", Dtype::F16, 2}, {"BF16", Dtype::BF16, 2},
                                 {"I64", Dtype::I64, 8}, {"I32", Dtype::I32, 4},
                                 {"I16", Dtype::I16, 2}, {"I8", Dtype::I8, 1},
                                 {"U8", Dtype::U8, 1},   {"BOOL", Dtype::BOOL, 1}};

template <class T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

std::string_view dtype_name(Dtype d) {
  for (const auto& i : kDtypes)
    if (i.dtype == d) return i.name;
  return "?";
}

size_t dtype_size(Dtype d) {
  for (const auto& i : kDtypes)
    if (i.dtype == d) return i.size;
  return 0;
}

float StTensor::at(uint64_t i) const {
  const uint8_t* p = data.data() + i * dtype_size(dtype);
  switch (dtype) {
    case Dtype::F64:
      return static_cast<float>(load<double>(p));
    case Dtype::F32:
      return load<float>(p);
    case Dtype::F16:
      return fp16_to_fp32(load<uint16_t>(p));
    case Dtype::BF16:
      return bf16_to_fp32(load<uint16_t>(p));
    case Dtype::I64:
      return static_cast<float>(load<int64_t>(p));
    case Dtype::I32:
      return static_cast<float>(load<int32_t>(p));
    case Dtype::I16:
      return static_cast<float>(load<int16_t>(p));
    case Dtype::I8:
      return static_cast<float>(load<int8_t>(p));
    case Dtype::U8:
      return static_cast<float>(*p);
    case Dtype::BOOL:
      return *p ? 1.0f : 0.0f;
  }
  return 0;
}

const StTensor* Checkpoint::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

Status Checkpoint::add_file(std::span<const uint8_t> bytes, const std::string& name) {
  const char* f = name.c_str();
  if (bytes.size() < 8) return make_error("%s: too short for a safetensors header", f);
  const uint64_t n = load<uint64_t>(bytes.data());
  if (n > kMaxHeaderBytes || n > bytes.size() - 8) {
    return make_error("%s: header length %llu does not fit the file (%zu bytes)", f,
                      static_cast<unsigned long long>(n), bytes.size());
  }
  const std::string_view text(reinterpret_cast<const char*>(bytes.data() + 8),
                              static_cast<size_t>(n));
  json header = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded()) return make_error("%s: the header is not valid JSON", f);
  if (!header.is_object()) return make_error("%s: the header is not a JSON object", f);
  const std::span<const uint8_t> buffer = bytes.subspan(8 + static_cast<size_t>(n));

  struct Range {
    uint64_t begin, end;
    size_t tensor;
  };
  std::vector<Range> ranges;
  const bool first_file = tensors_.empty() && metadata_.empty();
  for (const auto& [key, entry] : header.items()) {
    if (key == "__metadata__") {
      if (!entry.is_object()) return make_error("%s: __metadata__ is not an object", f);
      for (const auto& [mk, mv] : entry.items()) {
        if (!mv.is_string())
          return make_error("%s: __metadata__ value of '%s' is not a string", f, mk.c_str());
        if (first_file) metadata_[mk] = mv.get<std::string>();
      }
      continue;
    }
    const char* t = key.c_str();
    if (!entry.is_object()) return make_error("%s: tensor '%s' is not an object", f, t);
    auto dt = entry.find("dtype");
    auto sh = entry.find("shape");
    auto off = entry.find("data_offsets");
    if (dt == entry.end() || sh == entry.end() || off == entry.end() || entry.size() != 3) {
      return make_error("%s: tensor '%s' needs exactly dtype, shape and data_offsets", f, t);
    }
    if (!dt->is_string()) return make_error("%s: tensor '%s': dtype is not a string", f, t);
    const DtypeInfo* info = nullptr;
    for (const auto& i : kDtypes)
      if (dt->get<std::string>() == i.name) info = &i;
    if (!info) {
      return make_error("%s: tensor '%s': dtype '%s' is not supported", f, t,
                        dt->get<std::string>().c_str());
    }
    if (!sh->is_array() || sh->size() > kMaxDims)
      return make_error("%s: tensor '%s': shape is not an array of at most %zu sizes", f, t,
                        kMaxDims);
    StTensor st;
    st.name = key;
    st.dtype = info->dtype;
    st.file = name;
    uint64_t count = 1;
    for (const auto& d : *sh) {
      if (!d.is_number_unsigned())
        return make_error("%s: tensor '%s': a size is not a natural number", f, t);
      const uint64_t v = d.get<uint64_t>();
      if (v != 0 && count > UINT64_MAX / v)
        return make_error("%s: tensor '%s': shape overflows", f, t);
      count *= v;
      st.shape.push_back(v);
    }
    st.n_elements = count;
    if (!off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
        !(*off)[1].is_number_unsigned()) {
      return make_error("%s: tensor '%s': data_offsets is not [begin, end]", f, t);
    }
    const uint64_t b = (*off)[0].get<uint64_t>(), e = (*off)[1].get<uint64_t>();
    if (b > e || e > buffer.size()) {
      return make_error("%s: tensor '%s': bytes [%llu, %llu) are outside the data (%zu bytes)", f,
                        t, static_cast<unsigned long long>(b), static_cast<unsigned long long>(e),
                        buffer.size());
    }
    if (count > UINT64_MAX / info->size || e - b != count * info->size) {
      return make_error("%s: tensor '%s': %llu bytes for %llu %s elements", f, t,
                        static_cast<unsigned long long>(e - b),
                        static_cast<unsigned long long>(count), info->name);
    }
    if (index_.count(key)) return make_error("%s: tensor '%s' appears twice", f, t);
    st.data = buffer.subspan(static_cast<size_t>(b), static_cast<size_t>(e - b));
    ranges.push_back({b, e, tensors_.size()});
    index_[key] = tensors_.size();
    tensors_.push_back(std::move(st));
  }
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) {
    return a.begin < b.begin || (a.begin == b.begin && a.end < b.end);
  });
  uint64_t at = 0;
  for (const Range& r : ranges) {
    if (r.begin < at) {
      return make_error("%s: tensor '%s' overlaps another", f, tensors_[r.tensor].name.c_str());
    }
    if (r.begin > at) {
      return make_error("%s: bytes [%llu, %llu) of the data belong to no tensor", f,
                        static_cast<unsigned long long>(at),
                        static_cast<unsigned long long>(r.begin));
    }
    at = r.end;
  }
  if (at != buffer.size()) {
    return make_error("%s: bytes [%llu, %zu) of the data belong to no tensor", f,
                      static_cast<unsigned long long>(at), buffer.size());
  }
  return {};
}

Result<Checkpoint> Checkpoint::parse(std::span<const uint8_t> bytes, const std::string& name) {
  Checkpoint c;
  BITNET_TRY(c.add_file(bytes, name));
  return c;
}

Result<Checkpoint> Checkpoint::open(const std::string& path) {
  Checkpoint c;
  std::error_code ec;
  if (!fs::is_directory(path, ec)) {
    BITNET_ASSIGN_OR_RETURN(auto m, MappedFile::open(path));
    BITNET_TRY(c.add_file(m->bytes(), path));
    c.maps_.push_back(std::move(m));
    return c;
  }
  const fs::path dir(path);
  if (fs::exists(dir / "model.safetensors", ec) &&
      !fs::exists(dir / "model.safetensors.index.json", ec))
    return open((dir / "model.safetensors").string());
  const std::string index_path = (dir / "model.safetensors.index.json").string();
  std::ifstream in(index_path);
  if (!in) {
    return make_error("%s: neither model.safetensors nor model.safetensors.index.json is there",
                      path.c_str());
  }
  std::stringstream ss;
  ss << in.rdbuf();
  json index = json::parse(ss.str(), nullptr, false);
  if (index.is_discarded() || !index.is_object())
    return make_error("%s: not a JSON object", index_path.c_str());
  auto wm = index.find("weight_map");
  if (wm == index.end() || !wm->is_object() || wm->empty())
    return make_error("%s: no weight_map object", index_path.c_str());
  std::map<std::string, std::vector<std::string>> by_file;
  for (const auto& [tensor, file] : wm->items()) {
    if (!file.is_string()) {
      return make_error("%s: the shard of '%s' is not a file name", index_path.c_str(),
                        tensor.c_str());
    }
    const std::string fname = file.get<std::string>();
    // Shards are files beside the index, never paths elsewhere.
    if (fname.empty() || fname.find('/') != std::string::npos || fname == "." || fname == "..") {
      return make_error("%s: shard name '%s' is not a file in the folder", index_path.c_str(),
                        fname.c_str());
    }
    by_file[fname].push_back(tensor);
  }
  for (const auto& [fname, names] : by_file) {
    const std::string shard = (dir / fname).string();
    BITNET_ASSIGN_OR_RETURN(auto m, MappedFile::open(shard));
    const size_t before = c.tensors_.size();
    BITNET_TRY(c.add_file(m->bytes(), shard));
    c.maps_.push_back(std::move(m));
    for (const auto& n : names) {
      const StTensor* t = c.find(n);
      if (!t || t->file != shard) {
        return make_error("%s: tensor '%s' is not in %s as the index says", index_path.c_str(),
                          n.c_str(), fname.c_str());
      }
    }
    if (c.tensors_.size() - before != names.size()) {
      return make_error("%s: %s holds %zu tensors, the index names %zu of them", index_path.c_str(),
                        fname.c_str(), c.tensors_.size() - before, names.size());
    }
  }
  return c;
}

}  // namespace bitnet::convert
