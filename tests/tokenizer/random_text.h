// Deterministic generator of nasty tokenizer inputs: mixed scripts, emoji (ZWJ sequences, skin
// tones, flags), digit runs in several number systems, whitespace runs (ASCII and Unicode),
// newlines, apostrophes and contractions, control and format characters, special-token texts
// (whole and broken), combining marks, unassigned and private-use codepoints, and malformed
// UTF-8 (stray continuation bytes, truncated and overlong sequences, surrogates).
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace bitnet::tokenizer::testing {

class RandomText {
 public:
  explicit RandomText(uint64_t seed, bool with_invalid_utf8 = true)
      : rng_(seed), invalid_(with_invalid_utf8) {}

  std::string next() {
    std::string s;
    const int segments = 1 + pick(12);
    for (int i = 0; i < segments; ++i) append_segment(s);
    return s;
  }

 private:
  int pick(int n) { return static_cast<int>(rng_() % static_cast<uint64_t>(n)); }
  template <class T, size_t N>
  const T& choose(const T (&items)[N]) {
    return items[pick(static_cast<int>(N))];
  }

  void append_word(std::string& s, const char* alphabet) {
    const int n = 1 + pick(pick(8) == 0 ? 80 : 9);  // sometimes very long (heap merge path)
    const std::string a = alphabet;
    for (int i = 0; i < n; ++i) s += a[pick(static_cast<int>(a.size()))];
  }

  void append_segment(std::string& s) {
    static const char* kScripts[] = {"Привет мир",
                                     "Ελληνικά",
                                     "مرحبا بالعالم",
                                     "שלום",
                                     "नमस्ते दुनिया",
                                     "สวัสดีครับ",
                                     "你好世界",
                                     "こんにちは世界",
                                     "カタカナ",
                                     "안녕하세요",
                                     "ça va, naïve café",
                                     "Ñandú",
                                     "e\xCC\x81t\xC3\xA9",
                                     "ﬁnancial",
                                     "Ⅻ ⅳ",
                                     "ǅemal",
                                     "Straße",
                                     "İstanbul",
                                     "ΣΊΣΥΦΟΣ",
                                     "\xE1\x83\x90\xE1\x83\x91",
                                     "ꙮ",
                                     "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
                                     "𐐷",
                                     "ᚠᛇᚻ",
                                     "ꦲꦏ",
                                     "\xF0\x91\xBD\x80"};
    static const char* kEmoji[] = {
        "😀", "👍🏽", "👨‍👩‍👧", "🇺🇸", "❤️", "🤖🦙", "⭐", "🫠", "©️"};
    static const char* kDigits[] = {"0",     "7",       "42",        "123", "1234",
                                    "98765", "3.14159", "1,000,000", "٣٤٥", "１２３",
                                    "²³",    "५६",      "〇",        "①②",  "0x1F"};
    static const char* kSpaces[] = {
        " ",        "  ",           "   ",   "\t",      "\n",       "\n\n",         "\r\n",
        "\r",       "\v",           "\f",    " \n ",    "\xC2\xA0", "\xE2\x80\x83", "\xE3\x80\x80",
        "\xC2\x85", "\xE2\x80\xA8", " \t\n", "        "};
    static const char* kPunct[] = {"'s",   "'S",    "'t",       "'re",  "'VE", "'ll",       "'LL",
                                   "'d",   "'m",    "'x",       "'",    "''",  "!",         "?!",
                                   "...",  "--",    "“quoted”", "«»",   "—",   "…",         "¿¡",
                                   "、。", "，",    "()",       "[]{}", "<>",  "$+<=>^`|~", "€£¥",
                                   "∑√∞",  "@#%&*", "\\",       "_",    "\"",  ":;",        "/"};
    static const char* kControl[] = {"\x02",         "\x01",         "\x1B[0m",  "\x7F",
                                     "\xE2\x80\x8B", "\xEF\xBB\xBF", "\xC2\xAD", "\xE2\x80\x8D",
                                     "\xEE\x80\x80", "\xEF\xBF\xBF", "\xCD\xB8", "\xF4\x8F\xBF\xBF",
                                     "\xEF\xBF\xBD"};
    static const char* kSpecial[] = {"<|begin_of_text|>",
                                     "<|end_of_text|>",
                                     "<|eot_id|>",
                                     "<|start_header_id|>",
                                     "<|end_header_id|>",
                                     "<|reserved_special_token_5|>",
                                     "<|eot_id",
                                     "<|",
                                     "|>",
                                     "<s>",
                                     "</s>",
                                     "<unk>",
                                     "<|endoftext|>",
                                     "<|im_start|>",
                                     "<|eot_id|><|eot_id|>",
                                     " <|eot_id|> "};
    static const char* kInvalid[] = {"\x80",
                                     "\xBF",
                                     "\xC3",
                                     "\xE2\x82",
                                     "\xF0\x9F\x98",
                                     "\xC0\xAF",
                                     "\xC1\x81",
                                     "\xE0\x80\xAF",
                                     "\xED\xA0\x80",
                                     "\xED\xBF\xBF",
                                     "\xFE",
                                     "\xFF",
                                     "\xF8\x88\x80\x80\x80",
                                     "\xC3\x28",
                                     "\xE2\x28\xA1"};
    switch (pick(invalid_ ? 11 : 10)) {
      case 0:
        append_word(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ");
        break;
      case 1:
        s += choose(kScripts);
        break;
      case 2:
        s += choose(kEmoji);
        break;
      case 3:
        if (pick(3) == 0) {
          append_word(s, "0123456789");
        } else {
          s += choose(kDigits);
        }
        break;
      case 4:
        s += choose(kSpaces);
        break;
      case 5:
        s += choose(kPunct);
        break;
      case 6:
        if (pick(4) == 0) {
          s.push_back('\0');
        } else {
          s += choose(kControl);
        }
        break;
      case 7:
        s += choose(kSpecial);
        break;
      case 8:
        s += " ";
        append_word(s, "aeiouAEIOU'-");
        break;
      case 9:
        append_word(s, " \t\n\r.,;:!?'\"-_()");
        break;
      case 10:
        s += choose(kInvalid);
        break;
    }
  }

  std::mt19937_64 rng_;
  bool invalid_;
};

}  // namespace bitnet::tokenizer::testing
