#include "gguf/writer.h"

#include <cerrno>
#include <cinttypes>
#include <cstring>
#include <vector>

namespace bitnet::gguf {
namespace {

// Serialises header pieces into a byte buffer (the header is small; tensor data is not here).
struct HeaderBuffer {
  std::vector<uint8_t> bytes;

  // resize + memcpy rather than vector::insert: GCC 12 reports a false stringop-overflow there.
  void put_bytes(const void* p, size_t n) {
    const size_t at = bytes.size();
    bytes.resize(at + n);
    if (n != 0) std::memcpy(bytes.data() + at, p, n);
  }
  template <class T>
  void put(T v) {
    put_bytes(&v, sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    put_bytes(s.data(), s.size());
  }
  void put_value(const Value& v) {
    std::visit(
        [&](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, std::string>) {
            put_string(x);
          } else if constexpr (std::is_same_v<T, Array>) {
            put<uint32_t>(static_cast<uint32_t>(x.element_type));
            put<uint64_t>(x.items.size());
            for (const Value& item : x.items) put_value(item);
          } else if constexpr (std::is_same_v<T, bool>) {
            put<uint8_t>(x ? 1 : 0);
          } else {
            put<T>(x);
          }
        },
        v.storage());
  }
};

}  // namespace

Writer::~Writer() {
  if (file_ != nullptr) std::fclose(file_);
}

void Writer::set(const std::string& key, Value value) {
  for (auto& kv : metadata_) {
    if (kv.key == key) {
      kv.value = std::move(value);
      return;
    }
  }
  metadata_.push_back(KeyValue{key, std::move(value)});
}

void Writer::remove(const std::string& key) {
  std::erase_if(metadata_, [&](const KeyValue& kv) { return kv.key == key; });
}

void Writer::rename_prefix(const std::string& from, const std::string& to) {
  for (auto& kv : metadata_) {
    if (kv.key.rfind(from, 0) == 0) kv.key = to + kv.key.substr(from.size());
  }
}

uint64_t Writer::alignment() const {
  for (const auto& kv : metadata_) {
    if (kv.key == "general.alignment") {
      if (auto a = kv.value.as_uint()) return *a;
    }
  }
  return kDefaultAlignment;
}

Status Writer::add_tensor(const std::string& name, TensorType type, std::vector<uint64_t> dims) {
  if (file_ != nullptr) return make_error("gguf writer: tensor '%s' added after begin()", name.c_str());
  if (dims.empty() || dims.size() > kMaxDims) {
    return make_error("gguf writer: tensor '%s' has %zu dimensions", name.c_str(), dims.size());
  }
  for (const auto& t : tensors_) {
    if (t.name == name) return make_error("gguf writer: duplicate tensor '%s'", name.c_str());
  }
  TensorInfo t;
  t.name = name;
  t.type = type;
  t.n_elements = 1;
  for (uint64_t d : dims) t.n_elements *= d;
  t.dims = std::move(dims);
  auto nbytes = tensor_nbytes(type, t.n_elements, t.dims[0]);
  if (!nbytes) {
    return make_error("gguf writer: tensor '%s' shape %s does not fit type %s", name.c_str(),
                      t.shape_string().c_str(), std::string(tensor_type_name(type)).c_str());
  }
  t.n_bytes = *nbytes;
  const uint64_t align = alignment();
  uint64_t offset = 0;
  if (!tensors_.empty()) {
    const TensorInfo& prev = tensors_.back();
    offset = (prev.offset + prev.n_bytes + align - 1) / align * align;
  }
  t.offset = offset;
  tensors_.push_back(std::move(t));
  return {};
}

uint64_t Writer::total_data_bytes() const {
  return tensors_.empty() ? 0 : tensors_.back().offset + tensors_.back().n_bytes;
}

Status Writer::write_raw(const void* p, size_t n) {
  if (n != 0 && std::fwrite(p, 1, n, file_) != n) {
    return make_error("%s: write failed: %s", path_.c_str(), std::strerror(errno));
  }
  return {};
}

Status Writer::begin(const std::string& path) {
  if (file_ != nullptr) return make_error("gguf writer: begin() called twice");
  path_ = path;
  HeaderBuffer h;
  h.put<uint32_t>(kMagic);
  h.put<uint32_t>(version_);
  h.put<uint64_t>(tensors_.size());
  h.put<uint64_t>(metadata_.size());
  for (const auto& kv : metadata_) {
    h.put_string(kv.key);
    h.put<uint32_t>(static_cast<uint32_t>(kv.value.type()));
    h.put_value(kv.value);
  }
  for (const auto& t : tensors_) {
    h.put_string(t.name);
    h.put<uint32_t>(static_cast<uint32_t>(t.dims.size()));
    for (uint64_t d : t.dims) h.put<uint64_t>(d);
    h.put<uint32_t>(static_cast<uint32_t>(t.type));
    h.put<uint64_t>(t.offset);
  }
  const uint64_t align = alignment();
  h.bytes.resize((h.bytes.size() + align - 1) / align * align, 0);

  file_ = std::fopen(path.c_str(), "wb");
  if (file_ == nullptr) return make_error("%s: cannot create: %s", path.c_str(), std::strerror(errno));
  static thread_local std::vector<char> buffer(size_t{1} << 20);
  std::setvbuf(file_, buffer.data(), _IOFBF, buffer.size());
  current_tensor_ = 0;
  written_in_tensor_ = 0;
  data_pos_ = 0;
  return write_raw(h.bytes.data(), h.bytes.size());
}

Status Writer::write_padding_to(uint64_t target) {
  static const uint8_t kZeros[64] = {};
  while (data_pos_ < target) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(sizeof kZeros, target - data_pos_));
    BITNET_TRY(write_raw(kZeros, n));
    data_pos_ += n;
  }
  return {};
}

Status Writer::write(std::span<const uint8_t> bytes) {
  if (file_ == nullptr) return make_error("gguf writer: write() before begin()");
  while (!bytes.empty()) {
    if (current_tensor_ >= tensors_.size()) {
      return make_error("%s: %zu bytes written past the last tensor", path_.c_str(), bytes.size());
    }
    const TensorInfo& t = tensors_[current_tensor_];
    if (written_in_tensor_ == 0) BITNET_TRY(write_padding_to(t.offset));
    const uint64_t n = std::min<uint64_t>(bytes.size(), t.n_bytes - written_in_tensor_);
    BITNET_TRY(write_raw(bytes.data(), static_cast<size_t>(n)));
    written_in_tensor_ += n;
    data_pos_ += n;
    bytes = bytes.subspan(static_cast<size_t>(n));
    if (written_in_tensor_ == t.n_bytes) {
      ++current_tensor_;
      written_in_tensor_ = 0;
    }
  }
  return {};
}

Status Writer::finish() {
  if (file_ == nullptr) return make_error("gguf writer: finish() before begin()");
  if (current_tensor_ != tensors_.size()) {
    const TensorInfo& t = tensors_[current_tensor_];
    return make_error("%s: tensor '%s' is missing data (%" PRIu64 " of %" PRIu64 " bytes written)",
                      path_.c_str(), t.name.c_str(), written_in_tensor_, t.n_bytes);
  }
  // Pad the file to the alignment so a reader mapping the last tensor stays in bounds.
  const uint64_t align = alignment();
  BITNET_TRY(write_padding_to((data_pos_ + align - 1) / align * align));
  std::FILE* f = file_;
  file_ = nullptr;
  if (std::fclose(f) != 0) return make_error("%s: close failed: %s", path_.c_str(), std::strerror(errno));
  return {};
}

}  // namespace bitnet::gguf
