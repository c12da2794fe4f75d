#include "gguf/reader.h"

#include <algorithm>
#include <cinttypes>
#include <cstring>

namespace bitnet::gguf {
namespace {

// Limits that no real model comes near; past them a header is hostile or corrupt.
constexpr uint32_t kMaxArrayDepth = 8;
constexpr uint64_t kMaxStringLength = uint64_t{1} << 30;
constexpr uint64_t kMaxAlignment = uint64_t{1} << 20;

// Bounds-checked little-endian reader over the file image. Every read names what it was reading
// so that truncation errors say where the file ends.
class Cursor {
 public:
  Cursor(std::span<const uint8_t> bytes, const std::string& name, uint64_t max_array_items)
      : bytes_(bytes), name_(name), max_array_items_(max_array_items) {}

  uint64_t max_array_items() const { return max_array_items_; }

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return bytes_.size() - pos_; }

  template <class T>
  Result<T> read(const char* what) {
    if (remaining() < sizeof(T)) return truncated(what);
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  Result<std::string> read_string(const char* what) {
    BITNET_ASSIGN_OR_RETURN(uint64_t len, read<uint64_t>(what));
    if (len > kMaxStringLength || len > remaining()) {
      return make_error("%s: %s: string length %" PRIu64 " at offset %" PRIu64
                        " runs past the end of the file (%" PRIu64 " bytes left)",
                        name_.c_str(), what, len, pos_ - 8, remaining());
    }
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), len);
    pos_ += len;
    return s;
  }

  Error truncated(const char* what) const {
    return make_error("%s: truncated: file ends at byte %zu while reading %s", name_.c_str(),
                      bytes_.size(), what);
  }

  const std::string& name() const { return name_; }

 private:
  std::span<const uint8_t> bytes_;
  const std::string& name_;
  uint64_t max_array_items_;
  uint64_t pos_ = 0;
};

// Minimum encoded size of one value of a type: used to reject counts that could not fit in the
// bytes that are left before allocating anything for them.
uint64_t min_encoded_size(ValueType t) {
  switch (t) {
    case ValueType::U8:
    case ValueType::I8:
    case ValueType::BOOL:
      return 1;
    case ValueType::U16:
    case ValueType::I16:
      return 2;
    case ValueType::U32:
    case ValueType::I32:
    case ValueType::F32:
      return 4;
    case ValueType::U64:
    case ValueType::I64:
    case ValueType::F64:
    case ValueType::STRING:  // 8-byte length
      return 8;
    case ValueType::ARRAY:  // element type + count
      return 12;
  }
  return 1;
}

Result<Value> read_value(Cursor& c, uint32_t type_id, uint32_t depth, const std::string& key);

template <class T>
Result<Value> read_scalar(Cursor& c, const std::string& key) {
  auto v = c.read<T>(key.c_str());
  if (!v) return v.error();
  return Value(*v);
}

Result<Value> read_array(Cursor& c, uint32_t depth, const std::string& key) {
  if (depth >= kMaxArrayDepth) {
    return make_error("%s: key '%s': arrays nested deeper than %u", c.name().c_str(), key.c_str(),
                      kMaxArrayDepth);
  }
  BITNET_ASSIGN_OR_RETURN(uint32_t elem_type, c.read<uint32_t>(key.c_str()));
  if (elem_type >= kValueTypeCount) {
    return make_error("%s: key '%s': unknown array element type %u", c.name().c_str(), key.c_str(),
                      elem_type);
  }
  BITNET_ASSIGN_OR_RETURN(uint64_t count, c.read<uint64_t>(key.c_str()));
  const uint64_t min_size = min_encoded_size(static_cast<ValueType>(elem_type));
  if (count > c.remaining() / min_size) {
    return make_error(
        "%s: key '%s': array of %" PRIu64 " %s elements cannot fit in the %" PRIu64 " bytes left",
        c.name().c_str(), key.c_str(), count,
        std::string(value_type_name(static_cast<ValueType>(elem_type))).c_str(), c.remaining());
  }
  Array a;
  a.element_type = static_cast<ValueType>(elem_type);
  // A top-level array longer than the caller keeps is still read through (validated), but its
  // elements are dropped as they are read.
  const bool keep = depth > 0 || count <= c.max_array_items();
  if (keep) a.items.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    BITNET_ASSIGN_OR_RETURN(Value v, read_value(c, elem_type, depth + 1, key));
    if (keep) a.items.push_back(std::move(v));
  }
  if (!keep) a.elided = count;
  return Value(std::move(a));
}

