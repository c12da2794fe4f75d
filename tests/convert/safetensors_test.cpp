// The safetensors reader: valid single and sharded checkpoints read back exactly, and 24
// malformed files, headers and indexes each give a one-line error naming the problem.
#include "convert/safetensors.h"

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "convert/safetensors_writer.h"
#include "core/fp16.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace bitnet::convert {
namespace {

using json = nlohmann::json;

std::vector<uint8_t> image(const std::string& header, const std::vector<uint8_t>& data) {
  std::string s(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(s.data(), &n, 8);
  s += header;
  s.append(data.begin(), data.end());
  return std::vector<uint8_t>(s.begin(), s.end());
}

// A valid two-tensor image: "a" F32 [2, 2] = 1..4, "b" BF16 [3] = 0.5, -2, 8.
std::vector<uint8_t> valid_image() {
  std::vector<uint8_t> data(16 + 6);
  const float a[4] = {1, 2, 3, 4};
  std::memcpy(data.data(), a, 16);
  const uint16_t b[3] = {0x3F00, 0xC000, 0x4100};
  std::memcpy(data.data() + 16, b, 6);
  return image(R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
               R"("b":{"dtype":"BF16","shape":[3],"data_offsets":[16,22]},)"
               R"("__metadata__":{"format":"pt"}})",
               data);
}

void write_file(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}
void write_text(const std::string& path, const std::string& s) { std::ofstream(path) << s; }

TEST(Safetensors, ReadsAValidImage) {
  const auto bytes = valid_image();
  auto c = Checkpoint::parse(bytes, "mem");
  ASSERT_TRUE(c.ok()) << c.message();
  ASSERT_EQ(c->tensors().size(), 2u);
  const StTensor* a = c->find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->shape, (std::vector<uint64_t>{2, 2}));
  EXPECT_EQ(a->at(3), 4.0f);
  const StTensor* b = c->find("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->dtype, Dtype::BF16);
  EXPECT_EQ(b->at(0), 0.5f);
  EXPECT_EQ(b->at(1), -2.0f);
  EXPECT_EQ(b->at(2), 8.0f);
  EXPECT_EQ(c->metadata().at("format"), "pt");
}

TEST(Safetensors, ReadsShardedCheckpoints) {
  test::TempDir dir;
  std::vector<uint8_t> d1(4), d2(2);
  const float one = 1;
  std::memcpy(d1.data(), &one, 4);
  const uint16_t h = fp32_to_fp16(-3);
  std::memcpy(d2.data(), &h, 2);
  write_file(dir.path("model-00001-of-00002.safetensors"),
             image(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", d1));
  write_file(dir.path("model-00002-of-00002.safetensors"),
             image(R"({"y":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}})", d2));
  write_text(dir.path("model.safetensors.index.json"),
             R"({"metadata":{"total_size":6},"weight_map":{"x":"model-00001-of-00002.safetensors",)"
             R"("y":"model-00002-of-00002.safetensors"}})");
  auto c = Checkpoint::open(dir.dir().string());
  ASSERT_TRUE(c.ok()) << c.message();
  EXPECT_EQ(c->find("x")->at(0), 1.0f);
  EXPECT_EQ(c->find("y")->at(0), -3.0f);
}

TEST(Safetensors, MalformedInputsAreOneLineErrors) {
  struct Case {
    std::string header;
    std::vector<uint8_t> data;
    const char* expect;
  };
  const std::vector<uint8_t> d16(16);
  const std::string t = R"("dtype":"F32","shape":[2,2])";
  const std::vector<Case> cases = {
      {"not json", d16, "not valid JSON"},
      {"[1,2]", d16, "not a JSON object"},
      {R"({"a":5})", d16, "is not an object"},
      {R"({"a":{"dtype":"F32","shape":[4]}})", d16, "exactly dtype, shape and data_offsets"},
      {R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16],"x":1}})", d16, "exactly"},
      {R"({"a":{"dtype":7,"shape":[4],"data_offsets":[0,16]}})", d16, "dtype is not a string"},
      {R"({"a":{"dtype":"Q4","shape":[4],"data_offsets":[0,16]}})", d16, "'Q4' is not supported"},
      {R"({"a":{"dtype":"F32","shape":4,"data_offsets":[0,16]}})", d16, "shape is not an array"},
      {R"({"a":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}})", d16,
       "shape is not an array"},
      {R"({"a":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})", d16, "not a natural number"},
      {R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,16]}})", d16, "not a natural number"},
      {R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,16]}})", d16,
       "overflows"},
      {R"({"a":{)" + t + R"(,"data_offsets":[0]}})", d16, "not [begin, end]"},
      {R"({"a":{)" + t + R"(,"data_offsets":["0","16"]}})", d16, "not [begin, end]"},
      {R"({"a":{)" + t + R"(,"data_offsets":[8,4]}})", d16, "outside the data"},
      {R"({"a":{)" + t + R"(,"data_offsets":[0,32]}})", d16, "outside the data"},
      {R"({"a":{)" + t + R"(,"data_offsets":[0,12]}})", d16, "12 bytes for 4 F32 elements"},
      {R"({"a":{)" + t + R"(,"data_offsets":[0,16]},"b":{)" + t + R"(,"data_offsets":[0,16]}})",
       d16, "overlaps"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", d16,
       "[0, 8) of the data belong to no tensor"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", d16,
       "[8, 16) of the data belong to no tensor"},
      {R"({"__metadata__":[1]})", {}, "__metadata__ is not an object"},
      {R"({"__metadata__":{"format":1}})", {}, "'format' is not a string"},
  };
  for (const auto& c : cases) {
    const auto bytes = image(c.header, c.data);
    auto r = Checkpoint::parse(bytes, "bad.safetensors");
    ASSERT_FALSE(r.ok()) << c.header;
    EXPECT_NE(r.message().find(c.expect), std::string::npos) << c.header << " -> " << r.message();
    EXPECT_EQ(r.message().find('\n'), std::string::npos);
    EXPECT_EQ(r.message().rfind("bad.safetensors: ", 0), 0u) << r.message();
  }
  // Length fields that do not fit.
  const uint8_t shorty[4] = {1, 2, 3, 4};
  EXPECT_NE(Checkpoint::parse(shorty, "s").message().find("too short"), std::string::npos);
  std::vector<uint8_t> huge(16, 0xff);
  EXPECT_NE(Checkpoint::parse(huge, "h").message().find("does not fit the file"),
            std::string::npos);
}

