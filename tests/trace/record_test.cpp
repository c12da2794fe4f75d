// Trace records on their own: names, statistics, JSON round trip, forward order, selection,
// and BLAKE3 checked against Debian's b3sum.
#include "trace/record.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "trace/selection.h"
#include "trace_test_util.h"

namespace bitnet::trace {
namespace {

TEST(TraceRecord, NamesFollowTheOneTable) {
  EXPECT_EQ(point_name(0, -1, Op::kEmbeddings), "t0/embeddings");
  EXPECT_EQ(point_name(7, 12, Op::kAttnScoresSoftmax), "t7/blk12/attn_scores_softmax");
  EXPECT_EQ(point_name(3, 0, Op::kAttnNorm, Kind::kQ8), "t3/blk0/attn_norm/q8");
  EXPECT_EQ(point_name(2, -1, Op::kLogits), "t2/logits");
  EXPECT_EQ(flat_name(0, 0, Op::kAttnNorm), "t0_blk0_attn_norm");  // the seed's file names
  EXPECT_EQ(kOpNames.size(), static_cast<size_t>(Op::kCount));
  for (size_t i = 0; i < kOpNames.size(); ++i) {
    const Op op = static_cast<Op>(i);
    EXPECT_EQ(op_from_name(kOpNames[i]), op);
    const int layer = is_block_op(op) ? 4 : -1;
    for (Kind kind : {Kind::kF32, Kind::kQ8}) {
      if (kind == Kind::kQ8 && !feeds_bitlinear(op)) continue;
      for (const auto& name : {point_name(5, layer, op, kind), flat_name(5, layer, op, kind)}) {
        const auto p = parse_point_name(name);
        ASSERT_TRUE(p.has_value()) << name;
        EXPECT_EQ(p->position, 5);
        EXPECT_EQ(p->layer, layer);
        EXPECT_EQ(p->op, op);
        EXPECT_EQ(p->kind, kind);
      }
    }
  }
  for (const char* bad :
       {"", "t", "x0/embeddings", "t0/blk0/embeddings", "t0/q_proj", "t0/logits/q8",
        "t0/blk0/q_proj/q8", "t-1/logits", "t0/blkx/q_proj", "t0/blk0/nope"}) {
    EXPECT_FALSE(parse_point_name(bad).has_value()) << bad;
  }
}

TEST(TraceRecord, StatisticsCountNonFiniteValuesApart) {
  const std::vector<float> v = {1.0f, -3.0f, 2.0f, NAN, INFINITY, -INFINITY, 0.0f};
  const Stats s = compute_stats(v);
  EXPECT_EQ(s.nan_count, 1);
  EXPECT_EQ(s.inf_count, 2);
  EXPECT_DOUBLE_EQ(s.mean, 0.0);
  EXPECT_DOUBLE_EQ(s.rms, std::sqrt(14.0 / 4.0));
  EXPECT_EQ(s.min, -3.0);
  EXPECT_EQ(s.max, 2.0);
  EXPECT_EQ(s.absmax, 3.0);
  const Stats empty = compute_stats({});
  EXPECT_EQ(empty.rms, 0.0);
}

TEST(TraceRecord, JsonRoundTrip) {
  const std::vector<float> v = {0.5f, -1.25f, 3.0f, 0.0f, 2.0f, -0.75f};
  const int64_t shape[2] = {2, 3};
  Record r = make_record(4, 2, Op::kAttnScoresSoftmax, shape, v);
  r.values_file = "values.safetensors";
  r.values_key = r.name();
  auto back = record_from_json(nlohmann::json::parse(to_json(r).dump()));
  ASSERT_TRUE(back.ok()) << back.message();
  EXPECT_EQ(to_json(*back), to_json(r));
  EXPECT_EQ(back->num_elements, 6);
  EXPECT_EQ(back->shape, (std::vector<int64_t>{2, 3}));

  const std::vector<int8_t> codes = {127, -64, 0, 1, -128, 5, 6, 7};
  const std::vector<float> scales = {2.0f, 0.5f};
  Record q = make_quantized_record(0, 1, Op::kFfnNorm, QuantGrouping::kQ8K, codes, scales);
  EXPECT_EQ(q.name(), "t0/blk1/ffn_norm/q8");
  EXPECT_EQ(q.dtype(), "i8");
  EXPECT_DOUBLE_EQ(q.stats.max, 254.0);  // 127 * 2 (Q8_K: value = code * d)
  auto qb = record_from_json(nlohmann::json::parse(to_json(q).dump()));
  ASSERT_TRUE(qb.ok()) << qb.message();
  EXPECT_EQ(to_json(*qb), to_json(q));

  // Per-token codes divide by the multiplier s = 127 / max.
  const Record p = make_quantized_record(0, 1, Op::kFfnNorm, QuantGrouping::kPerToken, codes,
                                         std::vector<float>{127.0f});
  EXPECT_DOUBLE_EQ(p.stats.max, 1.0);

  // The seed-compatible object has exactly the seed's fields.
  const auto seed = to_seed_json(r);
  std::vector<std::string> keys;
  for (const auto& [k, val] : seed.items()) keys.push_back(k);
  EXPECT_EQ(keys,
            (std::vector<std::string>{"name", "shape", "dtype", "blake3", "rms", "num_elements"}));
  auto from_seed = record_from_json(nlohmann::json::parse(seed.dump()));
  ASSERT_TRUE(from_seed.ok()) << from_seed.message();
  EXPECT_EQ(from_seed->name(), r.name());
  EXPECT_EQ(from_seed->blake3, r.blake3);

  EXPECT_FALSE(
      record_from_json(nlohmann::json::parse(R"({"op":"nope","position":0,"shape":[1]})")).ok());
  EXPECT_FALSE(record_from_json(nlohmann::json::parse("[1,2]")).ok());
}

TEST(TraceRecord, ForwardOrder) {
  const float x = 1;
  const int64_t s[1] = {1};
  std::vector<Record> v = {make_record(1, -1, Op::kEmbeddings, s, {&x, 1}),
                           make_record(0, -1, Op::kLogits, s, {&x, 1}),
                           make_record(0, 1, Op::kAttnNorm, s, {&x, 1}),
                           make_record(0, 0, Op::kQProj, s, {&x, 1}),
                           make_quantized_record(0, 0, Op::kAttnNorm, QuantGrouping::kPerToken,
                                                 std::vector<int8_t>{1}, std::vector<float>{1}),
                           make_record(0, 0, Op::kAttnNorm, s, {&x, 1}),
                           make_record(0, -1, Op::kFinalNorm, s, {&x, 1}),
                           make_record(0, -1, Op::kEmbeddings, s, {&x, 1})};
  std::sort(v.begin(), v.end(), forward_order_less);
  std::vector<std::string> names;
  for (const auto& r : v) names.push_back(r.name());
  EXPECT_EQ(names,
            (std::vector<std::string>{"t0/embeddings", "t0/blk0/attn_norm", "t0/blk0/attn_norm/q8",
                                      "t0/blk0/q_proj", "t0/blk1/attn_norm", "t0/final_norm",
                                      "t0/logits", "t1/embeddings"}));
}

TEST(TraceRecord, Blake3MatchesB3sum) {
  EXPECT_EQ(blake3_hex("", 0), "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262");
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  // Sizes around BLAKE3's 1 KiB chunks and a logits-sized row.
  for (size_t n :
       {size_t{1}, size_t{255}, size_t{256}, size_t{257}, size_t{2560}, size_t{128256}}) {
    std::vector<float> v(n);
    for (float& x : v) x = nd(rng);
    const int64_t shape[1] = {static_cast<int64_t>(n)};
    const Record r = make_record(0, -1, Op::kLogits, shape, v);
    EXPECT_EQ(r.blake3, test::b3sum_of(v.data(), v.size() * 4)) << n << " floats";
  }
  std::vector<int8_t> codes(2560);
  for (size_t i = 0; i < codes.size(); ++i) codes[i] = static_cast<int8_t>(i * 37);
  const std::vector<float> scales = {0.25f, 3.0f};
  const Record q = make_quantized_record(0, 0, Op::kAttnNorm, QuantGrouping::kQ8K, codes, scales);
  EXPECT_EQ(q.blake3, test::b3sum_of(codes.data(), codes.size()));
  EXPECT_EQ(q.scales_blake3, test::b3sum_of(scales.data(), scales.size() * 4));
}

TEST(TraceSelection, GlobsAndPositions) {
  auto all = Selection::parse("", "");
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->all());
  EXPECT_TRUE(Selection::parse("*", "all")->all());

  auto s = Selection::parse("*/blk0/*, */logits", "0,3-4,10-");
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_TRUE(s->selected(0, 0, Op::kQProj, Kind::kF32));
  EXPECT_TRUE(s->selected(3, 0, Op::kAttnNorm, Kind::kQ8));
  EXPECT_TRUE(s->selected(12, -1, Op::kLogits, Kind::kF32));
  EXPECT_FALSE(s->selected(1, 0, Op::kQProj, Kind::kF32));  // position
  EXPECT_FALSE(s->selected(4, 1, Op::kQProj, Kind::kF32));  // glob
  EXPECT_FALSE(s->selected(0, -1, Op::kFinalNorm, Kind::kF32));
  EXPECT_TRUE(s->position_selected(1000000));
  EXPECT_FALSE(s->position_selected(9));

  for (const char* bad : {"x", "3-1", "-2", "1-2-3", ",", "1,a"}) {
    EXPECT_FALSE(Selection::parse("", bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace bitnet::trace
