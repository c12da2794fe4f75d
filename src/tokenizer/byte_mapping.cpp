#include "tokenizer/byte_mapping.h"

#include <array>

#include "tokenizer/utf8.h"

namespace bitnet::tokenizer {
namespace {

bool stands_for_itself(int b) {
  return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

struct Tables {
  std::array<uint32_t, 256> to_cp{};
  std::array<int16_t, 512> from_cp{};  // every mapped codepoint is below U+0144
  Tables() {
    from_cp.fill(-1);
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      to_cp[b] = stands_for_itself(b) ? static_cast<uint32_t>(b) : next++;
      from_cp[to_cp[b]] = static_cast<int16_t>(b);
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

uint32_t byte_to_codepoint(uint8_t byte) { return tables().to_cp[byte]; }

std::optional<uint8_t> codepoint_to_byte(uint32_t cp) {
  if (cp >= 512 || tables().from_cp[cp] < 0) return std::nullopt;
  return static_cast<uint8_t>(tables().from_cp[cp]);
}

std::optional<std::string> decode_byte_level(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const DecodedChar c = decode_utf8_lenient(text.data() + i, text.size() - i);
    // An invalid byte decodes as U+FFFD, which is not a mapped character: rejected below.
    auto b = codepoint_to_byte(c.cp);
    if (!b) return std::nullopt;
    // Only the shortest form counts: the reference compares token texts byte for byte.
    if (c.len != (c.cp < 0x80 ? 1u : 2u)) return std::nullopt;
    out.push_back(static_cast<char>(*b));
    i += c.len;
  }
  return out;
}

std::string encode_byte_level(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char ch : bytes) append_utf8(out, byte_to_codepoint(static_cast<uint8_t>(ch)));
  return out;
}

}  // namespace bitnet::tokenizer
