// Differential test against the pinned libllama: thousands of generated strings (see
// random_text.h) must give identical token ids, and identical text when detokenised. The main
// target is the Llama 3 vocabulary with both pre-tokenizers the 2B4T model can meet: llama-bpe
// (tokenizer.json / a complete GGUF) and default (the official GGUF, which lacks
// tokenizer.ggml.pre - tested on a copy of the vocabulary with that key removed).
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <span>
#include <string>

#include "gguf/reader.h"
#include "gguf/writer.h"
#include "tokenizer/random_text.h"
#include "tokenizer/reference_llama.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace bitnet::tokenizer {
namespace {

std::string vocab_path(const std::string& name) {
  return std::string(BITNET_REFERENCE_DIR) + "/models/ggml-vocab-" + name + ".gguf";
}

std::string escape(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7F && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02X", c);
      out += buf;
    }
  }
  return out;
}

std::string ids_string(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += std::to_string(id) + " ";
  return s;
}

// A copy of a vocabulary GGUF with its pre-tokenizer name replaced (`pre` empty: the key removed,
// as in the official 2B4T GGUF).
std::string copy_with_pre(const std::string& path, const std::string& pre) {
  const std::string key = "tokenizer.ggml.pre";
  auto file = gguf::File::open(path);
  if (!file.ok()) throw std::runtime_error(file.message());
  gguf::Writer w;
  for (const auto& kv : file->metadata()) {
    if (kv.key != key) w.set(kv.key, kv.value);
  }
  if (!pre.empty()) w.set(key, gguf::Value(pre));
  const std::string out =
      (std::filesystem::temp_directory_path() /
       ("bitnet-tok-" + std::to_string(::getpid()) + "-" + (pre.empty() ? "nopre" : pre) + "-" +
        std::filesystem::path(path).filename().string()))
          .string();
  auto st = w.begin(out);
  if (st.ok()) st = w.finish();
  if (!st.ok()) throw std::runtime_error(st.message());
  return out;
}

struct Totals {
  size_t strings = 0;
  size_t id_mismatches = 0;
  size_t text_mismatches = 0;
  size_t round_trip_failures = 0;
};

// Tokenises `count` generated strings with both engines; options vary with the index.
// `check_round_trip`: the vocabulary has a token for every byte (not all do: falcon lacks some
// control characters, which then vanish in both engines).
Totals run_differential(const std::string& label, const std::string& ours_path,
                        const std::string& ref_path, size_t count, uint64_t seed,
                        bool check_round_trip = true) {
  auto tok = Tokenizer::load(ours_path);
  if (!tok.ok()) {
    ADD_FAILURE() << tok.message();
    return {};
  }
  testing::ReferenceVocab ref(ref_path);
  testing::RandomText gen(seed);
  const bool bpe = tok->spec().model == TokenizerModel::kBytePairBpe;
  Totals t;
  int reported = 0;
  for (size_t i = 0; i < count; ++i) {
    const std::string text = gen.next();
    const bool add_special = i % 2 == 0;
    const bool parse_special = (i / 2) % 2 == 0;
    const auto want = ref.tokenize(text, add_special, parse_special);
    const auto got =
        tok->encode(text, {.add_special = add_special, .parse_special = parse_special});
    ++t.strings;
    if (got != want) {
      ++t.id_mismatches;
      if (reported++ < 10) {
        ADD_FAILURE() << label << " #" << i << " add_special=" << add_special
                      << " parse_special=" << parse_special << "\n  input: '" << escape(text)
                      << "'\n  got:  " << ids_string(got) << "\n  want: " << ids_string(want);
      }
      continue;
    }
    // Detokenisation as the reference does it (its clean-up included), both rendering modes.
    const bool render = i % 3 != 0;
    const std::string ref_text = ref.detokenize(want, !render, render);
    const std::string our_text = tok->decode(got, {.remove_special = !render,
                                                   .render_special = render,
                                                   .clean_spaces = tok->spec().clean_spaces});
    if (ref_text != our_text) {
      ++t.text_mismatches;
      if (reported++ < 10) {
        ADD_FAILURE() << label << " #" << i << " detokenize differs\n  input: '" << escape(text)
                      << "'\n  got:  '" << escape(our_text) << "'\n  want: '" << escape(ref_text)
                      << "'";
      }
    }
    // Our own default decode round-trips. Byte-level BPE: to the re-encoded form of malformed
    // UTF-8. SentencePiece: exactly, for valid UTF-8 without special tokens (a malformed lead
    // byte swallows the following U+2581 into byte tokens, in the reference too).
    if (bpe || (!parse_special && is_canonical_utf8(text))) {
      // Drop the added BOS by hand: the reference's remove_special also keeps SentencePiece's
      // prefix space when it removes a BOS, which is right for parity but not a round trip.
      std::span<const int32_t> body(got);
      if (add_special && tok->spec().add_bos && !body.empty() && body[0] == tok->bos()) {
        body = body.subspan(1);
      }
      const std::string back = tok->decode(body);
      const std::string expect = bpe ? canonicalize_utf8(text) : text;
      if (check_round_trip && back != expect) {
        ++t.round_trip_failures;
        if (reported++ < 10) {
          ADD_FAILURE() << label << " #" << i << " round trip\n  input: '" << escape(text)
                        << "'\n  back:  '" << escape(back) << "'";
        }
      }
    }
  }
  std::printf(
      "[differential] %-28s %zu strings: %zu id mismatches, %zu detokenize mismatches, "
      "%zu round-trip failures (%s)\n",
      label.c_str(), t.strings, t.id_mismatches, t.text_mismatches, t.round_trip_failures,
      tok->info().pre_tokenizer.empty() ? "sentencepiece" : tok->info().pre_tokenizer.c_str());
  EXPECT_EQ(t.id_mismatches, 0u);
  EXPECT_EQ(t.text_mismatches, 0u);
  EXPECT_EQ(t.round_trip_failures, 0u);
  return t;
}

