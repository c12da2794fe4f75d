// GPT-2's reversible byte <-> character mapping. Byte-level BPE vocabularies store every token
// as a string of these characters: printable Latin-1 bytes stand for themselves, the other 68
// bytes (controls, space, 0x7F-0xA0, 0xAD) are moved to U+0100.. in byte order, so that a space
// shows up as U+0120 'Ġ' and a newline as U+010A 'Ċ'.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace bitnet::tokenizer {

// The codepoint that stands for `byte` in token texts.
uint32_t byte_to_codepoint(uint8_t byte);
// The byte a codepoint stands for; nullopt when it is not one of the 256 mapped characters.
std::optional<uint8_t> codepoint_to_byte(uint32_t cp);

// Raw bytes of a token text made only of mapped characters; nullopt otherwise (for instance a
// special token spelled with other characters, or text that is not valid UTF-8).
std::optional<std::string> decode_byte_level(std::string_view text);
// Token-text form of raw bytes.
std::string encode_byte_level(std::string_view bytes);

}  // namespace bitnet::tokenizer
