// Raw GGUF byte builder for tests: writes exactly what it is told, including invalid headers,
// so each malformed-file test states its defect in a line or two.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace bitnet::test {

struct GgufBytes {
  std::vector<uint8_t> b;

  template <class T>
  GgufBytes& put(T v) {
    const size_t at = b.size();
    b.resize(at + sizeof(T));
    std::memcpy(b.data() + at, &v, sizeof(T));
    return *this;
  }
  GgufBytes& u32(uint32_t v) { return put(v); }
  GgufBytes& u64(uint64_t v) { return put(v); }
  GgufBytes& str(const std::string& s) {
    u64(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  GgufBytes& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    return u32(0x46554747).u32(version).u64(n_tensors).u64(n_kv);
  }
  // key + u32 value
  GgufBytes& kv_u32(const std::string& key, uint32_t v) { return str(key).u32(4).u32(v); }
  GgufBytes& kv_str(const std::string& key, const std::string& v) { return str(key).u32(8).str(v); }
  // key + array of strings
  GgufBytes& kv_strs(const std::string& key, const std::vector<std::string>& v) {
    str(key).u32(9).u32(8).u64(v.size());
    for (const auto& s : v) str(s);
    return *this;
  }
  // tensor info: name, dims, type, offset
  GgufBytes& tensor(const std::string& name, std::vector<uint64_t> dims, uint32_t type,
                    uint64_t offset) {
    str(name).u32(static_cast<uint32_t>(dims.size()));
    for (uint64_t d : dims) u64(d);
    return u32(type).u64(offset);
  }
  GgufBytes& align(size_t a = 32) {
    b.resize((b.size() + a - 1) / a * a, 0);
    return *this;
  }
  GgufBytes& zeros(size_t n) {
    b.resize(b.size() + n, 0);
    return *this;
  }
};

// A small valid file: three metadata keys (a string, a u32, a string array) and two tensors
// (TQ2_0, I2_S) with their data. The start of the reader's mutation test and of the fuzzer's seeds.
inline GgufBytes small_valid_file() {
  GgufBytes g = GgufBytes().header(2, 3);
  g.kv_str("general.architecture", "bitnet")
      .kv_u32("general.alignment", 32)
      .kv_strs("arr", {"x", "yy"})
      .tensor("a", {256}, 35, 0)
      .tensor("b", {128, 2}, 36, 96)
      .align()
      .zeros(96 + 96);
  return g;
}

}  // namespace bitnet::test
