// One malformed file per defect. Each must give a one-line error naming the problem, both from
// the reader and from `bitnet inspect` (non-zero exit, nothing on stdout, no crash).
#include <gtest/gtest.h>

#include <fstream>

#include "gguf/reader.h"
#include "gguf_bytes.h"
#include "test_util.h"

namespace bitnet::gguf {
namespace {

using test::GgufBytes;
using test::small_valid_file;

struct Case {
  std::string name;
  std::vector<uint8_t> bytes;
  std::string expect;  // substring of the error message
};

// A valid file: one F32 tensor [8] at offset 0.
GgufBytes valid_prefix(uint64_t n_tensors, uint64_t n_kv) { return GgufBytes().header(n_tensors, n_kv); }

std::vector<Case> malformed_cases() {
  std::vector<Case> c;
  auto add = [&](std::string name, const GgufBytes& g, std::string expect) {
    c.push_back({std::move(name), g.b, std::move(expect)});
  };
  add("empty", GgufBytes(), "not a GGUF file");
  add("three_bytes", GgufBytes().put<uint8_t>('G').put<uint8_t>('G').put<uint8_t>('U'), "not a GGUF file");
  add("bad_magic", GgufBytes().u32(0x46554746).u32(3).u64(0).u64(0), "bad magic");
  add("version_1", GgufBytes().header(0, 0, 1), "unsupported GGUF version 1");
  add("version_4", GgufBytes().header(0, 0, 4), "unsupported GGUF version 4");
  add("truncated_counts", GgufBytes().u32(0x46554747).u32(3).u32(0), "truncated");
  add("absurd_kv_count", valid_prefix(0, uint64_t{1} << 40), "metadata count");
  add("absurd_tensor_count", valid_prefix(uint64_t{1} << 40, 0), "tensor count");
  add("key_past_end", valid_prefix(0, 1).u64(1000).zeros(8), "runs past the end");
  add("key_length_huge", valid_prefix(0, 1).u64(uint64_t{1} << 63).zeros(8), "string length");
  add("empty_key", valid_prefix(0, 1).str("").u32(4).u32(1), "empty key");
  add("unknown_value_type", valid_prefix(0, 1).str("k").u32(13).u32(0), "unknown value type 13");
  add("array_unknown_elem", valid_prefix(0, 1).str("k").u32(9).u32(77).u64(1), "unknown array element type 77");
  add("array_count_past_end", valid_prefix(0, 1).str("k").u32(9).u32(4).u64(1000000000000ull),
      "cannot fit");
  {
    GgufBytes g = valid_prefix(0, 1).str("k").u32(9);  // an array ...
    for (int i = 0; i < 12; ++i) g.u32(9).u64(1);     // ... of one array, 12 levels deep
    add("arrays_too_deep", g.u32(4).u64(0), "nested deeper");
  }
  add("bool_is_2", valid_prefix(0, 1).str("k").u32(7).put<uint8_t>(2), "bool value 2");
  add("string_value_past_end", valid_prefix(0, 1).str("k").u32(8).u64(50).zeros(4), "runs past the end");
  add("value_truncated", valid_prefix(0, 1).str("k").u32(10).u32(0), "truncated");
  add("duplicate_key", valid_prefix(0, 2).kv_u32("k", 1).kv_u32("k", 2), "duplicate metadata key 'k'");
  add("alignment_zero", valid_prefix(0, 1).kv_u32("general.alignment", 0), "general.alignment");
  add("alignment_not_pow2", valid_prefix(0, 1).kv_u32("general.alignment", 48), "general.alignment");
  add("alignment_wrong_type", valid_prefix(0, 1).kv_str("general.alignment", "32"), "general.alignment");
  add("tensor_zero_dims", valid_prefix(1, 0).tensor("t", {}, 0, 0).align().zeros(32), "0 dimensions");
  add("tensor_five_dims", valid_prefix(1, 0).tensor("t", {1, 1, 1, 1, 1}, 0, 0).align().zeros(32),
      "5 dimensions");
  add("tensor_dim_zero", valid_prefix(1, 0).tensor("t", {8, 0}, 0, 0).align().zeros(32), "must be positive");
  add("tensor_dim_negative", valid_prefix(1, 0).tensor("t", {~uint64_t{0}}, 0, 0).align().zeros(32),
      "must be positive");
  add("tensor_dim_overflow",
      valid_prefix(1, 0).tensor("t", {uint64_t{1} << 40, uint64_t{1} << 40}, 0, 0).align().zeros(32),
      "overflows");
  add("tensor_unknown_type", valid_prefix(1, 0).tensor("t", {8}, 99, 0).align().zeros(32),
      "unknown type id 99");
  add("tensor_partial_block", valid_prefix(1, 0).tensor("t", {100}, 35, 0).align().zeros(256),
      "not a multiple of the type's block size");
  add("tensor_misaligned", valid_prefix(1, 0).tensor("t", {8}, 0, 4).align().zeros(64), "not a multiple of the alignment");
  add("tensor_out_of_bounds", valid_prefix(1, 0).tensor("t", {8}, 0, 1 << 20).align().zeros(32),
      "runs past the end");
  add("tensor_data_truncated", valid_prefix(1, 0).tensor("t", {64}, 0, 0).align().zeros(100),
      "runs past the end");
  add("tensors_overlap",
      valid_prefix(2, 0).tensor("a", {16}, 0, 0).tensor("b", {16}, 0, 32).align().zeros(128),
      "overlaps");
  add("duplicate_tensor", valid_prefix(2, 0).tensor("a", {8}, 0, 0).tensor("a", {8}, 0, 32).align().zeros(64),
      "duplicate tensor name 'a'");
  add("empty_tensor_name", valid_prefix(1, 0).tensor("", {8}, 0, 0).align().zeros(32), "empty name");
  add("header_cut_in_tensor_info",
      valid_prefix(1, 1).kv_str("pad", std::string(64, 'x')).str("t").u32(2).u64(8), "truncated");
  // Type 36 outside a BitNet architecture, with room for IQ4_NL_4_4's bytes, not I2_S's.
  add("type36_not_bitnet",
      valid_prefix(1, 1).kv_str("general.architecture", "llama").tensor("t", {256}, 36, 0).align().zeros(160),
      "type 36");
  return c;
}

TEST(GgufMalformed, ReaderGivesOneLineErrors) {
  auto cases = malformed_cases();
  ASSERT_GE(cases.size(), 20u);
  for (const auto& c : cases) {
    auto f = File::parse(c.bytes, c.name);
    ASSERT_FALSE(f.ok()) << c.name << " was accepted";
    EXPECT_NE(f.message().find(c.expect), std::string::npos)
        << c.name << ": got '" << f.message() << "', expected to contain '" << c.expect << "'";
    EXPECT_EQ(f.message().find('\n'), std::string::npos) << c.name;
  }
}

TEST(GgufMalformed, InspectExitsNonZeroWithOneLine) {
  test::TempDir dir;
  for (const auto& c : malformed_cases()) {
    const std::string path = dir.path(c.name + ".gguf");
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(c.bytes.data()), static_cast<std::streamsize>(c.bytes.size()));
    auto r = test::run_command(test::bitnet_binary() + " inspect " + path);
    EXPECT_EQ(r.exit_code, 1) << c.name << ": " << r.err;
    EXPECT_TRUE(r.out.empty()) << c.name;
    ASSERT_FALSE(r.err.empty()) << c.name;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << c.name << ": not one line: " << r.err;
    EXPECT_EQ(r.err.rfind("bitnet: error: ", 0), 0u) << c.name << ": " << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.name << ": " << r.err;
  }
}

TEST(GgufMalformed, Type36AcceptedForBitnetArchitectures) {
  for (const char* arch : {"bitnet-b1.58", "bitnet-25", "bitnet"}) {
    auto g = valid_prefix(1, 1).kv_str("general.architecture", arch).tensor("t", {256}, 36, 0).align().zeros(96);
    auto f = File::parse(g.b, arch);
    ASSERT_TRUE(f.ok()) << arch << ": " << f.message();
    EXPECT_EQ(f->tensors()[0].type, TensorType::I2_S);
    EXPECT_EQ(f->tensors()[0].n_bytes, 256u / 4 + 32);
  }
  // No architecture, but the tensor's room fits I2_S and not IQ4_NL_4_4: decided by size.
  auto g = valid_prefix(1, 0).tensor("t", {1024}, 36, 0).align().zeros(1024 / 4 + 32);
  EXPECT_TRUE(File::parse(g.b, "by-size").ok());
}

TEST(GgufMalformed, MissingFileAndDirectory) {
  auto f = File::open("/nonexistent/model.gguf");
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.message().find("cannot open"), std::string::npos);
  auto d = File::open("/tmp");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.message().find("not a regular file"), std::string::npos);
}

