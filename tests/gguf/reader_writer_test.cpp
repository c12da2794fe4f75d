// Round trips through the streaming writer and the reader: every value type, nested arrays,
// versions 2 and 3, custom alignment, tensor data split across write() calls.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <numeric>

#include "gguf/reader.h"
#include "gguf/writer.h"
#include "test_util.h"

namespace bitnet::gguf {
namespace {

TEST(GgufRoundTrip, EveryValueTypeAndNestedArrays) {
  for (uint32_t version : {2u, 3u}) {
    Writer w(version);
    w.set("u8", Value(uint8_t{200}));
    w.set("i8", Value(int8_t{-100}));
    w.set("u16", Value(uint16_t{60000}));
    w.set("i16", Value(int16_t{-30000}));
    w.set("u32", Value(uint32_t{4000000000u}));
    w.set("i32", Value(int32_t{-2000000000}));
    w.set("f32", Value(1.5f));
    w.set("bool", Value(true));
    w.set("string", Value(std::string("h\xc3\xa9llo")));
    w.set("u64", Value(uint64_t{1} << 60));
    w.set("i64", Value(-(int64_t{1} << 60)));
    w.set("f64", Value(0.1));
    w.set("strings", make_string_array({"a", "", "ccc"}));
    Array inner1{ValueType::I32, {Value(int32_t{1}), Value(int32_t{2})}};
    Array inner2{ValueType::I32, {}};
    w.set("nested", Value(Array{ValueType::ARRAY, {Value(inner1), Value(inner2)}}));
    ASSERT_TRUE(w.add_tensor("t", TensorType::F32, {4, 2}).ok());
    test::TempDir dir;
    const std::string path = dir.path("rt.gguf");
    ASSERT_TRUE(w.begin(path).ok());
    std::vector<float> data(8);
    std::iota(data.begin(), data.end(), 0.0f);
    auto bytes = std::span(reinterpret_cast<const uint8_t*>(data.data()), 32);
    ASSERT_TRUE(w.write(bytes.subspan(0, 5)).ok());
    ASSERT_TRUE(w.write(bytes.subspan(5)).ok());
    ASSERT_TRUE(w.finish().ok());

    auto f = File::open(path);
    ASSERT_TRUE(f.ok()) << f.message();
    EXPECT_EQ(f->version(), version);
    EXPECT_EQ(*f->find("u8")->get_if<uint8_t>(), 200);
    EXPECT_EQ(*f->find("i8")->get_if<int8_t>(), -100);
    EXPECT_EQ(*f->find("u16")->get_if<uint16_t>(), 60000);
    EXPECT_EQ(*f->find("i16")->get_if<int16_t>(), -30000);
    EXPECT_EQ(*f->find("u32")->get_if<uint32_t>(), 4000000000u);
    EXPECT_EQ(*f->find("i32")->get_if<int32_t>(), -2000000000);
    EXPECT_EQ(*f->find("f32")->get_if<float>(), 1.5f);
    EXPECT_EQ(*f->find("bool")->get_if<bool>(), true);
    EXPECT_EQ(*f->find("string")->as_string(), "h\xc3\xa9llo");
    EXPECT_EQ(*f->find("u64")->get_if<uint64_t>(), uint64_t{1} << 60);
    EXPECT_EQ(*f->find("i64")->get_if<int64_t>(), -(int64_t{1} << 60));
    EXPECT_EQ(*f->find("f64")->get_if<double>(), 0.1);
    const Array* s = f->find("strings")->as_array();
    ASSERT_NE(s, nullptr);
    ASSERT_EQ(s->items.size(), 3u);
    EXPECT_EQ(*s->items[2].as_string(), "ccc");
    const Array* n = f->find("nested")->as_array();
    ASSERT_NE(n, nullptr);
    EXPECT_EQ(n->element_type, ValueType::ARRAY);
    ASSERT_EQ(n->items.size(), 2u);
    EXPECT_EQ(n->items[0].as_array()->items[1].as_int(), 2);
    EXPECT_TRUE(n->items[1].as_array()->items.empty());
    const TensorInfo* t = f->find_tensor("t");
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->n_elements, 8u);
    auto got = f->tensor_data(*t);
    ASSERT_EQ(got.size(), 32u);
    EXPECT_EQ(std::memcmp(got.data(), data.data(), 32), 0);
  }
}

// OpenOptions::max_array_items: longer top-level arrays are read through but not kept (their
// length is), shorter ones and nested ones are; the file must still be valid past them.
TEST(GgufReader, LongArraysCanBeLeftOut) {
  Writer w(3);
  std::vector<std::string> many(100, "token");
  w.set("many", make_string_array(many));
  w.set("few", make_string_array({"a", "b"}));
  Array inner{ValueType::I32, {Value(int32_t{1}), Value(int32_t{2}), Value(int32_t{3})}};
  w.set("nested", Value(Array{ValueType::ARRAY, {Value(inner)}}));
  w.set("after", Value(uint32_t{7}));
  test::TempDir dir;
  const std::string path = dir.path("arrays.gguf");
  ASSERT_TRUE(w.begin(path).ok());
  ASSERT_TRUE(w.finish().ok());
  auto f = File::open(path, {.max_array_items = 2});
  ASSERT_TRUE(f.ok()) << f.message();
  const Array* m = f->find("many")->as_array();
  ASSERT_NE(m, nullptr);
  EXPECT_TRUE(m->items.empty());
  EXPECT_EQ(m->elided, 100u);
  EXPECT_EQ(m->size(), 100u);
  EXPECT_EQ(f->find("few")->as_array()->items.size(), 2u);
  EXPECT_EQ(f->find("nested")->as_array()->items[0].as_array()->items.size(), 3u);
  EXPECT_EQ(*f->find("after")->get_if<uint32_t>(), 7u);
  EXPECT_NE(f->find("many")->to_display(4).find("not loaded"), std::string::npos);
  auto full = File::open(path);
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->find("many")->as_array()->items.size(), 100u);
  EXPECT_EQ(full->find("many")->as_array()->elided, 0u);
}

