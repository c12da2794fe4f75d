// trace-diff's judgement on hand-made traces: exact and tolerance differences, with and
// without values, shapes, NaN counts, and points present on one side only.
#include "trace/diff.h"

#include <gtest/gtest.h>

#include <cmath>

#include "test_util.h"
#include "trace/writer.h"

namespace bitnet::trace {
namespace {

// One position, two layers of attn_norm + q_proj, then logits; `edit` may change values.
Trace make_trace(const test::TempDir& dir, const std::string& name, bool values,
                 const std::function<void(const Point&, std::vector<float>*)>& edit = nullptr) {
  WriterOptions o;
  o.dir = dir.path(name);
  o.values = values ? ValuesFormat::kNpy : ValuesFormat::kNone;
  auto w = Writer::open(o);
  EXPECT_TRUE(w.ok());
  for (int layer = 0; layer < 2; ++layer) {
    for (Op op : {Op::kAttnNorm, Op::kQProj}) {
      std::vector<float> v(64);
      for (size_t i = 0; i < v.size(); ++i)
        v[i] = std::sin(static_cast<float>(i + 10 * layer + static_cast<int>(op)));
      const Point p{0, layer, op};
      if (edit) edit(p, &v);
      const int64_t shape[1] = {static_cast<int64_t>(v.size())};
      (*w)->record(p, v, shape);
    }
  }
  std::vector<float> logits(32, 1.0f);
  const int64_t shape[1] = {32};
  (*w)->record({0, -1, Op::kLogits}, logits, shape);
  EXPECT_TRUE((*w)->finish({}).ok());
  auto t = read_trace(o.dir);
  EXPECT_TRUE(t.ok()) << t.message();
  return *t;
}

TEST(TraceDiff, IdenticalTracesHaveNoDifference) {
  test::TempDir dir;
  const Trace a = make_trace(dir, "a", true), b = make_trace(dir, "b", false);
  auto r = diff_traces(a, b, {});
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_FALSE(r->differs());
  EXPECT_FALSE(r->first_differing.has_value());
  EXPECT_EQ(r->comparisons.size(), 5u);
  ASSERT_EQ(r->layers.size(), 3u);
  EXPECT_EQ(r->layers[0].label, "blk0");
  EXPECT_EQ(r->layers[2].label, "head");
  EXPECT_NE(to_text(*r).find("no difference"), std::string::npos);
  EXPECT_EQ(to_json(*r)["identical"], true);
}

TEST(TraceDiff, FirstDifferenceExactAndBeyondTolerance) {
  test::TempDir dir;
  // Layer 0 q_proj: a rounding-level change. Layer 1 attn_norm: a real divergence.
  auto edit = [](const Point& p, std::vector<float>* v) {
    if (p.layer == 0 && p.op == Op::kQProj) (*v)[3] = std::nextafter((*v)[3], 10.0f);
    if (p.layer == 1 && p.op == Op::kAttnNorm) {
      for (size_t i = 0; i < v->size(); i += 2) (*v)[i] = -(*v)[i];
    }
  };
  for (bool values : {true, false}) {
    const Trace a = make_trace(dir, values ? "a1" : "a0", values);
    const Trace b = make_trace(dir, values ? "b1" : "b0", values, edit);
    auto r = diff_traces(a, b, {});
    ASSERT_TRUE(r.ok()) << r.message();
    ASSERT_TRUE(r->first_differing.has_value());
    EXPECT_EQ(r->comparisons[*r->first_differing].a.name(), "t0/blk0/q_proj");
    EXPECT_FALSE(r->comparisons[*r->first_differing].beyond);
    if (values) {
      // Flipping signs keeps the rms: only the values show it.
      ASSERT_TRUE(r->first_beyond.has_value());
      const auto& c = r->comparisons[*r->first_beyond];
      EXPECT_EQ(c.a.name(), "t0/blk1/attn_norm");
      EXPECT_LT(c.cosine, 0.999);
      EXPECT_NE(c.reason.find("cosine"), std::string::npos);
      EXPECT_EQ(r->layers[1].first_beyond, "t0/blk1/attn_norm");
      EXPECT_GT(r->comparisons[*r->first_differing].cosine, 0.999999);
    } else {
      EXPECT_FALSE(r->differs());
    }
    auto j = to_json(*r);
    EXPECT_EQ(j["first_difference"]["name"], "t0/blk0/q_proj");
  }
}

TEST(TraceDiff, RmsToleranceShapesNanAndUnmatched) {
  test::TempDir dir;
  const Trace a = make_trace(dir, "a", false);
  const Trace scaled = make_trace(dir, "s", false, [](const Point& p, std::vector<float>* v) {
    if (p.layer == 1 && p.op == Op::kQProj) {
      for (float& x : *v) x *= 1.02f;
    }
  });
  auto r = diff_traces(a, scaled, {});
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r->first_beyond.has_value());
  EXPECT_EQ(r->comparisons[*r->first_beyond].a.name(), "t0/blk1/q_proj");
  EXPECT_NEAR(r->comparisons[*r->first_beyond].rel_rms, 0.02 / 1.02, 1e-4);
  auto loose = diff_traces(a, scaled, {.max_rel_rms = 0.05});
  ASSERT_TRUE(loose.ok());
  EXPECT_FALSE(loose->differs());

  const Trace nan = make_trace(dir, "n", true, [](const Point& p, std::vector<float>* v) {
    if (p.layer == 0 && p.op == Op::kAttnNorm) (*v)[0] = NAN;
  });
  auto rn = diff_traces(a, nan, {});
  ASSERT_TRUE(rn.ok());
  ASSERT_TRUE(rn->first_beyond.has_value());
  EXPECT_NE(rn->comparisons[*rn->first_beyond].reason.find("NaN"), std::string::npos);

  const Trace longer = make_trace(dir, "l", false, [](const Point& p, std::vector<float>* v) {
    if (p.layer == 1 && p.op == Op::kAttnNorm) v->push_back(0);
  });
  auto rs = diff_traces(a, longer, {});
  ASSERT_TRUE(rs.ok());
  EXPECT_NE(rs->comparisons[*rs->first_beyond].reason.find("shape [64] vs [65]"),
            std::string::npos);

  Trace fewer = a;
  fewer.records.pop_back();
  auto ru = diff_traces(a, fewer, {});
  ASSERT_TRUE(ru.ok());
  EXPECT_EQ(ru->only_a, 1);
  EXPECT_EQ(ru->only_b, 0);
  EXPECT_FALSE(ru->differs());

  Trace none = a;
  none.records.clear();
  EXPECT_FALSE(diff_traces(a, none, {}).ok());
}

}  // namespace
}  // namespace bitnet::trace
