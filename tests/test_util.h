// Small helpers shared by the tests: temporary folders, running the CLI, the largest logits.
#pragma once

#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

namespace bitnet::test {

// A fresh folder removed (with its contents) when the object goes away.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "bitnet-test-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) std::abort();
    dir_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
};

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs a shell command, capturing stdout and stderr (stderr through a temporary file).
inline CommandResult run_command(const std::string& cmd) {
  TempDir dir;
  const std::string err_path = dir.path("stderr");
  CommandResult r;
  FILE* p = popen((cmd + " 2>" + err_path).c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (FILE* e = fopen(err_path.c_str(), "r")) {
    while ((n = fread(buf.data(), 1, buf.size(), e)) > 0) r.err.append(buf.data(), n);
    fclose(e);
  }
  return r;
}

// The CLI as a shell command: in a cross build, through the emulator that runs the tests.
inline std::string bitnet_binary() {
  return std::string(BITNET_EMULATOR) + std::string(BITNET_BINARY_DIR) + "/bin/bitnet";
}

// Indices of the n largest of y[0..n_out), by value descending then index ascending (the
// sampler's order).
inline std::vector<int64_t> top_indices(const float* y, int64_t n_out, int n) {
  std::vector<int64_t> idx(static_cast<size_t>(n_out));
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + n, idx.end(),
                    [&](int64_t a, int64_t b) { return y[a] > y[b] || (y[a] == y[b] && a < b); });
  idx.resize(static_cast<size_t>(n));
  return idx;
}

}  // namespace bitnet::test