Result<Value> read_value(Cursor& c, uint32_t type_id, uint32_t depth, const std::string& key) {
  switch (static_cast<ValueType>(type_id)) {
    case ValueType::U8:
      return read_scalar<uint8_t>(c, key);
    case ValueType::I8:
      return read_scalar<int8_t>(c, key);
    case ValueType::U16:
      return read_scalar<uint16_t>(c, key);
    case ValueType::I16:
      return read_scalar<int16_t>(c, key);
    case ValueType::U32:
      return read_scalar<uint32_t>(c, key);
    case ValueType::I32:
      return read_scalar<int32_t>(c, key);
    case ValueType::F32:
      return read_scalar<float>(c, key);
    case ValueType::U64:
      return read_scalar<uint64_t>(c, key);
    case ValueType::I64:
      return read_scalar<int64_t>(c, key);
    case ValueType::F64:
      return read_scalar<double>(c, key);
    case ValueType::BOOL: {
      BITNET_ASSIGN_OR_RETURN(uint8_t b, c.read<uint8_t>(key.c_str()));
      if (b > 1) {
        return make_error("%s: key '%s': bool value %u is neither 0 nor 1", c.name().c_str(),
                          key.c_str(), b);
      }
      return Value(b == 1);
    }
    case ValueType::STRING: {
      BITNET_ASSIGN_OR_RETURN(std::string s, c.read_string(key.c_str()));
      return Value(std::move(s));
    }
    case ValueType::ARRAY:
      return read_array(c, depth, key);
  }
  return make_error("%s: key '%s': unknown value type %u", c.name().c_str(), key.c_str(), type_id);
}

bool is_bitnet_cpp_arch(const std::string& arch) {
  return arch == "bitnet-b1.58" || arch == "bitnet-25" || arch == "bitnet";
}

// Type id 36: I2_S in bitnet.cpp, IQ4_NL_4_4 (removed) upstream. Rule:
//  1. A BitNet architecture (bitnet-b1.58, bitnet-25, bitnet) means bitnet.cpp wrote it: I2_S.
//  2. Otherwise the tensor's room in the file decides: the span up to the next tensor (or the
//     end of the file) must fit I2_S's n/4 + 32 bytes and be too small for IQ4_NL_4_4's
//     n * 18/32 bytes (which is larger for any n >= 128).
//  Anything else is reported as the removed upstream type, which this project cannot read.
Status resolve_type_36(const std::string& file, const std::string& arch, const TensorInfo& t,
                       uint64_t room) {
  if (is_bitnet_cpp_arch(arch)) return {};
  const uint64_t i2s = t.n_elements / 4 + kI2sTailBytes;
  const uint64_t iq4 = t.n_elements / 32 * 18;
  if (room >= i2s && room < iq4) return {};
  return make_error(
      "%s: tensor '%s' has type 36, which is I2_S only in bitnet.cpp files "
      "(architecture '%s' is not a BitNet one, and its %" PRIu64
      " bytes of room do not fit I2_S's %" PRIu64
      "); upstream's type 36 (IQ4_NL_4_4) is not supported",
      file.c_str(), t.name.c_str(), arch.c_str(), room, i2s);
}

}  // namespace

std::string TensorInfo::shape_string() const {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(dims[i]);
  }
  return s + "]";
}

Result<File> File::open(const std::string& path, const OpenOptions& o) {
  BITNET_ASSIGN_OR_RETURN(auto mapping, MappedFile::open(path));
  auto bytes = mapping->bytes();
  return parse_impl(bytes, path, std::move(mapping), o);
}

Result<File> File::parse(std::span<const uint8_t> bytes, std::string name) {
  return parse_impl(bytes, std::move(name), nullptr, {});
}

