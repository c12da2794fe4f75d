#!/usr/bin/env python3
"""Generates src/tokenizer/unicode_tables_data.cpp: per-codepoint flags for the pre-tokenizers.

The pre-tokenizer regexes use \\p{L}, \\p{N}, \\p{P}, ... and \\s. Token ids only match the
reference engine if our idea of each codepoint's category is the same as its idea, so the Unicode
version matters: the pinned llama.cpp was generated from Unicode 15.1. Python 3.11's unicodedata
is Unicode 14.0 (about 5,000 codepoints differ), so the committed table is generated from the npm
package @unicode/unicode-15.1.0 (read through node):

    npm pack @unicode/unicode-15.1.0 && tar xzf unicode-unicode-15.1.0-*.tgz
    python3 src/tokenizer/gen_unicode_tables.py --npm-ucd package \\
        --check-llama .deps/llama.cpp/src/unicode-data.cpp > src/tokenizer/unicode_tables_data.cpp

Without --npm-ucd the script falls back to Python's own unicodedata (and says which version).
--check-llama compares every codepoint with the reference table and fails on any difference.

Layout: a two-stage table. stage1[cp >> 8] picks a 256-entry block of stage2; blocks that repeat
(most of the unassigned planes) are stored once. One byte per codepoint (see unicode_tables.h).
"""

import argparse
import json
import re
import subprocess
import sys
import unicodedata

MAX_CODEPOINTS = 0x110000

# Must match the constants in unicode_tables.h.
NUMBER = 0x01
LETTER = 0x02
SEPARATOR = 0x04
MARK = 0x08
PUNCTUATION = 0x10
SYMBOL = 0x20
CONTROL = 0x40
WHITESPACE = 0x80

CATEGORY_FLAGS = {
    "Cn": 0,  # unassigned: no category bit at all
    "Cc": CONTROL, "Cf": CONTROL, "Co": CONTROL, "Cs": CONTROL,
    "Ll": LETTER, "Lm": LETTER, "Lo": LETTER, "Lt": LETTER, "Lu": LETTER,
    "Mc": MARK, "Me": MARK, "Mn": MARK,
    "Nd": NUMBER, "Nl": NUMBER, "No": NUMBER,
    "Pc": PUNCTUATION, "Pd": PUNCTUATION, "Pe": PUNCTUATION, "Pf": PUNCTUATION,
    "Pi": PUNCTUATION, "Po": PUNCTUATION, "Ps": PUNCTUATION,
    "Sc": SYMBOL, "Sk": SYMBOL, "Sm": SYMBOL, "So": SYMBOL,
    "Zl": SEPARATOR, "Zp": SEPARATOR, "Zs": SEPARATOR,
}

# Long names used by the @unicode npm packages, for the two-letter categories above.
NPM_CATEGORY_NAMES = {
    "Control": "Cc", "Format": "Cf", "Private_Use": "Co", "Surrogate": "Cs",
    "Lowercase_Letter": "Ll", "Modifier_Letter": "Lm", "Other_Letter": "Lo",
    "Titlecase_Letter": "Lt", "Uppercase_Letter": "Lu",
    "Spacing_Mark": "Mc", "Enclosing_Mark": "Me", "Nonspacing_Mark": "Mn",
    "Decimal_Number": "Nd", "Letter_Number": "Nl", "Other_Number": "No",
    "Connector_Punctuation": "Pc", "Dash_Punctuation": "Pd", "Close_Punctuation": "Pe",
    "Final_Punctuation": "Pf", "Initial_Punctuation": "Pi", "Other_Punctuation": "Po",
    "Open_Punctuation": "Ps",
    "Currency_Symbol": "Sc", "Modifier_Symbol": "Sk", "Math_Symbol": "Sm", "Other_Symbol": "So",
    "Line_Separator": "Zl", "Paragraph_Separator": "Zp", "Space_Separator": "Zs",
}

# The Unicode White_Space property (PropList.txt); stable since Unicode 6.
WHITE_SPACE = list(range(0x09, 0x0E)) + [0x20, 0x85, 0xA0, 0x1680] + list(range(0x2000, 0x200B)) + [
    0x2028, 0x2029, 0x202F, 0x205F, 0x3000]


