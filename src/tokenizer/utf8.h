// UTF-8 decoding with the reference engine's leniency, and encoding.
//
// llama.cpp does not reject malformed UTF-8: it decodes by the lead byte alone (so overlong forms
// and surrogates pass), and replaces a byte that starts no valid sequence with U+FFFD. Byte-level
// BPE then re-encodes the codepoints, so "\xC0\xAF" is tokenised as "/" and a stray "\x80" as
// "\xEF\xBF\xBD". We reproduce that exactly; the one case where llama.cpp throws (a 4-byte form
// above U+10FFFF) is treated here as an invalid byte instead.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace bitnet::tokenizer {

constexpr uint32_t kReplacementChar = 0xFFFD;

struct DecodedChar {
  uint32_t cp;   // codepoint (U+FFFD for an invalid byte)
  uint32_t len;  // bytes consumed, 1..4
};

// Decodes the character starting at p[0]; requires n >= 1.
inline DecodedChar decode_utf8_lenient(const char* p, size_t n) {
  const auto b0 = static_cast<uint8_t>(p[0]);
  if (b0 < 0x80) return {b0, 1};
  auto cont = [&](size_t i) { return i < n && (static_cast<uint8_t>(p[i]) & 0xC0) == 0x80; };
  auto bits = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(p[i]) & 0x3F); };
  if ((b0 & 0xE0) == 0xC0) {
    if (cont(1)) return {((b0 & 0x1Fu) << 6) | bits(1), 2};
  } else if ((b0 & 0xF0) == 0xE0) {
    if (cont(1) && cont(2)) return {((b0 & 0x0Fu) << 12) | (bits(1) << 6) | bits(2), 3};
  } else if ((b0 & 0xF8) == 0xF0) {
    if (cont(1) && cont(2) && cont(3)) {
      const uint32_t cp = ((b0 & 0x07u) << 18) | (bits(1) << 12) | (bits(2) << 6) | bits(3);
      if (cp <= 0x10FFFF) return {cp, 4};
    }
  }
  return {kReplacementChar, 1};
}

// Length of a character from its lead byte alone (1 for continuation bytes), as SentencePiece-
// style splitting does; the caller clamps it to the bytes that remain.
inline size_t utf8_length_from_lead(uint8_t lead) {
  if (lead < 0xC0) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

// Appends the UTF-8 form of cp (cp <= 0x10FFFF; surrogates are encoded like any other value).
void append_utf8(std::string& out, uint32_t cp);

// True when decoding then re-encoding `text` leniently gives back the same bytes, i.e. it has no
// invalid bytes and no overlong forms (surrogates are allowed: they round-trip).
bool is_canonical_utf8(std::string_view text);

// Decodes leniently and re-encodes: the byte string the reference engine actually tokenises.
std::string canonicalize_utf8(std::string_view text);

}  // namespace bitnet::tokenizer