Result<File> File::parse_impl(std::span<const uint8_t> bytes, std::string name,
                              std::shared_ptr<MappedFile> mapping, const OpenOptions& o) {
  File f;
  f.mapping_ = std::move(mapping);
  f.bytes_ = bytes;
  f.path_ = std::move(name);
  const std::string& fname = f.path_;
  Cursor c(bytes, fname, o.max_array_items);

  // Header.
  if (bytes.size() < 4)
    return make_error("%s: not a GGUF file (only %zu bytes)", fname.c_str(), bytes.size());
  BITNET_ASSIGN_OR_RETURN(uint32_t magic, c.read<uint32_t>("magic"));
  if (magic != kMagic) {
    return make_error("%s: not a GGUF file (bad magic 0x%08x, expected \"GGUF\")", fname.c_str(),
                      magic);
  }
  BITNET_ASSIGN_OR_RETURN(f.version_, c.read<uint32_t>("version"));
  if (f.version_ != 2 && f.version_ != 3) {
    return make_error("%s: unsupported GGUF version %u (supported: 2, 3)", fname.c_str(),
                      f.version_);
  }
  BITNET_ASSIGN_OR_RETURN(uint64_t n_tensors, c.read<uint64_t>("tensor count"));
  BITNET_ASSIGN_OR_RETURN(uint64_t n_kv, c.read<uint64_t>("metadata count"));
  // A key-value pair takes at least 8 (key length) + 4 (type) + 1 bytes; a tensor info at least
  // 8 + 4 + 8 + 4 + 8 bytes. Counts beyond what the file could hold are corrupt.
  if (n_kv > c.remaining() / 13) {
    return make_error("%s: metadata count %" PRIu64 " is absurd for a %zu-byte file", fname.c_str(),
                      n_kv, bytes.size());
  }
  if (n_tensors > c.remaining() / 32) {
    return make_error("%s: tensor count %" PRIu64 " is absurd for a %zu-byte file", fname.c_str(),
                      n_tensors, bytes.size());
  }

  // Metadata.
  f.metadata_.reserve(n_kv);
  for (uint64_t i = 0; i < n_kv; ++i) {
    BITNET_ASSIGN_OR_RETURN(std::string key, c.read_string("metadata key"));
    if (key.empty())
      return make_error("%s: metadata entry %" PRIu64 " has an empty key", fname.c_str(), i);
    BITNET_ASSIGN_OR_RETURN(uint32_t type_id, c.read<uint32_t>(key.c_str()));
    if (type_id >= kValueTypeCount) {
      return make_error("%s: key '%s': unknown value type %u", fname.c_str(), key.c_str(), type_id);
    }
    BITNET_ASSIGN_OR_RETURN(Value v, read_value(c, type_id, 0, key));
    if (!f.key_index_.emplace(key, f.metadata_.size()).second) {
      return make_error("%s: duplicate metadata key '%s'", fname.c_str(), key.c_str());
    }
    f.metadata_.push_back(KeyValue{std::move(key), std::move(v)});
  }

  if (const Value* a = f.find("general.alignment")) {
    auto al = a->as_uint();
    if (a->type() != ValueType::U32 || !al || *al == 0 || (*al & (*al - 1)) != 0 ||
        *al > kMaxAlignment) {
      return make_error("%s: general.alignment must be a u32 power of two <= %" PRIu64 ", got %s",
                        fname.c_str(), kMaxAlignment, a->to_display().c_str());
    }
    f.alignment_ = *al;
  }
  const std::string arch = f.architecture();

  // Tensor infos.
  f.tensors_.reserve(n_tensors);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    TensorInfo t;
    BITNET_ASSIGN_OR_RETURN(t.name, c.read_string("tensor name"));
    if (t.name.empty())
      return make_error("%s: tensor %" PRIu64 " has an empty name", fname.c_str(), i);
    const char* tn = t.name.c_str();
    BITNET_ASSIGN_OR_RETURN(uint32_t n_dims, c.read<uint32_t>(tn));
    if (n_dims == 0 || n_dims > kMaxDims) {
      return make_error("%s: tensor '%s' has %u dimensions (must be 1..%u)", fname.c_str(), tn,
                        n_dims, kMaxDims);
    }
    t.n_elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      BITNET_ASSIGN_OR_RETURN(uint64_t dim, c.read<uint64_t>(tn));
      // ggml keeps dimensions in int64_t: anything past INT64_MAX is negative there.
      if (dim == 0 || dim > static_cast<uint64_t>(INT64_MAX)) {
        return make_error("%s: tensor '%s' dimension %u is %" PRId64 " (must be positive)",
                          fname.c_str(), tn, d, static_cast<int64_t>(dim));
      }
      if (t.n_elements > static_cast<uint64_t>(INT64_MAX) / dim) {
        return make_error("%s: tensor '%s' element count overflows (dimension %u = %" PRIu64 ")",
                          fname.c_str(), tn, d, dim);
      }
      t.n_elements *= dim;
      t.dims.push_back(dim);
    }
    BITNET_ASSIGN_OR_RETURN(uint32_t type_id, c.read<uint32_t>(tn));
    const TensorTypeInfo* info = tensor_type_info(type_id);
    if (info == nullptr) {
      return make_error("%s: tensor '%s' has unknown type id %u", fname.c_str(), tn, type_id);
    }
    t.type = info->type;
    BITNET_ASSIGN_OR_RETURN(t.offset, c.read<uint64_t>(tn));
    auto nbytes = tensor_nbytes(t.type, t.n_elements, t.dims[0]);
    if (!nbytes) {
      return make_error("%s: tensor '%s' of type %s has row length %" PRIu64
                        ", not a multiple of the type's block size %u",
                        fname.c_str(), tn, std::string(info->name).c_str(), t.dims[0],
                        info->block_size);
    }
    t.n_bytes = *nbytes;
    if (!f.tensor_index_.emplace(t.name, f.tensors_.size()).second) {
      return make_error("%s: duplicate tensor name '%s'", fname.c_str(), tn);
    }
    f.tensors_.push_back(std::move(t));
  }

  // Data section: starts at the next multiple of the alignment after the header.
  const uint64_t header_end = c.pos();
  f.data_offset_ = (header_end + f.alignment_ - 1) / f.alignment_ * f.alignment_;
  if (n_tensors > 0 && f.data_offset_ > bytes.size()) {
    return make_error("%s: truncated: tensor data should start at byte %" PRIu64
                      " but the file has %zu bytes",
                      fname.c_str(), f.data_offset_, bytes.size());
  }
  const uint64_t data_size = bytes.size() > f.data_offset_ ? bytes.size() - f.data_offset_ : 0;

  // Offsets: aligned, in bounds, not overlapping. Checked in file order.
  std::vector<size_t> order(f.tensors_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return f.tensors_[a].offset < f.tensors_[b].offset; });
  for (size_t k = 0; k < order.size(); ++k) {
    const TensorInfo& t = f.tensors_[order[k]];
    const char* tn = t.name.c_str();
    if (t.offset % f.alignment_ != 0) {
      return make_error("%s: tensor '%s' data offset %" PRIu64
                        " is not a multiple of the alignment %" PRIu64,
                        fname.c_str(), tn, t.offset, f.alignment_);
    }
    if (t.offset > data_size || t.n_bytes > data_size - t.offset) {
      return make_error("%s: tensor '%s' data [%" PRIu64 ", +%" PRIu64
                        ") runs past the end of the data section (%" PRIu64 " bytes)%s",
                        fname.c_str(), tn, t.offset, t.n_bytes, data_size,
                        t.offset <= data_size ? " (file truncated?)" : "");
    }
    const uint64_t room =
        (k + 1 < order.size() ? f.tensors_[order[k + 1]].offset : data_size) - t.offset;
    if (t.type == TensorType::I2_S) BITNET_TRY(resolve_type_36(fname, arch, t, room));
    if (k + 1 < order.size()) {
      const TensorInfo& next = f.tensors_[order[k + 1]];
      if (t.offset + t.n_bytes > next.offset) {
        return make_error(
            "%s: tensor '%s' data [%" PRIu64 ", %" PRIu64 ") overlaps tensor '%s' at %" PRIu64,
            fname.c_str(), tn, t.offset, t.offset + t.n_bytes, next.name.c_str(), next.offset);
      }
    }
  }
  return f;
}

