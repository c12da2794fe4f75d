// Tokenizer throughput: MB/s encoding a large text with our tokenizer and with the pinned
// llama.cpp (libllama, vocabulary-only), same vocabulary and pre-tokenizer, and the ratio.
//
//   bench_tokenizer [--text FILE] [--vocab GGUF] [--repeat N]
//
// Default text: every Markdown file of the pinned llama.cpp tree (~1 MB of English, code and
// tables) followed by 1 MB of generated multilingual text (tests/tokenizer/random_text.h).
// Both engines are checked to produce identical ids before timing. Exit code 1 if they differ.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tokenizer/random_text.h"
#include "tokenizer/reference_llama.h"
#include "tokenizer/tokenizer.h"

namespace fs = std::filesystem;
using bitnet::tokenizer::Tokenizer;

namespace {

std::string default_text() {
  std::vector<fs::path> files;
  const fs::path root = fs::path(BITNET_SOURCE_DIR) / ".deps" / "llama.cpp";
  if (fs::exists(root)) {
    for (const auto& e : fs::recursive_directory_iterator(root)) {
      if (e.is_regular_file() && e.path().extension() == ".md") files.push_back(e.path());
    }
  }
  std::sort(files.begin(), files.end());
  std::string text;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    text += ss.str();
  }
  bitnet::tokenizer::testing::RandomText gen(42, /*with_invalid_utf8=*/false);
  const size_t target = text.size() + (1u << 20);
  while (text.size() < target) text += gen.next() + " ";
  return text;
}

template <class F>
double best_seconds(int repeat, F&& f) {
  double best = 1e30;
  for (int i = 0; i < repeat; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    const auto t1 = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  std::string text_path;
  std::string vocab = std::string(BITNET_REFERENCE_DIR) + "/models/ggml-vocab-llama-bpe.gguf";
  int repeat = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--text" && i + 1 < argc) {
      text_path = argv[++i];
    } else if (a == "--vocab" && i + 1 < argc) {
      vocab = argv[++i];
    } else if (a == "--repeat" && i + 1 < argc) {
      repeat = std::max(1, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: %s [--text FILE] [--vocab GGUF] [--repeat N]\n", argv[0]);
      return 2;
    }
  }
  std::string text;
  if (text_path.empty()) {
    text = default_text();
  } else {
    std::ifstream in(text_path, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "bench_tokenizer: cannot open %s\n", text_path.c_str());
      return 1;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  const double mb = static_cast<double>(text.size()) / 1e6;
  std::printf("text: %.2f MB (%s)\n", mb, text_path.empty() ? "default" : text_path.c_str());
  std::printf("%-34s %12s %12s %12s %8s\n", "vocabulary / pre-tokenizer", "ours MB/s", "llama.cpp",
              "tokens", "ratio");
  bool all_equal = true;
  // The file's own pre-tokenizer, then "default" (what the official 2B4T GGUF gets).
  for (const char* pre : {"", "default"}) {
    bitnet::tokenizer::LoadOptions opts;
    if (*pre) opts.pre_tokenizer = pre;
    auto tok = Tokenizer::load(vocab, opts);
    if (!tok.ok()) {
      std::fprintf(stderr, "bench_tokenizer: %s\n", tok.message().c_str());
      return 1;
    }
    bitnet::tokenizer::testing::ReferenceVocab ref(vocab, pre);
    std::vector<int32_t> ours, theirs;
    const double t_ours = best_seconds(
        repeat, [&] { ours = tok->encode(text, {.add_special = false, .parse_special = false}); });
    const double t_ref = best_seconds(repeat, [&] { theirs = ref.tokenize(text, false, false); });
    const bool equal = ours == theirs;
    all_equal = all_equal && equal;
    const std::string label = fs::path(vocab).stem().string() + " / " + tok->info().pre_tokenizer;
    std::printf("%-34s %12.2f %12.2f %12zu %7.2fx%s\n", label.c_str(), mb / t_ours, mb / t_ref,
                ours.size(), t_ref / t_ours, equal ? "" : "  IDS DIFFER");
  }
  std::printf("ratio = our throughput / llama.cpp throughput (higher is better; >= 1 required)\n");
  return all_equal ? 0 : 1;
}
