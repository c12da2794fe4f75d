// Trace folders: what Writer writes (JSON lines, meta.json, .npy / safetensors values, the seed
// layout) is what read_trace / ValueStore read back.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/npy.h"
#include "trace/reader.h"
#include "trace/writer.h"
#include "trace_test_util.h"

namespace bitnet::trace {
namespace {

namespace fs = std::filesystem;

std::vector<float> ramp(size_t n, float scale) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = scale * (static_cast<float>(i % 17) - 8.0f);
  return v;
}

// Feeds a writer the way the forward pass does: a few points and one quantized input.
void feed(Writer& w) {
  const int64_t d[1] = {8}, sm[2] = {2, 3};
  for (int pos = 0; pos < 2; ++pos) {
    const auto x = ramp(8, 0.5f + pos);
    if (w.wants({pos, -1, Op::kEmbeddings})) w.record({pos, -1, Op::kEmbeddings}, x, d);
    if (w.wants({pos, 0, Op::kAttnNorm})) {
      w.record({pos, 0, Op::kAttnNorm}, x, d);
      const std::vector<int8_t> codes = {1, 2, 3, 4, 5, 6, 7, 8};
      const std::vector<float> scales = {2.0f};
      w.record_codes({pos, 0, Op::kAttnNorm}, QuantGrouping::kPerToken, codes, scales);
    }
    if (w.wants({pos, 0, Op::kAttnScoresSoftmax}))
      w.record({pos, 0, Op::kAttnScoresSoftmax}, ramp(6, 0.1f), sm);
  }
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(TraceWriter, JsonlMetaAndNpyValuesRoundTrip) {
  test::TempDir dir;
  WriterOptions o;
  o.dir = dir.path("trace");
  o.values = ValuesFormat::kNpy;
  auto w = Writer::open(o);
  ASSERT_TRUE(w.ok()) << w.message();
  feed(**w);
  EXPECT_EQ((*w)->n_records(), 8);
  ASSERT_TRUE((*w)->finish({{"token_ids", {1, 2}}}).ok());

  auto t = read_trace(o.dir);
  ASSERT_TRUE(t.ok()) << t.message();
  EXPECT_EQ(t->layout, "jsonl");
  EXPECT_EQ(t->meta["format"], "bitnet-trace");
  EXPECT_EQ(t->meta["records"], 8);
  EXPECT_EQ(t->meta["token_ids"], nlohmann::json({1, 2}));
  EXPECT_EQ(t->meta["ops"].size(), kOpNames.size());
  ASSERT_EQ(t->records.size(), 8u);
  auto m = test::by_name(*t);
  ASSERT_TRUE(m.count("t1/blk0/attn_norm/q8"));
  EXPECT_TRUE(m["t1/blk0/attn_norm/q8"].values_file.empty());  // codes: hash only
  const Record& sm = m["t1/blk0/attn_scores_softmax"];
  EXPECT_EQ(sm.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(sm.values_file, "values/t1_blk0_attn_scores_softmax.npy");
  ValueStore store(o.dir);
  for (const auto& r : t->records) {
    if (r.kind != Kind::kF32) continue;
    auto v = store.load(r);
    ASSERT_TRUE(v.ok()) << v.message();
    EXPECT_EQ(blake3_hex(v->data(), v->size() * 4), r.blake3) << r.name();
  }
  auto npy = read_npy_f32(o.dir + "/" + sm.values_file);
  ASSERT_TRUE(npy.ok());
  EXPECT_EQ(npy->shape, (std::vector<int64_t>{2, 3}));
}

TEST(TraceWriter, SafetensorsValuesInOneFile) {
  test::TempDir dir;
  WriterOptions o;
  o.dir = dir.path("trace");
  o.values = ValuesFormat::kSafetensors;
  {
    auto w = Writer::open(o);
    ASSERT_TRUE(w.ok()) << w.message();
    feed(**w);
    ASSERT_TRUE((*w)->finish({}).ok());
  }
  EXPECT_FALSE(fs::exists(o.dir + "/values.safetensors.part"));
  EXPECT_FALSE(fs::exists(o.dir + "/values"));
  // The safetensors layout: u64 header length, JSON header, 8-byte aligned data.
  const std::string bytes = read_text(o.dir + "/values.safetensors");
  ASSERT_GE(bytes.size(), 8u);
  uint64_t hlen = 0;
  std::memcpy(&hlen, bytes.data(), 8);
  EXPECT_EQ(hlen % 8, 0u);
  const auto header = nlohmann::json::parse(bytes.substr(8, hlen));
  EXPECT_EQ(header["t0/blk0/attn_scores_softmax"]["dtype"], "F32");
  EXPECT_EQ(header["t0/blk0/attn_scores_softmax"]["shape"], nlohmann::json({2, 3}));
  EXPECT_EQ(header.size(), 7u);  // 6 f32 records + __metadata__
  auto t = read_trace(o.dir);
  ASSERT_TRUE(t.ok()) << t.message();
  ValueStore store(o.dir);
  int loaded = 0;
  for (const auto& r : t->records) {
    auto v = store.load(r);
    ASSERT_TRUE(v.ok()) << v.message();
    if (r.kind == Kind::kQ8) {
      EXPECT_TRUE(v->empty());
      continue;
    }
    EXPECT_EQ(blake3_hex(v->data(), v->size() * 4), r.blake3) << r.name();
    ++loaded;
  }
  EXPECT_EQ(loaded, 6);
}

TEST(TraceWriter, SelectionFiltersPointsAndCodes) {
  test::TempDir dir;
  WriterOptions o;
  o.dir = dir.path("trace");
  auto sel = Selection::parse("*/attn_norm/q8,*/embeddings", "1");
  ASSERT_TRUE(sel.ok());
  o.selection = *sel;
  auto w = Writer::open(o);
  ASSERT_TRUE(w.ok());
  EXPECT_TRUE((*w)->wants({1, 0, Op::kAttnNorm}));  // for its codes only
  EXPECT_FALSE((*w)->wants({0, 0, Op::kAttnNorm}));
  EXPECT_FALSE((*w)->wants({1, 0, Op::kQProj}));
  feed(**w);
  ASSERT_TRUE((*w)->finish({}).ok());
  auto t = read_trace(o.dir);
  ASSERT_TRUE(t.ok());
  std::vector<std::string> names;
  for (const auto& r : t->records) names.push_back(r.name());
  EXPECT_EQ(names, (std::vector<std::string>{"t1/embeddings", "t1/blk0/attn_norm/q8"}));
}

TEST(TraceWriter, SeedLayoutFilesAreReadable) {
  test::TempDir dir;
  WriterOptions o;
  o.dir = dir.path("trace");
  o.seed_layout = true;
  auto w = Writer::open(o);
  ASSERT_TRUE(w.ok());
  feed(**w);
  ASSERT_TRUE((*w)->finish({}).ok());
  const auto j = nlohmann::json::parse(read_text(o.dir + "/t0_blk0_attn_norm.trace"));
  EXPECT_EQ(j["name"], "t0/blk0/attn_norm");
  EXPECT_EQ(j["dtype"], "f32");
  EXPECT_EQ(j["num_elements"], 8);
  EXPECT_EQ(j.size(), 6u);
  EXPECT_FALSE(fs::exists(o.dir + "/t0_blk0_attn_norm_q8.trace"));  // f32 records only

  // A folder holding only the seed files (as older scripts leave them) reads as a trace.
  const std::string seed_only = dir.path("seed");
  fs::create_directories(seed_only);
  for (const auto& e : fs::directory_iterator(o.dir)) {
    if (e.path().extension() == ".trace") fs::copy(e.path(), seed_only);
  }
  auto t = read_trace(seed_only);
  ASSERT_TRUE(t.ok()) << t.message();
  EXPECT_EQ(t->layout, "seed");
  EXPECT_EQ(t->records.size(), 6u);
  EXPECT_EQ(t->records.front().name(), "t0/embeddings");  // forward order
}

TEST(TraceWriter, AddWritesRecordsBuiltElsewhere) {
  // The way a cross-validation tool writes a reference engine's tensor with our op names.
  test::TempDir dir;
  WriterOptions o;
  o.dir = dir.path("ref");
  o.values = ValuesFormat::kNpy;
  auto w = Writer::open(o);
  ASSERT_TRUE(w.ok());
  const auto v = ramp(8, 1.0f);
  const int64_t shape[1] = {8};
  ASSERT_TRUE((*w)->add(make_record(0, 3, Op::kFfnSubNorm, shape, v), v).ok());
  ASSERT_TRUE((*w)->finish({{"engine", "llama.cpp"}}).ok());
  EXPECT_FALSE((*w)->add(make_record(0, 3, Op::kFfnSubNorm, shape, v), v).ok());  // after finish
  auto t = read_trace(o.dir);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->meta["engine"], "llama.cpp");
  ASSERT_EQ(t->records.size(), 1u);
  EXPECT_EQ(t->records[0].values_file, "values/t0_blk3_ffn_sub_norm.npy");
}

TEST(TraceWriter, RepeatedPointsKeepBothValues) {
  test::TempDir dir;
  WriterOptions o;
  o.dir = dir.path("trace");
  o.values = ValuesFormat::kNpy;
  auto w = Writer::open(o);
  ASSERT_TRUE(w.ok());
  const int64_t shape[1] = {8};
  (*w)->record({0, -1, Op::kLogits}, ramp(8, 1.0f), shape);
  (*w)->record({0, -1, Op::kLogits}, ramp(8, 2.0f), shape);
  ASSERT_TRUE((*w)->finish({}).ok());
  EXPECT_TRUE(fs::exists(o.dir + "/values/t0_logits.npy"));
  EXPECT_TRUE(fs::exists(o.dir + "/values/t0_logits.1.npy"));
}

TEST(TraceReader, Errors) {
  test::TempDir dir;
  EXPECT_FALSE(read_trace(dir.path("missing")).ok());
  EXPECT_FALSE(read_trace(dir.path("")).ok());  // empty folder: no records
  std::ofstream(dir.path("trace.jsonl"))
      << "{\"name\":\"t0/logits\",\"position\":0,\"op\":\"logits\",\"shape\":[1]}\nnot json\n";
  auto t = read_trace(dir.dir().string());
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.message().find("trace.jsonl:2"), std::string::npos) << t.message();
  WriterOptions o;
  o.dir = dir.path("trace.jsonl") + "/sub";  // a file in the way
  EXPECT_FALSE(Writer::open(o).ok());
  EXPECT_FALSE(values_format_from_name("hdf5").ok());
}

}  // namespace
}  // namespace bitnet::trace