TEST(GgufRoundTrip, CustomAlignmentAndManyTensors) {
  Writer w;
  w.set("general.alignment", Value(uint32_t{64}));
  ASSERT_TRUE(w.add_tensor("a", TensorType::F16, {3}).ok());
  ASSERT_TRUE(w.add_tensor("b", TensorType::TQ2_0, {256, 2}).ok());
  ASSERT_TRUE(w.add_tensor("c", TensorType::I2_S, {128, 2}).ok());
  test::TempDir dir;
  const std::string path = dir.path("al.gguf");
  ASSERT_TRUE(w.begin(path).ok());
  std::vector<uint8_t> all(w.total_data_bytes(), 0x5a);
  // Write only each tensor's own bytes (padding is the writer's job).
  for (const auto& t : w.tensors()) ASSERT_TRUE(w.write(std::span(all.data(), t.n_bytes)).ok());
  ASSERT_TRUE(w.finish().ok());
  auto f = File::open(path);
  ASSERT_TRUE(f.ok()) << f.message();
  EXPECT_EQ(f->alignment(), 64u);
  EXPECT_EQ(f->data_offset() % 64, 0u);
  for (const auto& t : f->tensors()) EXPECT_EQ(t.offset % 64, 0u) << t.name;
  EXPECT_EQ(f->find_tensor("b")->n_bytes, 132u);
  EXPECT_EQ(f->find_tensor("c")->n_bytes, 256u / 4 + 32);
}

TEST(GgufWriter, RejectsMisuse) {
  Writer w;
  EXPECT_FALSE(w.add_tensor("x", TensorType::TQ2_0, {100}).ok());  // not whole blocks
  ASSERT_TRUE(w.add_tensor("x", TensorType::F32, {2}).ok());
  EXPECT_FALSE(w.add_tensor("x", TensorType::F32, {2}).ok());  // duplicate
  test::TempDir dir;
  ASSERT_TRUE(w.begin(dir.path("m.gguf")).ok());
  std::vector<uint8_t> b(4);
  ASSERT_TRUE(w.write(b).ok());
  auto st = w.finish();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("missing data"), std::string::npos) << st.message();
}

TEST(TensorTypes, TableMatchesGgml) {
  struct Row {
    TensorType t;
    uint32_t block, size;
  };
  for (Row r : {Row{TensorType::F32, 1, 4}, Row{TensorType::F16, 1, 2}, Row{TensorType::BF16, 1, 2},
                Row{TensorType::Q8_0, 32, 34}, Row{TensorType::Q8_K, 256, 292},
                Row{TensorType::TQ1_0, 256, 54}, Row{TensorType::TQ2_0, 256, 66}}) {
    const TensorTypeInfo* info = tensor_type_info(r.t);
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->block_size, r.block) << info->name;
    EXPECT_EQ(info->type_size, r.size) << info->name;
  }
  // I2_S: n/4 + 32 bytes per tensor (2560 x 6912 as in 2B4T).
  EXPECT_EQ(tensor_nbytes(TensorType::I2_S, 2560ull * 6912, 2560), 2560ull * 6912 / 4 + 32);
  EXPECT_EQ(tensor_type_from_name("tq2_0"), TensorType::TQ2_0);
  EXPECT_EQ(tensor_type_from_name("i2_s"), TensorType::I2_S);
  EXPECT_FALSE(tensor_type_from_name("q9_9").has_value());
}

}  // namespace
}  // namespace bitnet::gguf
