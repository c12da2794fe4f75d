// Op-local replay (crossval/replay.h) without a reference engine: on the values our own forward
// pass traced, replay must reproduce every op bit for bit (it is our implementation, fed the
// same inputs); and each op's rounding bound must admit a difference of half of it while a
// change of 1e-4 relative (the mutation crossval's tests inject) lies beyond it.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>
#include <tuple>

#include "crossval/replay.h"
#include "model/context.h"
#include "model/observe/trace_observer.h"
#include "synth/synth.h"
#include "test_util.h"
#include "trace/record.h"

namespace bitnet::crossval {
namespace {

using Key = std::tuple<int, int, int>;

class Collect final : public trace::Sink {
 public:
  bool wants(const trace::Point&) const override { return true; }
  void record(const trace::Point& p, std::span<const float> values,
              std::span<const int64_t>) override {
    values_[{p.position, p.layer, static_cast<int>(p.op)}].assign(values.begin(), values.end());
  }
  void record_codes(const trace::Point&, trace::QuantGrouping, std::span<const int8_t>,
                    std::span<const float>) override {}
  std::map<Key, std::vector<float>> values_;
};

struct Traced {
  std::unique_ptr<model::Model> model;
  std::vector<int32_t> tokens;
  std::map<Key, std::vector<float>> values;
};

// A tiny model of `arch` and `weights`, five tokens evaluated as a prompt batch and two single
// steps (both paths of the forward pass), every op traced.
Traced trace_tiny(const test::TempDir& dir, model::Arch arch, gguf::TensorType weights,
                  bool kv_f16) {
  synth::SynthOptions o;
  o.config = *synth::preset_config("tiny", arch);
  o.weight_type = weights;
  o.vocab_path = std::string(BITNET_REFERENCE_DIR) + "/models/ggml-vocab-llama-bpe.gguf";
  o.seed = 5;
  const std::string path = dir.path(std::string(model::arch_name(arch)) + "-" +
                                    std::string(gguf::tensor_type_name(weights)) + ".gguf");
  EXPECT_TRUE(synth::write_synthetic_model(o, path).ok());
  Traced t;
  auto m = model::Model::load(path);
  EXPECT_TRUE(m.ok()) << m.message();
  t.model = std::move(*m);
  model::ContextOptions co;
  co.n_ctx = 16;
  co.kv_f16 = kv_f16;
  auto ctx = model::Context::create(*t.model, co);
  EXPECT_TRUE(ctx.ok()) << ctx.message();
  Collect sink;
  model::TraceObserver tracer(&sink);
  (*ctx)->set_observer(&tracer);
  t.tokens = {1, 450, 4996, 17354, 1701};
  std::vector<float> logits;
  EXPECT_TRUE((*ctx)->eval(t.tokens, true, &logits).ok());
  for (const int32_t next : {3, 99}) {
    EXPECT_TRUE((*ctx)->eval(std::span(&next, 1), false, &logits).ok());
    t.tokens.push_back(next);
  }
  t.values = std::move(sink.values_);
  return t;
}

TraceValues lookup(const std::map<Key, std::vector<float>>& v) {
  return [&v](int p, int l, trace::Op op) -> const std::vector<float>* {
    auto it = v.find({p, l, static_cast<int>(op)});
    return it == v.end() ? nullptr : &it->second;
  };
}

struct Family {
  model::Arch arch;
  gguf::TensorType weights;
  bool kv_f16;
};

class ReplayTest : public ::testing::TestWithParam<Family> {};

TEST_P(ReplayTest, ReproducesEveryTracedOpOfOurForwardPass) {
  test::TempDir dir;
  const Family f = GetParam();
  Traced t = trace_tiny(dir, f.arch, f.weights, f.kv_f16);
  Replayer rp(*t.model, f.kv_f16, t.tokens, nullptr);
  std::set<int> ops_seen;
  for (const auto& [key, values] : t.values) {
    const auto [pos, layer, op] = key;
    auto r = rp.run(lookup(t.values), pos, layer, static_cast<trace::Op>(op), false, false);
    ASSERT_TRUE(r.ok()) << r.message();
    const LocalError e = local_error(r->out, values, {});
    EXPECT_TRUE(e.identical) << "position " << pos << " layer " << layer << " "
                             << trace::op_name(static_cast<trace::Op>(op)) << ": element " << e.at
                             << " differs by " << e.max_abs;
    ops_seen.insert(op);
  }
  const bool sub_norms = model::is_bitnet_family(f.arch);
  EXPECT_EQ(ops_seen.size(), static_cast<size_t>(trace::Op::kCount) - (sub_norms ? 0 : 2));
}

// Each op's bound admits another engine landing half of it away (rounded to float, so up to the
// whole bound where it is a couple of ulps), and not the same op scaled by
// 1 + 1e-4 (at the element where that matters most): the bounds are tight enough to find such a
// change on their own, without the self-check that also catches it.
TEST_P(ReplayTest, BoundsAdmitRoundingButNotA1e4Change) {
  test::TempDir dir;
  const Family f = GetParam();
  Traced t = trace_tiny(dir, f.arch, f.weights, f.kv_f16);
  Replayer rp(*t.model, f.kv_f16, t.tokens, nullptr);
  for (const auto& [key, values] : t.values) {
    const auto [pos, layer, op_i] = key;
    const auto op = static_cast<trace::Op>(op_i);
    auto r = rp.run(lookup(t.values), pos, layer, op, true, true);
    ASSERT_TRUE(r.ok()) << r.message();
    ASSERT_EQ(r->bound.size(), r->out.size());
    std::vector<float> near(r->out), scaled(r->out);
    for (size_t i = 0; i < near.size(); ++i) {
      near[i] = static_cast<float>(r->out[i] + (i % 2 ? 0.5 : -0.5) * r->bound[i]);
      scaled[i] = r->out[i] * (1.0f + 1e-4f);
    }
    const std::string where = "position " + std::to_string(pos) + " layer " +
                              std::to_string(layer) + " " + std::string(trace::op_name(op));
    EXPECT_LE(local_error(r->out, near, r->bound).worst, 1.0) << where;
    EXPECT_GT(local_error(r->out, scaled, r->bound).worst, 1.0) << where;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Families, ReplayTest,
    ::testing::Values(Family{model::Arch::kBitnet, gguf::TensorType::TQ2_0, true},
                      Family{model::Arch::kBitnetB158, gguf::TensorType::I2_S, true},
                      Family{model::Arch::kLlama, gguf::TensorType::TQ1_0, false},
                      Family{model::Arch::kBitnet, gguf::TensorType::F16, true}),
    [](const auto& p) {
      return std::string(model::arch_name(p.param.arch)) == "bitnet-b1.58"
                 ? std::string("bitnet_b158_i2_s")
                 : std::string(model::arch_name(p.param.arch)) + "_" +
                       std::string(gguf::tensor_type_name(p.param.weights)) +
                       (p.param.kv_f16 ? "_f16kv" : "_f32kv");
    });

TEST(LocalError, CountsInUnitsOfTheBound) {
  const std::vector<float> a = {1.0f, 2.0f, -3.0f}, b = {1.0f, 2.5f, -3.0f};
  const std::vector<double> bound = {0.0, 1.0, 0.0};
  LocalError e = local_error(a, b, bound);
  EXPECT_FALSE(e.identical);
  EXPECT_DOUBLE_EQ(e.worst, 0.5);
  EXPECT_EQ(e.at, 1);
  // A difference where the bound is zero is beyond it; so is a NaN.
  e = local_error(a, std::vector<float>{1.5f, 2.0f, -3.0f}, bound);
  EXPECT_TRUE(std::isinf(e.worst));
  e = local_error(a, std::vector<float>{1.0f, NAN, -3.0f}, bound);
  EXPECT_TRUE(std::isinf(e.worst));
  EXPECT_TRUE(local_error(a, a, bound).identical);
  EXPECT_TRUE(std::isinf(local_error(a, std::vector<float>{1.0f}, bound).worst));  // length
}

}  // namespace
}  // namespace bitnet::crossval
