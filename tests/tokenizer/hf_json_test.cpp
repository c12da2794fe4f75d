// tokenizer.json loading: a tokenizer.json written from a GGUF vocabulary must tokenise exactly
// like the GGUF itself; broken or unsupported files give errors, not crashes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "gguf/reader.h"
#include "tokenizer/random_text.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab_vectors.h"

namespace bitnet::tokenizer {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const char* kLlama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

std::string vocab_path(const std::string& name) {
  return std::string(BITNET_REFERENCE_DIR) + "/models/ggml-vocab-" + name + ".gguf";
}

fs::path temp_dir(const std::string& name) {
  const fs::path dir =
      fs::temp_directory_path() / ("bitnet-tok-json-" + name + "-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir;
}

void write(const fs::path& p, const json& j) { std::ofstream(p) << j.dump(); }

// The Hugging Face form of a loaded vocabulary.
// `tok` was loaded from the GGUF `gguf_path`, whose merges (which the tokenizer does not keep in
// text form) are read again.
json to_tokenizer_json(const Tokenizer& tok, const std::string& gguf_path, bool byte_level) {
  const VocabSpec& spec = tok.spec();
  json vocab = json::object();
  json added = json::array();
  for (size_t i = 0; i < spec.tokens.size(); ++i) {
    const TokenData& t = spec.tokens[i];
    if (t.attr & (tokattr::kControl | tokattr::kUserDefined)) {
      added.push_back(
          {{"id", i}, {"content", t.text}, {"special", (t.attr & tokattr::kControl) != 0}});
    }
    vocab[t.text] = i;
  }
  json merges = json::array();
  auto file = gguf::File::open(gguf_path);
  EXPECT_TRUE(file.ok()) << file.message();
  if (const gguf::Value* m = file->find("tokenizer.ggml.merges"); m != nullptr && m->as_array()) {
    for (const gguf::Value& v : m->as_array()->items) merges.push_back(*v.as_string());
  }
  if (!byte_level) {
    // SentencePiece scores become merge ranks: one merge per multi-character piece, best first.
    std::vector<size_t> order;
    for (size_t i = 0; i < spec.tokens.size(); ++i) {
      if (spec.tokens[i].attr == tokattr::kNormal) order.push_back(i);
    }
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return spec.tokens[a].score > spec.tokens[b].score;
    });
    for (size_t i : order) {
      const std::string& t = spec.tokens[i].text;
      size_t first = 1;
      while (first < t.size() && (static_cast<unsigned char>(t[first]) & 0xC0) == 0x80) ++first;
      if (first < t.size()) merges.push_back(t.substr(0, first) + " " + t.substr(first));
    }
  }
  json root = {{"version", "1.0"},
               {"added_tokens", added},
               {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}}};
  if (byte_level) {
    root["pre_tokenizer"] = {
        {"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"}, {"pattern", {{"Regex", kLlama3Regex}}}, {"behavior", "Isolated"}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
    root["post_processor"] = {{"type", "TemplateProcessing"},
                              {"single",
                               {{{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}},
                                {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}}};
  } else {
    root["model"]["byte_fallback"] = true;
    root["model"]["unk_token"] = "<unk>";
    root["normalizer"] = {
        {"type", "Sequence"},
        {"normalizers",
         {{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
          {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}}}};
  }
  return root;
}

TEST(HfJson, ByteLevelMatchesGguf) {
  auto gguf = Tokenizer::load(vocab_path("llama-bpe"));
  ASSERT_TRUE(gguf.ok()) << gguf.message();
  const fs::path dir = temp_dir("bpe");
  write(dir / "tokenizer.json", to_tokenizer_json(*gguf, vocab_path("llama-bpe"), true));
  auto hf = Tokenizer::load((dir / "tokenizer.json").string());
  ASSERT_TRUE(hf.ok()) << hf.message();
  EXPECT_EQ(hf->info().pre_tokenizer, "llama-bpe");
  EXPECT_EQ(hf->bos(), gguf->bos());
  EXPECT_TRUE(hf->add_bos());
  testing::RandomText gen(7);
  for (int i = 0; i < 1000; ++i) {
    const std::string text = gen.next();
    const EncodeOptions o{.add_special = i % 2 == 0, .parse_special = i % 3 == 0};
    ASSERT_EQ(hf->encode(text, o), gguf->encode(text, o)) << text;
  }
  // Forcing the pre-tokenizer, as when running the official 2B4T with its tokenizer.json.
  auto forced = Tokenizer::load((dir / "tokenizer.json").string(), {.pre_tokenizer = "default"});
  ASSERT_TRUE(forced.ok()) << forced.message();
  EXPECT_EQ(forced->info().pre_tokenizer, "default");
  EXPECT_EQ(forced->encode("abc12345", {.add_special = false}).size(), 3u);
  fs::remove_all(dir);
}

TEST(HfJson, SentencePieceVectors) {
  auto gguf = Tokenizer::load(vocab_path("llama-spm"));
  ASSERT_TRUE(gguf.ok()) << gguf.message();
  const fs::path dir = temp_dir("spm");
  write(dir / "tokenizer.json", to_tokenizer_json(*gguf, vocab_path("llama-spm"), false));
  auto hf = Tokenizer::load((dir / "tokenizer.json").string());
  ASSERT_TRUE(hf.ok()) << hf.message();
  EXPECT_EQ(hf->spec().model, TokenizerModel::kSentencePiece);
  EXPECT_TRUE(hf->add_bos());
  size_t passed = 0;
  const auto vectors = testing::read_vocab_vectors(vocab_path("llama-spm"));
  for (const auto& v : vectors) {
    const auto got = hf->encode(v.input, {.add_special = false});
    passed += got == v.expected;
    if (got != v.expected && std::getenv("BITNET_TOK_DEBUG")) {
      std::string g, w;
      for (auto id : got) g += std::to_string(id) + " ";
      for (auto id : v.expected) w += std::to_string(id) + " ";
      std::printf("'%s'\n got  %s\n want %s\n", v.input.c_str(), g.c_str(), w.c_str());
    }
  }
  // Scores are not in tokenizer.json; the merge ranks carry them.
  EXPECT_EQ(passed, vectors.size());
  fs::remove_all(dir);
}

TEST(HfJson, ErrorsAreReported) {
  const fs::path dir = temp_dir("bad");
  std::ofstream(dir / "garbage.json") << "{ not json";
  EXPECT_FALSE(Tokenizer::load((dir / "garbage.json").string()).ok());
  write(dir / "nomodel.json", json{{"version", "1.0"}});
  EXPECT_FALSE(Tokenizer::load((dir / "nomodel.json").string()).ok());
  write(dir / "wordpiece.json",
        json{{"model", {{"type", "WordPiece"}, {"vocab", json::object()}}}});
  auto wp = Tokenizer::load((dir / "wordpiece.json").string());
  ASSERT_FALSE(wp.ok());
  EXPECT_NE(wp.message().find("WordPiece"), std::string::npos);
  json odd = {{"model", {{"type", "BPE"}, {"vocab", {{"a", 0}}}, {"merges", json::array()}}},
              {"pre_tokenizer",
               {{"type", "Sequence"},
                {"pretokenizers",
                 {{{"type", "Split"}, {"pattern", {{"Regex", "\\w+"}}}},
                  {{"type", "ByteLevel"}, {"use_regex", false}}}}}}};
  write(dir / "odd.json", odd);
  auto r = Tokenizer::load((dir / "odd.json").string());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("unsupported pre-tokenizer regex"), std::string::npos);
  EXPECT_FALSE(Tokenizer::load((dir / "missing.json").string()).ok());
  EXPECT_FALSE(Tokenizer::load((dir / "missing.gguf").string()).ok());
  // An id far past the entries (from fuzz/: it made the loader allocate ~444M placeholders).
  json sparse = {{"model", {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}}}, {"merges", {"a b"}}}},
                 {"pre_tokenizer", {{"type", "ByteLevel"}}},
                 {"added_tokens", {{{"id", 444444446}, {"content", "<s>"}, {"special", true}}}}};
  write(dir / "sparse.json", sparse);
  auto sp = Tokenizer::load((dir / "sparse.json").string());
  ASSERT_FALSE(sp.ok());
  EXPECT_NE(sp.message().find("too many gaps"), std::string::npos) << sp.message();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace bitnet::tokenizer
