#include "crossval/replay.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/fp16.h"
#include "kernels/attention.h"
#include "kernels/elementwise.h"
#include "kernels/matmul.h"
#include "quant/tq1_0.h"
#include "quant/tq2_0.h"

namespace bitnet::crossval {

using trace::Op;

namespace {

constexpr double u = kRoundoff;

double sum_factor(int64_t n) { return 2.0 * kLambda * std::sqrt(static_cast<double>(n)) * u; }

// The elements of row r of a ternary matrix as floats (value * block scale).
Status ternary_row(const kernels::WeightMatrix& w, int64_t r, float* out) {
  const auto n = static_cast<size_t>(w.k);
  switch (w.type) {
    case gguf::TensorType::TQ2_0:
      return quant::dequantize_tq2_0(w.row(r), n, out);
    case gguf::TensorType::TQ1_0:
      return quant::dequantize_tq1_0(w.row(r), n, out);
    default:
      return make_error("no block bound for weight type %s",
                        std::string(gguf::tensor_type_name(w.type)).c_str());
  }
}

// The bound of a product with a float matrix (projection or head), r.out = scale * W x:
// 2 lambda sqrt(k) u scale sum_j |w_ij x_j| + ulps u |y_i|.
void float_product_bound(const kernels::WeightMatrix& w, const std::vector<float>& x, double scale,
                         double ulps, Replayed& r) {
  r.bound.resize(r.out.size());
  std::vector<float> row(static_cast<size_t>(w.k));
  const double fac = sum_factor(w.k);
  for (int64_t o = 0; o < w.n_out; ++o) {
    kernels::row_to_float(w, o, row.data());
    double a = 0;
    for (int64_t j = 0; j < w.k; ++j)
      a += std::fabs(static_cast<double>(row[static_cast<size_t>(j)]) * x[static_cast<size_t>(j)]);
    r.bound[static_cast<size_t>(o)] =
        fac * a * scale + ulps * u * std::fabs(r.out[static_cast<size_t>(o)]);
  }
}

}  // namespace

Replayer::Replayer(const model::Model& m, bool kv_f16, std::vector<int32_t> tokens,
                   ThreadPool* pool)
    : m_(m),
      c_(m.config()),
      numerics_(model::numerics_for(m, kv_f16)),
      kv_f16_(kv_f16),
      tokens_(std::move(tokens)),
      pool_(pool) {
  rope_.init(c_);
}

std::vector<ReplayInput> Replayer::inputs(int layer, Op op) const {
  const bool sub_norms = layer >= 0 && static_cast<size_t>(layer) < m_.layers().size() &&
                         !m_.layers()[static_cast<size_t>(layer)].attn_sub_norm.empty();
  const ReplayInput block_input = layer <= 0 ? ReplayInput{-1, Op::kEmbeddings, false}
                                             : ReplayInput{layer - 1, Op::kFfnResidual, false};
  switch (op) {
    case Op::kEmbeddings:
      return {};
    case Op::kAttnNorm:
      return {block_input};
    case Op::kQProj:
    case Op::kKProj:
    case Op::kVProj:
      return {{layer, Op::kAttnNorm, false}};
    case Op::kQRope:
      return {{layer, Op::kQProj, false}};
    case Op::kKRope:
      return {{layer, Op::kKProj, false}};
    case Op::kAttnScoresSoftmax:
      return {{layer, Op::kQRope, false}, {layer, Op::kKRope, true}};
    case Op::kAttnOut:
      return {{layer, Op::kAttnScoresSoftmax, false}, {layer, Op::kVProj, true}};
    case Op::kAttnSubNorm:
      return {{layer, Op::kAttnOut, false}};
    case Op::kOProj:
      return {{layer, sub_norms ? Op::kAttnSubNorm : Op::kAttnOut, false}};
    case Op::kAttnResidual:
      return {block_input, {layer, Op::kOProj, false}};
    case Op::kFfnNorm:
      return {{layer, Op::kAttnResidual, false}};
    case Op::kGateProj:
    case Op::kUpProj:
      return {{layer, Op::kFfnNorm, false}};
    case Op::kFfnAct:
      return {{layer, Op::kGateProj, false}, {layer, Op::kUpProj, false}};
    case Op::kFfnSubNorm:
      return {{layer, Op::kFfnAct, false}};
    case Op::kDownProj:
      return {{layer, sub_norms ? Op::kFfnSubNorm : Op::kFfnAct, false}};
    case Op::kFfnResidual:
      return {{layer, Op::kAttnResidual, false}, {layer, Op::kDownProj, false}};
    case Op::kFinalNorm:
      return {{static_cast<int>(c_.n_layers) - 1, Op::kFfnResidual, false}};
    case Op::kLogits:
      return {{-1, Op::kFinalNorm, false}};
    case Op::kCount:
      break;
  }
  return {};
}

Result<Replayed> Replayer::run(const TraceValues& in, int pos, int layer, Op op, bool raw_probs,
                               bool with_bound) {
  const kernels::Kernels& kern = m_.kernels();
  const auto need = [&](int p, int l, Op o, int64_t n) -> Result<const std::vector<float>*> {
    const std::vector<float>* v = in(p, l, o);
    const std::string name =
        (l >= 0 ? "blk" + std::to_string(l) + "/" : std::string()) + std::string(op_name(o));
    if (v == nullptr) return make_error("%s at position %d was not traced", name.c_str(), p);
    if (static_cast<int64_t>(v->size()) != n) {
      return make_error("%s at position %d holds %zu values, not %lld", name.c_str(), p, v->size(),
                        static_cast<long long>(n));
    }
    return v;
  };
  const int64_t d = c_.n_embd, f = c_.n_ff, dkv = c_.n_embd_kv();
  const int hd = static_cast<int>(c_.head_dim());
  const int n_heads = static_cast<int>(c_.n_heads), n_kv_heads = static_cast<int>(c_.n_kv_heads);
  if (layer >= static_cast<int>(c_.n_layers) || (trace::is_block_op(op) && layer < 0)) {
    return make_error("layer %d is not one of the model's", layer);
  }
  model::Numerics numerics = numerics_;
  if (f32_operands_) {
    numerics.f16_attention_operands = false;
    numerics.f16_head_input = false;
    numerics.f16_float_matmul_input = false;
  }
  Replayed r;
  auto bound_rel = [&](double ulps) {
    if (!with_bound) return;
    r.bound.resize(r.out.size());
    for (size_t i = 0; i < r.out.size(); ++i) r.bound[i] = ulps * u * std::fabs(r.out[i]);
  };

  switch (op) {
    case Op::kEmbeddings: {
      if (pos < 0 || static_cast<size_t>(pos) >= tokens_.size())
        return make_error("no token at position %d", pos);
      const int32_t t = tokens_[static_cast<size_t>(pos)];
      if (t < 0 || t >= static_cast<int32_t>(c_.n_vocab))
        return make_error("token %d is not in the vocabulary", t);
      r.out.resize(static_cast<size_t>(d));
      m_.embedding_row(t, r.out.data());
      bound_rel(2);
      return r;
    }
    case Op::kAttnNorm:
    case Op::kAttnSubNorm:
    case Op::kFfnNorm:
    case Op::kFfnSubNorm:
    case Op::kFinalNorm: {
      const ReplayInput src = inputs(layer, op).front();
      const int64_t n = op == Op::kFfnSubNorm ? f : d;
      BITNET_ASSIGN_OR_RETURN(const std::vector<float>* x, need(pos, src.layer, src.op, n));
      const model::LayerWeights* L =
          layer >= 0 ? &m_.layers()[static_cast<size_t>(layer)] : nullptr;
      const std::vector<float>& w = op == Op::kAttnNorm      ? L->attn_norm
                                    : op == Op::kAttnSubNorm ? L->attn_sub_norm
                                    : op == Op::kFfnNorm     ? L->ffn_norm
                                    : op == Op::kFfnSubNorm  ? L->ffn_sub_norm
                                                             : m_.output_norm();
      if (static_cast<int64_t>(w.size()) != n) return make_error("the model has no such norm");
      r.out.resize(static_cast<size_t>(n));
      kernels::rms_norm(kern, x->data(), w.data(), n, c_.rms_eps, r.out.data());
      bound_rel(kLambda * std::sqrt(static_cast<double>(n)) + 8.0);
      return r;
    }
    case Op::kQProj:
    case Op::kKProj:
    case Op::kVProj:
    case Op::kOProj:
    case Op::kGateProj:
    case Op::kUpProj:
    case Op::kDownProj: {
      const model::Projection& p = projection_of(m_.layers()[static_cast<size_t>(layer)], op);
      const kernels::WeightMatrix& w = p.w;
      const ReplayInput src = inputs(layer, op).front();
      BITNET_ASSIGN_OR_RETURN(const std::vector<float>* x, need(pos, src.layer, src.op, w.k));
      r.out.resize(static_cast<size_t>(w.n_out));
      const double scale_ulps = p.has_scale ? 2.0 : 0.0;
      if (kernels::is_ternary(w.type)) {
        kernels::QuantizedActivations qa;
        kernels::quantize_activations(kern, kernels::act_quant_for(w.type), x->data(), 1, w.k, &qa);
        kernels::matmul_ternary(kern, w, qa, r.out.data(), pool_);
        if (p.has_scale) {
          for (float& v : r.out) v *= p.scale;
        }
        if (!with_bound) return r;
        if (qa.kind == kernels::ActQuant::kPerTokenInt8) {
          bound_rel(8.0 + scale_ulps);
          return r;
        }
        // A_i = sum_j |q_j w_ij| d_act_b (w_ij = code * d_w_b): the integer products are exact,
        // but an engine may convert partial sums of any grouping to float before adding them
        // (ggml's SIMD variants: one per vector lane and block, then the lanes).
        const int64_t nb = w.k / kernels::kQ8KBlock;
        r.bound.resize(r.out.size());
        std::vector<float> row(static_cast<size_t>(w.k));
        const double fac = sum_factor(16 * nb + 16);
        for (int64_t o = 0; o < w.n_out; ++o) {
          BITNET_TRY(ternary_row(w, o, row.data()));
          double a = 0;
          for (int64_t b = 0; b < nb; ++b) {
            double acc = 0;
            for (int64_t j = b * kernels::kQ8KBlock; j < (b + 1) * kernels::kQ8KBlock; ++j)
              acc += std::fabs(static_cast<double>(qa.q[static_cast<size_t>(j)]) *
                               row[static_cast<size_t>(j)]);
            a += acc * std::fabs(qa.scales[static_cast<size_t>(b)]);
          }
          const double y = std::fabs(r.out[static_cast<size_t>(o)]);
          r.bound[static_cast<size_t>(o)] =
              fac * a * (p.has_scale ? std::fabs(p.scale) : 1.0) + (6.0 + scale_ulps) * u * y;
        }
        return r;
      }
      std::vector<float> xin(*x);
      if (w.type != gguf::TensorType::F32 && numerics.f16_float_matmul_input)
        kernels::round_to_f16(kern, xin.data(), w.k);
      kernels::matmul_float(kern, w, xin.data(), 1, r.out.data(), pool_);
      if (p.has_scale) {
        for (float& v : r.out) v *= p.scale;
      }
      if (with_bound) {
        float_product_bound(w, xin, p.has_scale ? std::fabs(p.scale) : 1.0, 4.0 + scale_ulps, r);
      }
      return r;
    }
    case Op::kQRope:
    case Op::kKRope: {
      const int heads = op == Op::kQRope ? n_heads : n_kv_heads;
      const ReplayInput src = inputs(layer, op).front();
      BITNET_ASSIGN_OR_RETURN(const std::vector<float>* x,
                              need(pos, src.layer, src.op, static_cast<int64_t>(heads) * hd));
      rope_.ensure(pos + 1);
      r.out = *x;
      const model::RopeMode mode = model::rope_mode(c_.arch);
      model::rope_heads(r.out.data(), heads, hd, rope_.cos(pos), rope_.sin(pos), mode);
      if (!with_bound) return r;
      r.bound.resize(r.out.size());
      const int half = hd / 2;
      const int a_step = mode == model::RopeMode::kNorm ? 2 : 1;
      const int b_off = mode == model::RopeMode::kNorm ? 1 : half;
      const float* cs = rope_.cos(pos);
      const float* sn = rope_.sin(pos);
      for (int h = 0; h < heads; ++h) {
        for (int i = 0; i < half; ++i) {
          const size_t a = static_cast<size_t>(h) * hd + static_cast<size_t>(i * a_step);
          const size_t b = a + static_cast<size_t>(b_off);
          const double x0 = (*x)[a], x1 = (*x)[b];
          const double mag = std::fabs(x0 * cs[i]) + std::fabs(x1 * sn[i]);
          r.bound[a] = 4 * u * mag + 2 * u * std::fabs(r.out[a]);
          r.bound[b] =
              4 * u * (std::fabs(x0 * sn[i]) + std::fabs(x1 * cs[i])) + 2 * u * std::fabs(r.out[b]);
        }
      }
      return r;
    }
    case Op::kAttnScoresSoftmax:
    case Op::kAttnOut: {
      const int n_kv = pos + 1;
      const int group = n_heads / n_kv_heads;
      const bool scores = op == Op::kAttnScoresSoftmax;
      // K transposed (element i of position j at i * n_kv + j) or V by position, per KV head,
      // as the cache holds them.
      const Op kv_op = scores ? Op::kKRope : Op::kVProj;
      std::vector<std::vector<float>> kv_f(static_cast<size_t>(n_kv_heads),
                                           std::vector<float>(static_cast<size_t>(hd) * n_kv));
      for (int j = 0; j < n_kv; ++j) {
        BITNET_ASSIGN_OR_RETURN(const std::vector<float>* kvj, need(j, layer, kv_op, dkv));
        for (int g = 0; g < n_kv_heads; ++g) {
          for (int i = 0; i < hd; ++i) {
            float v = (*kvj)[static_cast<size_t>(g) * hd + static_cast<size_t>(i)];
            if (kv_f16_) v = fp16_to_fp32(fp32_to_fp16(v));
            const size_t at = scores ? static_cast<size_t>(i) * n_kv + static_cast<size_t>(j)
                                     : static_cast<size_t>(j) * hd + static_cast<size_t>(i);
            kv_f[static_cast<size_t>(g)][at] = v;
          }
        }
      }
      std::vector<std::vector<uint16_t>> kv_h;
      if (kv_f16_) {
        for (const auto& v : kv_f) {
          std::vector<uint16_t>& h = kv_h.emplace_back(v.size());
          for (size_t i = 0; i < v.size(); ++i) h[i] = fp32_to_fp16(v[i]);
        }
      }
      auto head_for = [&](int g, const float* q) {
        kernels::AttentionHead a;
        a.q = q;
        a.f16 = kv_f16_;
        a.head_dim = hd;
        a.n_kv = n_kv;
        a.scale = 1.0f / std::sqrt(static_cast<float>(hd));
        const void* base = kv_f16_ ? static_cast<const void*>(kv_h[static_cast<size_t>(g)].data())
                                   : static_cast<const void*>(kv_f[static_cast<size_t>(g)].data());
        if (scores) {
          a.k = base;
          a.k_stride = n_kv;
        } else {
          a.v = base;
          a.v_stride = hd;
        }
        return a;
      };
      if (scores) {
        BITNET_ASSIGN_OR_RETURN(const std::vector<float>* q,
                                need(pos, layer, Op::kQRope, static_cast<int64_t>(n_heads) * hd));
        r.out.resize(static_cast<size_t>(n_heads) * n_kv);
        if (with_bound) r.bound.resize(r.out.size());
        const bool round_p = numerics.f16_attention_operands && !raw_probs;
        std::vector<float> qh(static_cast<size_t>(hd));
        for (int h = 0; h < n_heads; ++h) {
          std::memcpy(qh.data(), q->data() + static_cast<size_t>(h) * hd, hd * sizeof(float));
          if (numerics.f16_attention_operands) kernels::round_to_f16(kern, qh.data(), hd);
          const int g = h / group;
          const kernels::AttentionHead a = head_for(g, qh.data());
          float* s = r.out.data() + static_cast<size_t>(h) * n_kv;
          kernels::attention_scores(kern, a, s);
          double dmax = 0;
          if (with_bound) {
            const std::vector<float>& kg = kv_f[static_cast<size_t>(g)];
            for (int j = 0; j < n_kv; ++j) {
              double mag = 0;
              for (int i = 0; i < hd; ++i)
                mag += std::fabs(static_cast<double>(qh[static_cast<size_t>(i)]) *
                                 kg[static_cast<size_t>(i) * n_kv + static_cast<size_t>(j)]);
              const double ds = sum_factor(hd) * a.scale * mag + 2 * u * std::fabs(s[j]);
              dmax = std::max(dmax, ds);
            }
          }
          kernels::softmax_probs(kern, s, n_kv, round_p);
          if (with_bound) {
            const double rel = 2 * dmax + sum_factor(n_kv) + 8 * u;
            for (int j = 0; j < n_kv; ++j)
              r.bound[static_cast<size_t>(h) * n_kv + static_cast<size_t>(j)] =
                  rel * std::fabs(s[j]);
          }
        }
        return r;
      }
      BITNET_ASSIGN_OR_RETURN(
          const std::vector<float>* probs,
          need(pos, layer, Op::kAttnScoresSoftmax, static_cast<int64_t>(n_heads) * n_kv));
      r.out.resize(static_cast<size_t>(n_heads) * hd);
      if (with_bound) r.bound.resize(r.out.size());
      std::vector<float> p(static_cast<size_t>(n_kv));
      for (int h = 0; h < n_heads; ++h) {
        std::memcpy(p.data(), probs->data() + static_cast<size_t>(h) * n_kv, n_kv * sizeof(float));
        if (numerics.f16_attention_operands) kernels::round_to_f16(kern, p.data(), n_kv);
        const int g = h / group;
        const kernels::AttentionHead a = head_for(g, nullptr);
        float* out = r.out.data() + static_cast<size_t>(h) * hd;
        kernels::attention_values(kern, a, p.data(), out);
        if (!with_bound) continue;
        const std::vector<float>& vg = kv_f[static_cast<size_t>(g)];
        for (int i = 0; i < hd; ++i) {
          double mag = 0;
          for (int j = 0; j < n_kv; ++j)
            mag += std::fabs(static_cast<double>(p[static_cast<size_t>(j)]) *
                             vg[static_cast<size_t>(j) * hd + static_cast<size_t>(i)]);
          r.bound[static_cast<size_t>(h) * hd + static_cast<size_t>(i)] =
              sum_factor(n_kv) * mag + 2 * u * std::fabs(out[i]);
        }
      }
      return r;
    }
    case Op::kAttnResidual:
    case Op::kFfnResidual: {
      const std::vector<ReplayInput> src = inputs(layer, op);
      BITNET_ASSIGN_OR_RETURN(const std::vector<float>* x, need(pos, src[0].layer, src[0].op, d));
      BITNET_ASSIGN_OR_RETURN(const std::vector<float>* y, need(pos, src[1].layer, src[1].op, d));
      r.out.resize(static_cast<size_t>(d));
      for (size_t i = 0; i < r.out.size(); ++i) r.out[i] = (*x)[i] + (*y)[i];
      bound_rel(2);
      return r;
    }
    case Op::kFfnAct: {
      BITNET_ASSIGN_OR_RETURN(const std::vector<float>* g, need(pos, layer, Op::kGateProj, f));
      BITNET_ASSIGN_OR_RETURN(const std::vector<float>* up, need(pos, layer, Op::kUpProj, f));
      r.out.resize(static_cast<size_t>(f));
      if (model::ffn_activation(c_.arch) == model::FfnActivation::kReluSquared) {
        kernels::relu_sqr_mul(kern, f, r.out.data(), g->data(), up->data());
        bound_rel(6);
      } else {
        kernels::swiglu(kern, f, r.out.data(), g->data(), up->data());
        bound_rel(16);
      }
      return r;
    }
    case Op::kLogits: {
      const kernels::WeightMatrix& head = m_.head();
      if (head.type == gguf::TensorType::Q8_0)
        return make_error("the Q8_0 head (--head-type q8_0) changes the logits by design");
      BITNET_ASSIGN_OR_RETURN(const std::vector<float>* x, need(pos, -1, Op::kFinalNorm, d));
      std::vector<float> xin(*x);
      if (head.type != gguf::TensorType::F32 && numerics.f16_head_input)
        kernels::round_to_f16(kern, xin.data(), d);
      r.out.resize(static_cast<size_t>(head.n_out));
      kernels::matmul_float(kern, head, xin.data(), 1, r.out.data(), pool_);
      if (with_bound) float_product_bound(head, xin, 1.0, 4.0, r);
      return r;
    }
    case Op::kCount:
      break;
  }
  return make_error("op %d cannot be replayed", static_cast<int>(op));
}

const model::Projection& projection_of(const model::LayerWeights& L, Op op) {
  switch (op) {
    case Op::kQProj:
      return L.q;
    case Op::kKProj:
      return L.k;
    case Op::kVProj:
      return L.v;
    case Op::kOProj:
      return L.o;
    case Op::kGateProj:
      return L.gate;
    case Op::kUpProj:
      return L.up;
    default:
      return L.down;
  }
}

std::string bound_rule(Op op, gguf::TensorType weight_type) {
  switch (op) {
    case Op::kEmbeddings:
      return "2u |y_i| (a dequantized row)";
    case Op::kAttnNorm:
    case Op::kAttnSubNorm:
    case Op::kFfnNorm:
    case Op::kFfnSubNorm:
    case Op::kFinalNorm:
      return "|y_i| (lambda sqrt(n) u + 8u) (mean of n squares, square root, divide, multiplies)";
    case Op::kQRope:
    case Op::kKRope:
      return "4u (|x0 cos| + |x1 sin|) + 2u |y_i| per rotated pair";
    case Op::kAttnScoresSoftmax:
      return "p_j (2 D + 2 lambda sqrt(n_kv) u + 8u), D = the head's largest score bound "
             "2 lambda sqrt(hd) u scale sum_i |q_i k_ji| + 2u |s_j|";
    case Op::kAttnOut:
      return "2 lambda sqrt(n_kv) u sum_j |p_j v_ji| + 2u |y_i|";
    case Op::kAttnResidual:
    case Op::kFfnResidual:
      return "2u |y_i| (one rounding)";
    case Op::kFfnAct:
      return "6u |y_i| (ReLU^2) or 16u |y_i| (SiLU)";
    case Op::kLogits:
      return "2 lambda sqrt(n_embd) u sum_j |w_ij x_j| + 4u |y_i|";
    default:
      break;
  }
  if (weight_type == gguf::TensorType::I2_S) return "8u |y_i| (one exact integer sum, /s, *scale)";
  if (kernels::is_ternary(weight_type))
    return "2 lambda sqrt(16 nb + 16) u sum_j |q_j w_ij| d_act + 6u |y_i| (nb 256-blocks)";
  return "2 lambda sqrt(k) u sum_j |w_ij x_j| + 4u |y_i|";
}

LocalError local_error(std::span<const float> ours, std::span<const float> theirs,
                       std::span<const double> bound) {
  LocalError e;
  if (ours.size() != theirs.size() || (!bound.empty() && bound.size() != ours.size())) {
    e.identical = false;
    e.worst = INFINITY;
    return e;
  }
  for (size_t i = 0; i < ours.size(); ++i) {
    const float a = ours[i], b = theirs[i];
    uint32_t ba, bb;
    std::memcpy(&ba, &a, 4);
    std::memcpy(&bb, &b, 4);
    if (ba == bb) continue;
    e.identical = false;
    const double diff = std::fabs(static_cast<double>(a) - b);
    double ratio;
    if (!std::isfinite(diff)) {
      ratio = INFINITY;
    } else {
      e.max_abs = std::max(e.max_abs, diff);
      const double bnd = bound.empty() ? 0.0 : bound[i];
      ratio = diff == 0 ? 0 : bnd > 0 ? diff / bnd : INFINITY;
    }
    if (ratio > e.worst || e.at < 0) {
      e.worst = std::max(e.worst, ratio);
      e.at = static_cast<int64_t>(i);
    }
  }
  return e;
}

}  // namespace bitnet::crossval
