#include "convert/safetensors_writer.h"

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

namespace bitnet::convert {

SafetensorsWriter::~SafetensorsWriter() {
  if (file_) std::fclose(file_);
}

void SafetensorsWriter::add(const std::string& name, Dtype dtype, std::vector<uint64_t> shape) {
  uint64_t n = 1;
  for (uint64_t d : shape) n *= d;
  const uint64_t bytes = n * dtype_size(dtype);
  entries_.push_back({name, dtype, std::move(shape), total_, total_ + bytes});
  total_ += bytes;
}

Status SafetensorsWriter::begin(const std::string& path) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  for (const auto& e : entries_) {
    header[e.name] = {{"dtype", std::string(dtype_name(e.dtype))},
                      {"shape", e.shape},
                      {"data_offsets", {e.begin, e.end}}};
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  path_ = path;
  file_ = std::fopen(path.c_str(), "wb");
  if (!file_) return make_error("%s: cannot create: %s", path.c_str(), std::strerror(errno));
  const uint64_t n = text.size();
  uint8_t len[8];
  std::memcpy(len, &n, 8);
  if (std::fwrite(len, 1, 8, file_) != 8 ||
      std::fwrite(text.data(), 1, text.size(), file_) != text.size())
    return make_error("%s: write failed: %s", path.c_str(), std::strerror(errno));
  return {};
}

Status SafetensorsWriter::write(std::span<const uint8_t> bytes) {
  if (!file_) return make_error("safetensors writer: write() before begin()");
  if (written_ + bytes.size() > total_)
    return make_error("%s: more bytes than the declared tensors hold", path_.c_str());
  if (std::fwrite(bytes.data(), 1, bytes.size(), file_) != bytes.size())
    return make_error("%s: write failed: %s", path_.c_str(), std::strerror(errno));
  written_ += bytes.size();
  return {};
}

Status SafetensorsWriter::finish() {
  if (!file_) return make_error("safetensors writer: finish() before begin()");
  if (written_ != total_) {
    return make_error("%s: %llu of %llu tensor bytes written", path_.c_str(),
                      static_cast<unsigned long long>(written_),
                      static_cast<unsigned long long>(total_));
  }
  const int rc = std::fclose(file_);
  file_ = nullptr;
  if (rc != 0) return make_error("%s: close failed: %s", path_.c_str(), std::strerror(errno));
  return {};
}

}  // namespace bitnet::convert