// Mutation fuzzing: flips, truncations and length-field corruptions of a valid file must never
// crash the reader (run under ASan/UBSan by the asan preset).
TEST(GgufFuzz, RandomMutationsNeverCrash) {
  GgufBytes g = small_valid_file();
  ASSERT_TRUE(File::parse(g.b).ok()) << File::parse(g.b).message();
  uint64_t state = 7;
  auto rnd = [&] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return state >> 33;
  };
  int accepted = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::vector<uint8_t> m = g.b;
    const int edits = 1 + static_cast<int>(rnd() % 4);
    for (int e = 0; e < edits; ++e) {
      switch (rnd() % 4) {
        case 0:
          m[rnd() % m.size()] ^= static_cast<uint8_t>(1u << (rnd() % 8));
          break;
        case 1:
          m[rnd() % m.size()] = static_cast<uint8_t>(rnd());
          break;
        case 2:
          m.resize(rnd() % m.size() + 1);
          break;
        case 3: {  // plant a large 64-bit value (a length or count) somewhere
          const size_t at = rnd() % m.size();
          const uint64_t v = (rnd() << 31) ^ rnd();
          for (size_t k = 0; k < 8 && at + k < m.size(); ++k) m[at + k] = static_cast<uint8_t>(v >> (8 * k));
          break;
        }
      }
    }
    auto f = File::parse(m, "fuzz");
    if (f.ok()) {
      ++accepted;
      for (const auto& t : f->tensors()) {
        auto d = f->tensor_data(t);
        ASSERT_LE(d.data() + d.size(), m.data() + m.size());
      }
    } else {
      ASSERT_EQ(f.message().find('\n'), std::string::npos);
    }
  }
  RecordProperty("accepted", accepted);
}

}  // namespace
}  // namespace bitnet::gguf
