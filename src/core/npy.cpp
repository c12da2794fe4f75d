#include "core/npy.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace bitnet {
namespace {

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

}  // namespace

Status write_npy_f32(const std::string& path, std::span<const float> data,
                     std::span<const int64_t> shape) {
  std::string dims;
  int64_t count = 1;
  for (int64_t d : shape) {
    dims += std::to_string(d) + ", ";
    count *= d;
  }
  if (shape.size() > 1) dims.resize(dims.size() - 1);  // "(3, 4)" but "(3,)"
  if (count != static_cast<int64_t>(data.size())) {
    return make_error("%s: shape has %lld elements, data %zu", path.c_str(),
                      static_cast<long long>(count), data.size());
  }
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  // Magic (6) + version (2) + header length (2) + header, padded with spaces to 64 bytes, '\n'.
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  FilePtr f(std::fopen(path.c_str(), "wb"));
  if (!f) return make_error("%s: cannot create: %s", path.c_str(), std::strerror(errno));
  const uint16_t hlen = static_cast<uint16_t>(header.size());
  const unsigned char magic[8] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
  bool ok = std::fwrite(magic, 1, 8, f.get()) == 8 && std::fwrite(&hlen, 2, 1, f.get()) == 1 &&
            std::fwrite(header.data(), 1, header.size(), f.get()) == header.size() &&
            std::fwrite(data.data(), 4, data.size(), f.get()) == data.size();
  if (!ok || std::fclose(f.release()) != 0) {
    return make_error("%s: write failed: %s", path.c_str(), std::strerror(errno));
  }
  return {};
}

Result<NpyArray> read_npy_f32(const std::string& path) {
  FilePtr f(std::fopen(path.c_str(), "rb"));
  if (!f) return make_error("%s: cannot open: %s", path.c_str(), std::strerror(errno));
  unsigned char pre[10];
  if (std::fread(pre, 1, 10, f.get()) != 10 || std::memcmp(pre, "\x93NUMPY", 6) != 0 || pre[6] != 1) {
    return make_error("%s: not a version 1 .npy file", path.c_str());
  }
  const uint16_t hlen = static_cast<uint16_t>(pre[8] | (pre[9] << 8));
  std::string header(hlen, '\0');
  if (std::fread(header.data(), 1, hlen, f.get()) != hlen) return make_error("%s: truncated header", path.c_str());
  if (header.find("'<f4'") == std::string::npos || header.find("'fortran_order': False") == std::string::npos) {
    return make_error("%s: only little-endian float32 C-order arrays are supported", path.c_str());
  }
  NpyArray a;
  const size_t open = header.find("'shape': (");
  if (open == std::string::npos) return make_error("%s: no shape in header", path.c_str());
  int64_t count = 1;
  for (size_t i = open + 10; i < header.size() && header[i] != ')';) {
    if (header[i] >= '0' && header[i] <= '9') {
      int64_t v = 0;
      while (i < header.size() && header[i] >= '0' && header[i] <= '9') {
        v = v * 10 + (header[i++] - '0');
        if (v > (int64_t{1} << 40)) return make_error("%s: absurd shape", path.c_str());
      }
      a.shape.push_back(v);
      count *= v;
      if (count > (int64_t{1} << 34)) return make_error("%s: absurd shape", path.c_str());
    } else {
      ++i;
    }
  }
  a.data.resize(static_cast<size_t>(count));
  if (std::fread(a.data.data(), 4, a.data.size(), f.get()) != a.data.size()) {
    return make_error("%s: truncated data", path.c_str());
  }
  return a;
}

}  // namespace bitnet