TEST(Safetensors, MalformedShardIndexesAreOneLineErrors) {
  test::TempDir dir;
  std::vector<uint8_t> d(4);
  write_file(dir.path("s1.safetensors"),
             image(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", d));
  write_file(dir.path("s2.safetensors"),
             image(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", d));
  const std::vector<std::pair<std::string, const char*>> cases = {
      {"{", "not a JSON object"},
      {R"({"weight_map":{}})", "no weight_map"},
      {R"({"weight_map":{"x":3}})", "is not a file name"},
      {R"({"weight_map":{"x":"../s1.safetensors"}})", "is not a file in the folder"},
      {R"({"weight_map":{"x":"missing.safetensors"}})", "missing.safetensors"},
      {R"({"weight_map":{"y":"s1.safetensors"}})", "tensor 'y' is not in s1.safetensors"},
      {R"({"weight_map":{"x":"s1.safetensors","z":"s2.safetensors"}})", "appears twice"},
  };
  for (const auto& [index, expect] : cases) {
    write_text(dir.path("model.safetensors.index.json"), index);
    auto r = Checkpoint::open(dir.dir().string());
    ASSERT_FALSE(r.ok()) << index;
    EXPECT_NE(r.message().find(expect), std::string::npos) << index << " -> " << r.message();
    EXPECT_EQ(r.message().find('\n'), std::string::npos);
  }
  test::TempDir empty;
  EXPECT_NE(Checkpoint::open(empty.dir().string()).message().find("neither model.safetensors"),
            std::string::npos);
  EXPECT_FALSE(Checkpoint::open(empty.path("none.safetensors")).ok());
}

TEST(Safetensors, WriterOutputReadsBack) {
  test::TempDir dir;
  SafetensorsWriter w;
  w.set_metadata("format", "pt");
  w.add("w", Dtype::U8, {2, 3});
  w.add("s", Dtype::BF16, {1});
  ASSERT_TRUE(w.begin(dir.path("m.safetensors")).ok());
  const uint8_t codes[6] = {1, 2, 3, 4, 5, 6};
  ASSERT_TRUE(w.write(codes).ok());
  const uint16_t half = 0x3F00;  // bf16 0.5
  ASSERT_TRUE(w.write({reinterpret_cast<const uint8_t*>(&half), 2}).ok());
  ASSERT_TRUE(w.finish().ok());
  auto c = Checkpoint::open(dir.path("m.safetensors"));
  ASSERT_TRUE(c.ok()) << c.message();
  EXPECT_EQ(c->find("w")->shape, (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(c->find("w")->at(5), 6.0f);
  EXPECT_EQ(c->find("s")->at(0), 0.5f);
  EXPECT_EQ(c->metadata().at("format"), "pt");
  // Declared bytes must all be written.
  SafetensorsWriter short_write;
  short_write.add("w", Dtype::F32, {4});
  ASSERT_TRUE(short_write.begin(dir.path("s.safetensors")).ok());
  EXPECT_FALSE(short_write.finish().ok());
}

}  // namespace
}  // namespace bitnet::convert