TEST(Differential, LlamaBpeWithLlama3PreTokenizer) {
  const std::string path = vocab_path("llama-bpe");
  run_differential("llama-bpe/llama-bpe", path, path, 10000, 1);
}

TEST(Differential, LlamaBpeWithDefaultPreTokenizer) {
  // The official 2B4T GGUF situation: no tokenizer.ggml.pre at all.
  const std::string stripped = copy_with_pre(vocab_path("llama-bpe"), "");
  auto tok = Tokenizer::load(stripped);
  ASSERT_TRUE(tok.ok()) << tok.message();
  EXPECT_EQ(tok->info().pre_tokenizer, "default");
  run_differential("llama-bpe/default (no key)", stripped, stripped, 10000, 2);
  std::filesystem::remove(stripped);
}

// A pre-tokenizer name the pinned llama.cpp has no vocabulary for, on the Llama 3 vocabulary
// (whose regexes the named one shares): ours reads the copy named `pre`, the reference the copy
// named `ref_pre` (the same name, or the one llama.cpp knows for it).
void check_pre_name(const std::string& pre, const std::string& ref_pre, uint64_t seed) {
  const std::string ours = copy_with_pre(vocab_path("llama-bpe"), pre);
  const std::string ref = ref_pre == pre ? ours : copy_with_pre(vocab_path("llama-bpe"), ref_pre);
  auto tok = Tokenizer::load(ours);
  ASSERT_TRUE(tok.ok()) << tok.message();
  EXPECT_EQ(tok->info().pre_tokenizer, "llama-bpe");
  EXPECT_EQ(tok->info().pre_tokenizer_origin, "tokenizer.ggml.pre = " + pre);
  run_differential("llama-bpe/" + pre, ours, ref, 10000, seed);
  std::filesystem::remove(ours);
  if (ref != ours) std::filesystem::remove(ref);
}

// Falcon3's name (Falcon3-*-1.58bit files carry it).
TEST(Differential, Falcon3PreTokenizer) { check_pre_name("falcon3", "falcon3", 4); }

// Falcon-E's name, which the pinned llama.cpp does not know: the reference reads the same
// vocabulary named falcon3. This pins our choice (llama-bpe's split, as ik_llama.cpp makes it);
// bitnet.cpp's fork gives falcon_e a type of its own, so on a real file it is unverified.
TEST(Differential, FalconEPreTokenizer) { check_pre_name("falcon_e", "falcon3", 5); }

TEST(Differential, OtherVocabularies) {
  for (const char* name : {"llama-spm", "gpt-2", "qwen2", "phi-3", "falcon", "starcoder"}) {
    const std::string path = vocab_path(name);
    run_differential(name, path, path, 2000, 3, std::string(name) != "falcon");
  }
}

// Every token's piece, as llama_token_to_piece gives it (special tokens rendered and not).
TEST(Differential, EveryTokenPiece) {
  for (const char* name : {"llama-bpe", "llama-spm", "gpt-2", "qwen2"}) {
    const std::string path = vocab_path(name);
    auto tok = Tokenizer::load(path);
    ASSERT_TRUE(tok.ok()) << tok.message();
    testing::ReferenceVocab ref(path);
    ASSERT_EQ(static_cast<size_t>(ref.n_tokens()), tok->n_tokens());
    size_t mismatches = 0;
    for (int32_t id = 0; id < ref.n_tokens(); ++id) {
      for (bool special : {true, false}) {
        if (ref.piece(id, special) != tok->token_to_piece(id, special)) {
          if (mismatches++ < 5) {
            ADD_FAILURE() << name << " token " << id << " special=" << special << ": '"
                          << escape(std::string(tok->token_to_piece(id, special))) << "' vs '"
                          << escape(ref.piece(id, special)) << "'";
          }
        }
      }
    }
    EXPECT_EQ(mismatches, 0u) << name;
  }
}

// Inputs on which the reference itself throws (a 4-byte form above U+10FFFF): we must not
// crash and must keep the bytes visible as U+FFFD.
TEST(Differential, CodepointsAboveUnicodeRange) {
  auto tok = Tokenizer::load(vocab_path("llama-bpe"));
  ASSERT_TRUE(tok.ok()) << tok.message();
  for (const char* text : {"\xF4\x90\x80\x80", "a\xF7\xBF\xBF\xBFz", "\xF5\x80\x80\x80 hi"}) {
    const auto ids = tok->encode(text, {.add_special = false});
    EXPECT_FALSE(ids.empty());
    EXPECT_EQ(tok->decode(ids), canonicalize_utf8(text));
  }
}

}  // namespace
}  // namespace bitnet::tokenizer
