#include "crossval/reference_runner.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "crossval/sha256.h"

extern char** environ;

namespace bitnet::crossval {

namespace fs = std::filesystem;

#ifndef BITNET_SOURCE_DIR
#define BITNET_SOURCE_DIR ""
#endif

std::string executable_dir() {
  std::error_code ec;
  const fs::path p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : p.parent_path().string();
}

namespace {

// Runs argv, stdout/stderr to files (empty: inherited). Returns the exit code (128+signal).
Result<int> spawn_wait(const std::vector<std::string>& args, const std::string& out_file,
                       const std::string& err_file) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (!out_file.empty()) {
    posix_spawn_file_actions_addopen(&fa, 1, out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  }
  if (!err_file.empty()) {
    posix_spawn_file_actions_addopen(&fa, 2, err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  }
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return make_error("cannot run %s: %s", args[0].c_str(), std::strerror(rc));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR)
      return make_error("waiting for %s: %s", args[0].c_str(), std::strerror(errno));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The last non-empty line of a file ("" if none).
std::string last_line(const std::string& path) {
  std::string text = read_text(path), last;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) last = line;
  }
  return last;
}

std::string canonical(const std::string& p) {
  std::error_code ec;
  const fs::path c = fs::canonical(p, ec);
  return ec ? p : c.string();
}

bool is_executable(const fs::path& p) {
  return ::access(p.c_str(), X_OK) == 0 && fs::is_regular_file(p);
}

// The tree a helper was built against (`helper --tree`), "" on failure.
std::string helper_tree(const fs::path& helper) {
  char tmpl[] = "/tmp/bitnet-helper-tree-XXXXXX";
  const int fd = mkstemp(tmpl);
  if (fd < 0) return "";
  close(fd);
  auto rc = spawn_wait({helper.string(), "--tree"}, tmpl, "/dev/null");
  std::string tree = rc.ok() && *rc == 0 ? read_text(tmpl) : "";
  fs::remove(tmpl);
  while (!tree.empty() && (tree.back() == '\n' || tree.back() == '\r')) tree.pop_back();
  return tree;
}

// ReferenceOptions::cache_dir, else a folder in the temporary directory.
std::string cache_root(const std::string& cache_dir) {
  if (!cache_dir.empty()) return cache_dir;
  return (fs::temp_directory_path() / "bitnet-cache").string();
}

Result<std::string> build_helper_for(const std::string& tree, const std::string& cache_dir) {
  const std::string src = BITNET_SOURCE_DIR;
  const fs::path project = fs::path(src) / "src/reference/standalone";
  if (src.empty() || !fs::exists(project / "CMakeLists.txt")) {
    return make_error(
        "no bitnet-reference helper for %s, and the source tree is not available "
        "to build one; build it with src/reference/standalone (see its "
        "CMakeLists.txt) and pass --reference-helper",
        tree.c_str());
  }
  const fs::path dir = fs::path(cache_root(cache_dir)) / "reference-helpers" /
                       sha256_hex(tree + "\n" + src).substr(0, 16);
  const fs::path helper = dir / "bin" / "bitnet-reference";
  if (is_executable(helper) && canonical(helper_tree(helper)) == tree) return helper.string();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return make_error("%s: %s", dir.c_str(), ec.message().c_str());
  const std::string log = (dir / "build.log").string();
  std::fprintf(stderr, "bitnet: building the reference helper against %s (once; log: %s)\n",
               tree.c_str(), log.c_str());
  std::vector<std::string> configure = {"/usr/bin/env",
                                        "cmake",
                                        "-S",
                                        project.string(),
                                        "-B",
                                        dir.string(),
                                        "-DCMAKE_BUILD_TYPE=Release",
                                        "-DBITNET_LLAMA_TREE=" + tree};
  if (::access("/usr/bin/ninja", X_OK) == 0)
    configure.insert(configure.begin() + 2, {"-G", "Ninja"});
  BITNET_ASSIGN_OR_RETURN(int rc, spawn_wait(configure, log, log + ".err"));
  if (rc == 0) {
    BITNET_ASSIGN_OR_RETURN(
        rc, spawn_wait({"/usr/bin/env", "cmake", "--build", dir.string()}, log, log + ".err"));
  }
  if (rc != 0 || !is_executable(helper)) {
    std::string why = last_line(log + ".err");
    if (why.empty()) why = last_line(log);
    return make_error(
        "building the reference helper against %s failed (%s); command: cmake -S "
        "%s -B %s -DBITNET_LLAMA_TREE=%s && cmake --build %s",
        tree.c_str(), why.c_str(), project.c_str(), dir.c_str(), tree.c_str(), dir.c_str());
  }
  return helper.string();
}

}  // namespace

Result<std::string> find_reference_helper(const ReferenceOptions& o) {
  if (!o.helper.empty()) {
    if (!is_executable(o.helper)) {
      return make_error("reference helper %s is not an executable", o.helper.c_str());
    }
    return o.helper;
  }
  const fs::path bin = executable_dir();
  if (o.reference_dir.empty()) {
    const fs::path h = bin / "bitnet-reference";
    if (!is_executable(h)) {
      return make_error(
          "%s not found: build the bitnet-reference target (needs the pinned "
          "llama.cpp from scripts/setup.sh) or pass --reference-helper",
          h.c_str());
    }
    return h.string();
  }
  std::error_code ec;
  if (!fs::is_directory(o.reference_dir, ec)) {
    return make_error("--reference-dir %s is not a directory", o.reference_dir.c_str());
  }
  const std::string tree = canonical(o.reference_dir);
  for (const auto& entry : fs::directory_iterator(bin, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("bitnet-reference", 0) != 0 || !is_executable(entry.path())) continue;
    if (canonical(helper_tree(entry.path())) == tree) return entry.path().string();
  }
  return build_helper_for(tree, o.cache_dir);
}

Result<nlohmann::json> run_reference_helper(const std::string& helper,
                                            const nlohmann::json& request,
                                            const std::string& work_dir) {
  std::error_code ec;
  fs::create_directories(work_dir, ec);
  if (ec) return make_error("%s: %s", work_dir.c_str(), ec.message().c_str());
  const std::string req = (fs::path(work_dir) / "request.json").string();
  {
    std::ofstream f(req);
    f << request.dump(2) << "\n";
    if (!f) return make_error("%s: cannot write", req.c_str());
  }
  const std::string err = (fs::path(work_dir) / "helper.stderr").string();
  BITNET_ASSIGN_OR_RETURN(int rc,
                          spawn_wait({helper, "--request", req, "--out", work_dir}, "", err));
  if (rc != 0) {
    std::string why = last_line(err);
    const std::string prefix = "bitnet-reference: error: ";
    if (why.rfind(prefix, 0) == 0) why = why.substr(prefix.size());
    return make_error("reference: %s", why.empty()
                                           ? ("helper exited with " + std::to_string(rc)).c_str()
                                           : why.c_str());
  }
  const std::string resp = (fs::path(work_dir) / "response.json").string();
  try {
    return nlohmann::json::parse(read_text(resp));
  } catch (const std::exception& e) {
    return make_error("%s: %s", resp.c_str(), e.what());
  }
}

}  // namespace bitnet::crossval
