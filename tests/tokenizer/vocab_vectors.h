// Reads llama.cpp's tokenizer test vectors: models/ggml-vocab-NAME.gguf.inp holds the inputs
// separated by "\n__ggml_vocab_test__\n", .out one line of space-separated ids per input
// (tokenised without BOS/EOS and without parsing special tokens).
#pragma once

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace bitnet::tokenizer::testing {

struct VocabVector {
  std::string input;
  std::vector<int32_t> expected;
};

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::vector<VocabVector> read_vocab_vectors(const std::string& gguf_path) {
  const std::string inp = read_file(gguf_path + ".inp");
  const std::string out = read_file(gguf_path + ".out");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> inputs;
  for (size_t pos = 0; pos < inp.size();) {
    const size_t next = inp.find(sep, pos);
    if (next == std::string::npos) {
      inputs.push_back(inp.substr(pos));
      break;
    }
    inputs.push_back(inp.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::vector<VocabVector> vectors;
  std::istringstream lines(out);
  std::string line;
  for (size_t i = 0; i < inputs.size() && std::getline(lines, line); ++i) {
    VocabVector v{inputs[i], {}};
    std::istringstream ids(line);
    for (int32_t id; ids >> id;) v.expected.push_back(id);
    vectors.push_back(std::move(v));
  }
  return vectors;
}

}  // namespace bitnet::tokenizer::testing
