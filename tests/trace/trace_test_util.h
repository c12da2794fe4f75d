// Helpers shared by the trace tests: b3sum on bytes, and a trace folder's records by name.
#pragma once

#include <cstdio>
#include <map>
#include <string>

#include "test_util.h"
#include "trace/reader.h"

namespace bitnet::test {

// BLAKE3 of `size` bytes as Debian's b3sum prints it (the bytes go through a file).
inline std::string b3sum_of(const void* data, size_t size) {
  TempDir dir;
  const std::string path = dir.path("bytes.bin");
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return "cannot write " + path;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  auto r = run_command("b3sum --no-names " + path);
  if (r.exit_code != 0) return "b3sum failed: " + r.err;
  while (!r.out.empty() && (r.out.back() == '\n' || r.out.back() == ' ')) r.out.pop_back();
  return r.out;
}

inline std::map<std::string, trace::Record> by_name(const trace::Trace& t) {
  std::map<std::string, trace::Record> m;
  for (const auto& r : t.records) m[r.name()] = r;
  return m;
}

}  // namespace bitnet::test