const Value* File::find(std::string_view key) const {
  auto it = key_index_.find(std::string(key));
  return it == key_index_.end() ? nullptr : &metadata_[it->second].value;
}

Result<std::string> File::get_string(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr)
    return make_error("%s: missing metadata key '%.*s'", path_.c_str(), int(key.size()),
                      key.data());
  if (const auto* s = v->as_string()) return *s;
  return make_error("%s: metadata key '%.*s' is a %s, expected a string", path_.c_str(),
                    int(key.size()), key.data(), std::string(value_type_name(v->type())).c_str());
}

Result<uint64_t> File::get_uint(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr)
    return make_error("%s: missing metadata key '%.*s'", path_.c_str(), int(key.size()),
                      key.data());
  if (auto u = v->as_uint()) return *u;
  return make_error("%s: metadata key '%.*s' is %s, expected a non-negative integer", path_.c_str(),
                    int(key.size()), key.data(), v->to_display().c_str());
}

Result<double> File::get_number(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr)
    return make_error("%s: missing metadata key '%.*s'", path_.c_str(), int(key.size()),
                      key.data());
  if (auto d = v->as_number()) return *d;
  return make_error("%s: metadata key '%.*s' is %s, expected a number", path_.c_str(),
                    int(key.size()), key.data(), v->to_display().c_str());
}

std::string File::architecture() const {
  const Value* v = find("general.architecture");
  const std::string* s = v ? v->as_string() : nullptr;
  return s ? *s : std::string();
}

const TensorInfo* File::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(std::string(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

std::span<const uint8_t> File::tensor_data(const TensorInfo& t) const {
  return bytes_.subspan(data_offset_ + t.offset, t.n_bytes);
}

}  // namespace bitnet::gguf
