#include "tokenizer/utf8.h"

#include <gtest/gtest.h>

#include "tokenizer/byte_mapping.h"
#include "tokenizer/unicode_tables.h"

namespace bitnet::tokenizer {
namespace {

TEST(Utf8, DecodesLikeTheReference) {
  EXPECT_EQ(decode_utf8_lenient("A", 1).cp, 'A');
  EXPECT_EQ(decode_utf8_lenient("\xC3\xA9", 2).cp, 0xE9u);
  EXPECT_EQ(decode_utf8_lenient("\xF0\x9F\x98\x80", 4).cp, 0x1F600u);
  // Overlong and surrogate forms are accepted, as the reference does.
  EXPECT_EQ(decode_utf8_lenient("\xC0\xAF", 2).cp, static_cast<uint32_t>('/'));
  EXPECT_EQ(decode_utf8_lenient("\xED\xA0\x80", 3).cp, 0xD800u);
  // Invalid: one byte becomes U+FFFD.
  for (const char* bad : {"\x80", "\xFF", "\xC3", "\xE2\x82", "\xF4\x90\x80\x80"}) {
    const DecodedChar c = decode_utf8_lenient(bad, std::char_traits<char>::length(bad));
    EXPECT_EQ(c.cp, kReplacementChar) << bad;
    EXPECT_EQ(c.len, 1u);
  }
}

TEST(Utf8, Canonicalize) {
  EXPECT_TRUE(is_canonical_utf8("plain ascii"));
  EXPECT_TRUE(is_canonical_utf8("caf\xC3\xA9 \xF0\x9F\x98\x80 \xED\xA0\x80"));
  EXPECT_FALSE(is_canonical_utf8("\xC0\xAF"));
  EXPECT_FALSE(is_canonical_utf8("a\x80"));
  EXPECT_EQ(canonicalize_utf8("a\xC0\xAF"
                              "b\x80"),
            "a/b\xEF\xBF\xBD");
  EXPECT_EQ(canonicalize_utf8("\xE2\x82"), "\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(ByteMapping, RoundTripsAllBytes) {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  const std::string encoded = encode_byte_level(all);
  EXPECT_EQ(decode_byte_level(encoded), all);
  EXPECT_EQ(byte_to_codepoint(' '), 0x120u);   // 'Ġ'
  EXPECT_EQ(byte_to_codepoint('\n'), 0x10Au);  // 'Ċ'
  EXPECT_EQ(byte_to_codepoint('A'), static_cast<uint32_t>('A'));
  EXPECT_FALSE(decode_byte_level("\xE4\xBD\xA0").has_value());  // U+4F60 is not a byte char
  EXPECT_FALSE(decode_byte_level("\xC1\x81").has_value());      // overlong 'A'
}

TEST(UnicodeTables, Categories) {
  EXPECT_EQ(codepoint_flags('a'), cpflag::kLetter);
  EXPECT_EQ(codepoint_flags('7'), cpflag::kNumber);
  EXPECT_EQ(codepoint_flags(' '), cpflag::kSeparator | cpflag::kWhitespace);
  EXPECT_EQ(codepoint_flags('\n'), cpflag::kControl | cpflag::kWhitespace);
  EXPECT_EQ(codepoint_flags('!'), cpflag::kPunctuation);
  EXPECT_EQ(codepoint_flags('$'), cpflag::kSymbol);
  EXPECT_EQ(codepoint_flags(0x0301), cpflag::kMark);
  EXPECT_EQ(codepoint_flags(0x00A0), cpflag::kSeparator | cpflag::kWhitespace);
  EXPECT_EQ(codepoint_flags(0x0378), 0);                 // unassigned
  EXPECT_EQ(codepoint_flags(0x2EBF0), cpflag::kLetter);  // CJK Ext. I: new in Unicode 15.1
  EXPECT_EQ(codepoint_flags(0x110000), 0);
}

}  // namespace
}  // namespace bitnet::tokenizer