def npm_ranges(package_dir, prop_path):
    """Returns [(begin, end_exclusive), ...] for one property of an @unicode/unicode-X package."""
    script = (
        "import(process.argv[1]).then(m => console.log(JSON.stringify("
        "m.default.map(r => [r.begin, r.end]))))")
    out = subprocess.run(["node", "-e", script, f"{package_dir}/{prop_path}/ranges.mjs"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def flags_from_npm(package_dir):
    flags = bytearray(MAX_CODEPOINTS)
    for long_name, short in NPM_CATEGORY_NAMES.items():
        for begin, end in npm_ranges(package_dir, f"General_Category/{long_name}"):
            for cp in range(begin, end):
                flags[cp] |= CATEGORY_FLAGS[short]
    for begin, end in npm_ranges(package_dir, "Binary_Property/White_Space"):
        for cp in range(begin, end):
            flags[cp] |= WHITESPACE
    with open(f"{package_dir}/package.json") as f:
        source = "npm " + json.load(f)["name"]
    return flags, source


def flags_from_python():
    flags = bytearray(MAX_CODEPOINTS)
    for cp in range(MAX_CODEPOINTS):
        flags[cp] = CATEGORY_FLAGS[unicodedata.category(chr(cp))]
    for cp in WHITE_SPACE:
        flags[cp] |= WHITESPACE
    return flags, f"Python unicodedata {unicodedata.unidata_version}"


def check_against_llama(flags, path):
    """Compares with llama.cpp's unicode-data.cpp (its flag bits differ from ours; map them)."""
    text = open(path, encoding="utf-8").read()
    body = re.search(r"unicode_ranges_flags = \{[^\n]*\n(.*?)\};", text, re.S).group(1)
    ranges = [(int(a, 16), int(b, 16)) for a, b in re.findall(r"\{0x([0-9A-F]+), 0x([0-9A-F]+)\}", body)]
    ws_body = re.search(r"unicode_set_whitespace = \{(.*?)\};", text, re.S).group(1)
    ws = {int(x, 16) for x in re.findall(r"0x([0-9A-F]+)", ws_body)}
    # llama.cpp bits: 1 undefined, 2 number, 4 letter, 8 separator, 0x10 mark, 0x20 punct,
    # 0x40 symbol, 0x80 control.
    theirs_to_ours = {0x01: 0, 0x02: NUMBER, 0x04: LETTER, 0x08: SEPARATOR, 0x10: MARK,
                      0x20: PUNCTUATION, 0x40: SYMBOL, 0x80: CONTROL}
    diffs = []
    for (start, their_flags), (end, _) in zip(ranges, ranges[1:]):
        expect = theirs_to_ours[their_flags]
        for cp in range(start, end):
            expect_cp = expect | (WHITESPACE if cp in ws else 0)
            if flags[cp] != expect_cp:
                diffs.append((cp, flags[cp], expect_cp))
    return diffs


def emit(flags, source):
    blocks = []
    block_index = {}
    stage1 = []
    for hi in range(MAX_CODEPOINTS >> 8):
        block = bytes(flags[hi << 8:(hi + 1) << 8])
        if block not in block_index:
            block_index[block] = len(blocks)
            blocks.append(block)
        stage1.append(block_index[block])
    assert len(blocks) <= 256, "stage1 entries are uint8_t"

    out = []
    out.append("// Generated by src/tokenizer/gen_unicode_tables.py from " + source + ". Do not edit.")
    out.append("// Two-stage codepoint flag table; see unicode_tables.h for the bit meanings.")
    out.append("#include <cstdint>")
    out.append("")
    out.append('#include "tokenizer/unicode_tables.h"')
    out.append("")
    out.append("namespace bitnet::tokenizer::unicode_detail {")
    out.append("")
    out.append(f"const uint8_t kStage1[{len(stage1)}] = {{")
    for i in range(0, len(stage1), 24):
        out.append("    " + ", ".join(str(v) for v in stage1[i:i + 24]) + ",")
    out.append("};")
    out.append("")
    out.append(f"const uint8_t kStage2[{len(blocks)}][256] = {{")
    for block in blocks:
        out.append("    {")
        for i in range(0, 256, 16):
            out.append("        " + ", ".join(f"0x{v:02x}" for v in block[i:i + 16]) + ",")
        out.append("    },")
    out.append("};")
    out.append("")
    out.append("}  // namespace bitnet::tokenizer::unicode_detail")
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--npm-ucd", help="extracted @unicode/unicode-X.Y.Z package directory")
    parser.add_argument("--check-llama", help="llama.cpp src/unicode-data.cpp to compare against")
    args = parser.parse_args()

    flags, source = flags_from_npm(args.npm_ucd) if args.npm_ucd else flags_from_python()
    print(f"gen_unicode_tables: source {source}", file=sys.stderr)
    if args.check_llama:
        diffs = check_against_llama(flags, args.check_llama)
        for cp, ours, theirs in diffs[:20]:
            print(f"  U+{cp:04X}: ours 0x{ours:02x}, llama.cpp 0x{theirs:02x}", file=sys.stderr)
        print(f"gen_unicode_tables: {len(diffs)} codepoints differ from {args.check_llama}",
              file=sys.stderr)
        if diffs:
            sys.exit(1)
    sys.stdout.write(emit(flags, source))


if __name__ == "__main__":
    main()
