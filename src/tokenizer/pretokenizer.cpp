#include "tokenizer/pretokenizer.h"

#include <cstdint>
#include <string>

#include "tokenizer/unicode_tables.h"
#include "tokenizer/utf8.h"

namespace bitnet::tokenizer {
namespace {

// The text as codepoints; pieces are described by their length in codepoints, as a sequence of
// passes refines them.
struct Scratch {
  std::vector<uint32_t> cps;
  std::vector<uint8_t> flags;
  std::vector<uint32_t> byte_offsets;  // size cps+1: where each codepoint starts in the text
  std::vector<uint32_t> pieces;
  std::vector<uint32_t> next_pieces;
};

// Flags as seen by the matchers: a codepoint inside the current piece always has kInPiece set
// (even an unassigned one, which has no category bit); a position past the piece has no bits.
// The reference distinguishes these the same way (its "undefined" flag vs. an empty one).
constexpr uint16_t kInPiece = 0x100;
constexpr uint32_t kOutside = 0xFFFFFFFF;

using cpflag::kLetter;
using cpflag::kMark;
using cpflag::kNumber;
using cpflag::kPunctuation;
using cpflag::kWhitespace;

// Walks the pieces of `in`, calling split(begin, end, emit) for each one; the splitter reports
// word ends (absolute codepoint positions, increasing) through emit.
template <class Splitter>
void refine(const std::vector<uint32_t>& in, std::vector<uint32_t>& out, Splitter&& split) {
  out.clear();
  out.reserve(in.size() * 2);
  size_t begin = 0;
  for (uint32_t len : in) {
    const size_t end = begin + len;
    size_t prev = begin;
    auto emit = [&](size_t word_end) {
      if (word_end > prev) out.push_back(static_cast<uint32_t>(word_end - prev));
      prev = word_end;
    };
    split(begin, end, emit);
    emit(end);  // whatever the splitter left (it normally consumes everything)
    begin = end;
  }
}

inline uint32_t ascii_lower(uint32_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

// Contractions 's 't 'm 'd 're 've 'll at pos; returns their length in codepoints or 0.
// The llama3 family matches them case-insensitively (only ASCII letters lower-case to these).
inline size_t match_contraction(const Scratch& s, size_t pos, size_t end, bool any_case) {
  if (s.cps[pos] != '\'' || pos + 1 >= end) return 0;
  auto norm = [&](uint32_t c) { return any_case ? ascii_lower(c) : c; };
  const uint32_t c1 = norm(s.cps[pos + 1]);
  if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return 2;
  if (pos + 2 >= end) return 0;
  const uint32_t c2 = norm(s.cps[pos + 2]);
  if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return 3;
  return 0;
}

// GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
void split_gpt2(const Scratch& s, const std::vector<uint32_t>& in, std::vector<uint32_t>& out) {
  refine(in, out, [&](size_t begin, size_t end, auto& emit) {
    auto cp_at = [&](size_t p) { return p < end ? s.cps[p] : kOutside; };
    auto fl = [&](size_t p) -> uint16_t { return p < end ? (s.flags[p] | kInPiece) : 0; };
    size_t pos = begin;
    while (pos < end) {
      const uint32_t c = s.cps[pos];
      if (size_t n = match_contraction(s, pos, end, false)) {
        pos += n;
        emit(pos);
        continue;
      }
      uint16_t f2 = c == ' ' ? fl(pos + 1) : fl(pos);
      if (f2 & kLetter) {
        pos += (c == ' ');
        while (f2 & kLetter) f2 = fl(++pos);
        emit(pos);
        continue;
      }
      if (f2 & kNumber) {
        pos += (c == ' ');
        while (f2 & kNumber) f2 = fl(++pos);
        emit(pos);
        continue;
      }
      if (!(f2 & (kWhitespace | kLetter | kNumber)) && f2) {
        pos += (c == ' ');
        while (!(f2 & (kWhitespace | kLetter | kNumber)) && f2) f2 = fl(++pos);
        emit(pos);
        continue;
      }
      size_t n_ws = 0;
      while (fl(pos + n_ws) & kWhitespace) ++n_ws;
      if (n_ws > 1 && cp_at(pos + n_ws) != kOutside) {  // \s+(?!\S): leave one for the next word
        pos += n_ws - 1;
        emit(pos);
        continue;
      }
      if (n_ws > 0) {
        pos += n_ws;
        emit(pos);
        continue;
      }
      emit(++pos);
    }
  });
}

// Llama 3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//          ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// Qwen2 is the same with \p{N} (one digit); Qwen3.5 also lets \p{M} join letters.
struct Llama3Variant {
  uint16_t letters;   // kLetter, or kLetter | kMark
  size_t max_digits;  // 3 or 1
};

void split_llama3(const Scratch& s, const std::vector<uint32_t>& in, std::vector<uint32_t>& out,
                  Llama3Variant v) {
  const uint16_t not_punct = kWhitespace | v.letters | kNumber;
  refine(in, out, [&](size_t begin, size_t end, auto& emit) {
    auto cp_at = [&](size_t p) { return p < end ? s.cps[p] : kOutside; };
    auto fl = [&](size_t p) -> uint16_t { return p < end ? (s.flags[p] | kInPiece) : 0; };
    size_t pos = begin;
    while (pos < end) {
      const uint32_t c = s.cps[pos];
      const uint16_t f = fl(pos);
      if (size_t n = match_contraction(s, pos, end, true)) {
        pos += n;
        emit(pos);
        continue;
      }
      // [^\r\n\p{L}\p{N}]?\p{L}+ : any one leading char except CR, LF and digits.
      if (!(c == '\r' || c == '\n' || (f & kNumber))) {
        if ((f & v.letters) || (fl(pos + 1) & v.letters)) {
          ++pos;
          while (fl(pos) & v.letters) ++pos;
          emit(pos);
          continue;
        }
      }
      if (f & kNumber) {
        size_t group_start = pos;
        while (fl(pos) & kNumber) {
          if (++pos - group_start >= v.max_digits) {
            emit(pos);
            group_start = pos;
          }
        }
        emit(pos);
        continue;
      }
      //  ?[^\s\p{L}\p{N}]+[\r\n]*
      uint16_t f2 = c == ' ' ? fl(pos + 1) : f;
      if (!(f2 & not_punct)) {
        pos += (c == ' ');
        while (!(f2 & not_punct) && f2) f2 = fl(++pos);
        while (cp_at(pos) == '\r' || cp_at(pos) == '\n') ++pos;
        emit(pos);
        continue;
      }
      size_t n_ws = 0;
      size_t last_newline_end = 0;
      while (fl(pos + n_ws) & kWhitespace) {
        const uint32_t w = cp_at(pos + n_ws);
        if (w == '\r' || w == '\n') last_newline_end = pos + n_ws + 1;
        ++n_ws;
      }
      if (last_newline_end > 0) {  // \s*[\r\n]+ : up to the last newline of the run
        pos = last_newline_end;
        emit(pos);
        continue;
      }
      if (n_ws > 1 && cp_at(pos + n_ws) != kOutside) {
        pos += n_ws - 1;
        emit(pos);
        continue;
      }
      if (n_ws > 0) {
        pos += n_ws;
        emit(pos);
        continue;
      }
      emit(++pos);
    }
  });
}

// The std::regex passes of the reference run on a collapsed text where a non-ASCII codepoint is
// one byte: whitespace first, else its category. So for codepoints >= 128 a class like \p{P}
// means "punctuation and not White_Space"; ASCII characters are matched literally.
inline bool non_ascii_is(uint8_t flags, uint8_t category) {
  return !(flags & kWhitespace) && (flags & category);
}

// [\p{P}\$\+<=>\^~\|]+ (default) and the same with a backtick (falcon). In the collapsed regex
// \p{P} expands to these ASCII characters: !"#%&'()*,-./:;?@[\]_{}
inline bool is_default_punct(uint32_t c, uint8_t flags, bool with_backtick) {
  if (c >= 128) return non_ascii_is(flags, kPunctuation);
  static constexpr std::string_view kAscii = "!\"#%&'()*,-./:;?@[\\]_{}$+<=>^~|";
  if (c == '`') return with_backtick;
  return c != 0 && kAscii.find(static_cast<char>(c)) != std::string_view::npos;
}

inline bool is_number_collapsed(uint32_t c, uint8_t flags) {
  if (c >= 128) return non_ascii_is(flags, kNumber);
  return c >= '0' && c <= '9';
}

// [class]+ : maximal runs of matching codepoints become pieces, and so do the gaps.
template <class Pred>
void split_runs(const Scratch& s, const std::vector<uint32_t>& in, std::vector<uint32_t>& out,
                Pred&& pred) {
  refine(in, out, [&](size_t begin, size_t end, auto& emit) {
    size_t pos = begin;
    while (pos < end) {
      const bool match = pred(s.cps[pos], s.flags[pos]);
      while (pos < end && pred(s.cps[pos], s.flags[pos]) == match) ++pos;
      emit(pos);
    }
  });
}

// [class] : each matching codepoint is a piece on its own.
template <class Pred>
void split_each(const Scratch& s, const std::vector<uint32_t>& in, std::vector<uint32_t>& out,
                Pred&& pred) {
  refine(in, out, [&](size_t begin, size_t end, auto& emit) {
    for (size_t pos = begin; pos < end; ++pos) {
      if (pred(s.cps[pos], s.flags[pos])) {
        emit(pos);
        emit(pos + 1);
      }
    }
  });
}

// [0-9][0-9][0-9] : leftmost non-overlapping triples of ASCII digits.
void split_digit_triples(const Scratch& s, const std::vector<uint32_t>& in,
                         std::vector<uint32_t>& out) {
  auto digit = [&](size_t p) { return s.cps[p] >= '0' && s.cps[p] <= '9'; };
  refine(in, out, [&](size_t begin, size_t end, auto& emit) {
    size_t pos = begin;
    while (pos + 3 <= end) {
      if (digit(pos) && digit(pos + 1) && digit(pos + 2)) {
        emit(pos);
        emit(pos + 3);
        pos += 3;
      } else {
        ++pos;
      }
    }
  });
}

void decode(std::string_view text, Scratch& s) {
  s.cps.clear();
  s.flags.clear();
  s.byte_offsets.clear();
  s.cps.reserve(text.size());
  s.flags.reserve(text.size());
  s.byte_offsets.reserve(text.size() + 1);
  size_t i = 0;
  while (i < text.size()) {
    const auto b = static_cast<uint8_t>(text[i]);
    DecodedChar c{b, 1};
    if (b >= 0x80) c = decode_utf8_lenient(text.data() + i, text.size() - i);
    s.cps.push_back(c.cp);
    s.flags.push_back(codepoint_flags(c.cp));
    s.byte_offsets.push_back(static_cast<uint32_t>(i));
    i += c.len;
  }
  s.byte_offsets.push_back(static_cast<uint32_t>(text.size()));
}

}  // namespace

std::optional<PreTokenizerPreset> pre_tokenizer_from_name(std::string_view name) {
  struct Entry {
    std::string_view name;
    PreTokenizerPreset preset;
  };
  using K = PreTokenizerKind;
  // Names as written by the GGUF converters, with the flags the reference attaches to each.
  static constexpr Entry kNames[] = {
      {"default", {K::kDefault, false, false, true}},
      {"llama3", {K::kLlama3, true, true, true}},
      {"llama-v3", {K::kLlama3, true, true, true}},
      {"llama-bpe", {K::kLlama3, true, true, true}},
      {"falcon3", {K::kLlama3, true, true, true}},
      // Falcon-E files (Falcon-E-1B/3B, written by bitnet.cpp's converter) name this one; only
      // bitnet.cpp's fork knows it, under a pre-tokenizer type of its own whose regex we could not
      // read. ik_llama.cpp splits it as llama-bpe, and so do we: unverified on a real file.
      {"falcon_e", {K::kLlama3, true, true, true}},
      {"falcon-h1", {K::kLlama3, true, true, true}},
      {"pixtral", {K::kLlama3, true, true, true}},
      {"midm-2.0", {K::kLlama3, true, true, true}},
      {"lfm2", {K::kLlama3, true, true, true}},
      {"jina-v5-nano", {K::kLlama3, true, true, true}},
      {"dbrx", {K::kLlama3, false, false, true}},
      {"smaug-bpe", {K::kLlama3, false, false, true}},
      {"gpt-2", {K::kGpt2, false, false, true}},
      {"phi-2", {K::kGpt2, false, false, true}},
      {"mpt", {K::kGpt2, false, false, true}},
      {"olmo", {K::kGpt2, false, false, true}},
      {"jais", {K::kGpt2, false, false, true}},
      {"exaone4", {K::kGpt2, false, false, true}},
      {"roberta-bpe", {K::kGpt2, false, false, true}},
      {"trillion", {K::kGpt2, false, false, false}},
      {"granite-docling", {K::kGpt2, false, false, false}},
      {"qwen2", {K::kQwen2, false, false, false}},
      {"deepseek-r1-qwen", {K::kQwen2, false, false, false}},
      {"hunyuan", {K::kQwen2, false, false, false}},
      {"grok-2", {K::kQwen2, false, false, false}},
      {"stablelm2", {K::kQwen2, false, false, true}},
      {"megrez", {K::kQwen2, false, false, true}},
      {"qwen35", {K::kQwen35, false, false, false}},
      {"starcoder", {K::kStarcoder, false, false, true}},
      {"refact", {K::kStarcoder, false, false, true}},
      {"codeshell", {K::kStarcoder, false, false, true}},
      {"exaone", {K::kStarcoder, false, false, true}},
      {"minerva-7b", {K::kStarcoder, false, false, true}},
      {"command-r", {K::kStarcoder, false, false, false}},
      {"smollm", {K::kStarcoder, false, false, false}},
      {"falcon", {K::kFalcon, false, false, true}},
  };
  for (const Entry& e : kNames) {
    if (e.name == name) return e.preset;
  }
  return std::nullopt;
}

std::string_view pre_tokenizer_name(PreTokenizerKind kind) {
  switch (kind) {
    case PreTokenizerKind::kDefault:
      return "default";
    case PreTokenizerKind::kLlama3:
      return "llama-bpe";
    case PreTokenizerKind::kGpt2:
      return "gpt-2";
    case PreTokenizerKind::kQwen2:
      return "qwen2";
    case PreTokenizerKind::kQwen35:
      return "qwen35";
    case PreTokenizerKind::kStarcoder:
      return "starcoder";
    case PreTokenizerKind::kFalcon:
      return "falcon";
  }
  return "?";
}

void pre_tokenize(PreTokenizerKind kind, std::string_view text,
                  std::vector<std::string_view>& words) {
  if (text.empty()) return;
  thread_local Scratch s;
  decode(text, s);
  s.pieces.assign(1, static_cast<uint32_t>(s.cps.size()));
  auto pass = [&](auto&& fn) {
    fn(s, s.pieces, s.next_pieces);
    s.pieces.swap(s.next_pieces);
  };
  switch (kind) {
    case PreTokenizerKind::kLlama3:
      pass([](auto& sc, auto& in, auto& out) { split_llama3(sc, in, out, {kLetter, 3}); });
      break;
    case PreTokenizerKind::kQwen2:
      pass([](auto& sc, auto& in, auto& out) { split_llama3(sc, in, out, {kLetter, 1}); });
      break;
    case PreTokenizerKind::kQwen35:
      pass([](auto& sc, auto& in, auto& out) {
        split_llama3(sc, in, out, {static_cast<uint16_t>(kLetter | kMark), 1});
      });
      break;
    case PreTokenizerKind::kGpt2:
      pass(split_gpt2);
      break;
    case PreTokenizerKind::kStarcoder:
      pass([](auto& sc, auto& in, auto& out) { split_each(sc, in, out, is_number_collapsed); });
      pass(split_gpt2);
      break;
    case PreTokenizerKind::kFalcon:
      pass([](auto& sc, auto& in, auto& out) {
        split_runs(sc, in, out, [](uint32_t c, uint8_t f) { return is_default_punct(c, f, true); });
      });
      pass(split_gpt2);
      pass(split_digit_triples);
      break;
    case PreTokenizerKind::kDefault:
      pass([](auto& sc, auto& in, auto& out) {
        split_runs(sc, in, out,
                   [](uint32_t c, uint8_t f) { return is_default_punct(c, f, false); });
      });
      pass(split_gpt2);
      pass([](auto& sc, auto& in, auto& out) { split_runs(sc, in, out, is_number_collapsed); });
      pass(split_digit_triples);
      break;
  }
  size_t cp = 0;
  for (uint32_t len : s.pieces) {
    const size_t b = s.byte_offsets[cp];
    const size_t e = s.byte_offsets[cp + len];
    words.emplace_back(text.data() + b, e - b);
    cp += len;
  }
}

}  // namespace bitnet::tokenizer
