#include "model/session.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/fp16.h"
#include "kernels/attention.h"
#include "kernels/elementwise.h"
#include "kernels/matmul.h"
#include "kernels/q8_0_head.h"
#include "kernels/verify.h"

namespace bitnet::model {

using trace::Op;

Numerics numerics_for(const Model& m, bool kv_f16) {
  Numerics n;
  n.f16_attention_operands = kv_f16;
  // bitnet.cpp (bitnet-b1.58 / bitnet-25) multiplies its F16 head with f32 activations;
  // upstream llama.cpp (bitnet) rounds them to f16 first (FACTS.md sections 3 and 6).
  n.f16_head_input = m.config().arch == Arch::kBitnet;
  n.f16_float_matmul_input = true;
  return n;
}

Result<std::unique_ptr<Session>> Session::create(const Model& model, const SessionOptions& o) {
  if (o.n_ctx < 0) return make_error("context length %d must not be negative", o.n_ctx);
  if (o.n_threads < 1 || o.n_threads > 512)
    return make_error("thread count %d is out of range (1..512)", o.n_threads);
  if (o.verify_kernels_every < 0) return make_error("--verify-kernels must not be negative");
  BITNET_ASSIGN_OR_RETURN(auto perturb, test_perturbation_from_env());
  auto s = std::unique_ptr<Session>(new Session(model, o));
  s->perturb_ = perturb;
  return s;
}

// TEST-ONLY (see session.h): parses BITNET_TEST_PERTURB; never set outside tests.
Result<std::optional<Session::TestPerturbation>> Session::test_perturbation_from_env() {
  const char* env = std::getenv("BITNET_TEST_PERTURB");
  if (env == nullptr || env[0] == '\0') return std::optional<TestPerturbation>();
  const std::string spec = env;
  const size_t colon = spec.rfind(':');
  std::string point = spec.substr(0, colon == std::string::npos ? spec.size() : colon);
  TestPerturbation p;
  int layer = -1;
  if (point.rfind("blk", 0) == 0 && point.find('/') != std::string::npos) {
    layer = std::atoi(point.c_str() + 3);
    point = point.substr(point.find('/') + 1);
  }
  const auto op = trace::op_from_name(point);
  char* end = nullptr;
  const double eps = colon == std::string::npos ? 0.0 : std::strtod(spec.c_str() + colon + 1, &end);
  if (!op || colon == std::string::npos || end == nullptr || *end != '\0' ||
      trace::is_block_op(*op) != (layer >= 0) || *op == Op::kAttnScoresSoftmax) {
    return make_error("BITNET_TEST_PERTURB='%s' is not blk<N>/<op>:<eps> or <op>:<eps>", env);
  }
  p.layer = layer;
  p.op = *op;
  p.factor = static_cast<float>(1.0 + eps);
  std::fprintf(stderr,
               "bitnet: warning: BITNET_TEST_PERTURB=%s is set: TEST-ONLY fault injection, "
               "every output of that op is multiplied by %.9g\n",
               env, static_cast<double>(p.factor));
  return std::optional<TestPerturbation>(p);
}

Session::Session(const Model& model, const SessionOptions& o)
    : model_(model),
      c_(model.config()),
      numerics_(numerics_for(model, o.kv_f16)),
      n_ctx_(o.n_ctx > 0 ? o.n_ctx : static_cast<int>(model.config().n_ctx_train)),
      kv_f16_(o.kv_f16),
      pool_(o.n_threads) {
  verify_every_ = o.verify_kernels_every;
  const size_t kv = static_cast<size_t>(c_.n_layers) * n_ctx_ * c_.n_embd_kv();
  if (kv_f16_) {
    k16_.resize(kv);
    v16_.resize(kv);
  } else {
    k32_.resize(kv);
    v32_.resize(kv);
  }
  // ggml's NEOX RoPE: theta_p,i = p * base^(-2i/hd), built by repeated multiplication in float
  // (theta *= theta_scale), then cosf / sinf. Reproduced exactly for matching rotations.
  const int half = static_cast<int>(c_.rope_dims / 2);
  const float theta_scale = std::pow(c_.rope_freq_base, -2.0f / static_cast<float>(c_.rope_dims));
  rope_cos_.resize(static_cast<size_t>(n_ctx_) * half);
  rope_sin_.resize(static_cast<size_t>(n_ctx_) * half);
  for (int p = 0; p < n_ctx_; ++p) {
    float theta = static_cast<float>(p);
    for (int i = 0; i < half; ++i) {
      rope_cos_[static_cast<size_t>(p) * half + i] = std::cos(theta);
      rope_sin_[static_cast<size_t>(p) * half + i] = std::sin(theta);
      theta *= theta_scale;
    }
  }
  scores_.resize(static_cast<size_t>(c_.n_heads) * n_ctx_);
}

void Session::ensure_capacity(int n) {
  if (n <= cap_rows_) return;
  cap_rows_ = n;
  const size_t d = c_.n_embd, dkv = c_.n_embd_kv(), f = c_.n_ff;
  for (auto* b : {&x_, &h_, &q_, &att_, &tmp_, &final_}) b->resize(n * d);
  k_.resize(n * dkv);
  v_.resize(n * dkv);
  gate_.resize(n * f);
  up_.resize(n * f);
}

void Session::trace_rows(Op op, int layer, const float* data, int n_rows, int64_t row_len,
                         int first_pos) {
  if (perturb_ && perturb_->op == op && perturb_->layer == layer) {
    // TEST-ONLY fault injection (BITNET_TEST_PERTURB): every caller passes the session's own
    // mutable buffer holding the op's final output.
    float* out = const_cast<float*>(data);
    for (int64_t i = 0; i < n_rows * row_len; ++i) out[i] *= perturb_->factor;
  }
  if constexpr (trace::kTraceCompiled) {
    if (trace_ == nullptr) return;
    const int64_t shape[1] = {row_len};
    for (int r = 0; r < n_rows; ++r) {
      const trace::Point p{first_pos + r, layer, op};
      if (trace_->wants(p))
        trace_->record(p, {data + r * row_len, static_cast<size_t>(row_len)}, shape);
    }
  }
}

// With only the last row's logits wanted, a traced run still records final_norm and logits at
// every position: earlier rows go through the head one by one into side buffers, leaving the
// returned logits (and the cost of an untraced run) untouched.
void Session::trace_head_rows(const float* x, int n_rows, int first_pos) {
  if constexpr (trace::kTraceCompiled) {
    if (trace_ == nullptr) return;
    const int64_t d = c_.n_embd;
    std::vector<float> fin, out;
    for (int r = 0; r < n_rows; ++r) {
      const int pos = first_pos + r;
      const bool want_logits = trace_->wants({pos, -1, Op::kLogits});
      if (!want_logits && !trace_->wants({pos, -1, Op::kFinalNorm})) continue;
      fin.resize(d);
      rms_norm_rows(x + r * d, model_.output_norm(), 1, d, fin.data());
      trace_rows(Op::kFinalNorm, -1, fin.data(), 1, d, pos);
      if (!want_logits) continue;
      out.resize(c_.n_vocab);
      apply_head(fin.data(), 1, out.data());
      trace_rows(Op::kLogits, -1, out.data(), 1, c_.n_vocab, pos);
    }
  }
}

void Session::apply_head(float* fin, int n_rows, float* out) {
  const kernels::WeightMatrix& head = model_.head();
  if (head.type == gguf::TensorType::Q8_0) {  // --head-type q8_0: quantizes its input itself
    kernels::matmul_q8_0_head(model_.kernels(), head, fin, n_rows, out, &pool_, &qa_head_);
    return;
  }
  if (head.type != gguf::TensorType::F32 && numerics_.f16_head_input) {
    // What ggml does to F32 activations meeting an F16 matrix: round them to f16.
    kernels::round_to_f16(model_.kernels(), fin, static_cast<int64_t>(n_rows) * c_.n_embd);
  }
  kernels::matmul_float(model_.kernels(), head, fin, n_rows, out, &pool_);
}

// RMSNorm as ggml computes it (kernels/elementwise.h).
void Session::rms_norm_rows(const float* x, const std::vector<float>& w, int n_rows, int64_t dim,
                            float* out) {
  for_rows(n_rows, [&](int r0, int r1) {
    for (int r = r0; r < r1; ++r)
      kernels::rms_norm(model_.kernels(), x + r * dim, w.data(), dim, c_.rms_eps, out + r * dim);
  });
  if (verify_now_ && verify_status_.ok())  // --verify-kernels: the first row
    verify_status_ = kernels::verify_rms_norm(model_.kernels(), x, w.data(), dim, c_.rms_eps, out);
}

void Session::add_rows(float* x, const float* y, int n_rows, int64_t dim) {
  for_rows(n_rows, [&](int r0, int r1) {
    for (int64_t i = r0 * dim; i < r1 * dim; ++i) x[i] += y[i];
  });
}

void Session::project(const float* in, int n_rows,
                      std::initializer_list<std::pair<const Projection*, float*>> outs,
                      int first_pos, int layer, Op input_op) {
  const kernels::WeightMatrix& w0 = outs.begin()->first->w;
  const int64_t k = w0.k;
  if (kernels::is_ternary(w0.type)) {
    // One quantization of the shared input serves every projection reading it.
    kernels::quantize_activations(model_.kernels(), kernels::act_quant_for(w0.type), in, n_rows, k,
                                  &qa_);
    if (verify_now_ && verify_status_.ok())
      verify_status_ =
          kernels::verify_quantized(model_.kernels(), in, n_rows, k, qa_, first_pos + layer);
    if constexpr (trace::kTraceCompiled) {
      if (trace_ != nullptr) {
        const bool per_token = qa_.kind == kernels::ActQuant::kPerTokenInt8;
        const int64_t n_scales = per_token ? 1 : k / kernels::kQ8KBlock;
        for (int r = 0; r < n_rows; ++r) {
          const trace::Point p{first_pos + r, layer, input_op};
          if (!trace_->wants(p)) continue;
          trace_->record_codes(
              p, per_token ? trace::QuantGrouping::kPerToken : trace::QuantGrouping::kQ8K,
              {qa_.row(r), static_cast<size_t>(k)},
              {qa_.scales.data() + r * n_scales, static_cast<size_t>(n_scales)});
        }
      }
    }
    // One parallel pass over all of them (q/k/v, gate/up): one pool start and finish in all.
    kernels::TernaryProduct products[kernels::kMaxFusedProducts];
    size_t n_products = 0;
    for (const auto& [proj, out] : outs) {
      if (n_products == std::size(products)) {
        kernels::matmul_ternary_many(model_.kernels(), std::span(products, n_products), qa_,
                                     &pool_);
        n_products = 0;
      }
      products[n_products++] = {&proj->w, out};
    }
    kernels::matmul_ternary_many(model_.kernels(), std::span(products, n_products), qa_, &pool_);
    for (const auto& [proj, out] : outs) {
      if (verify_now_) verify_product(proj->w, &qa_, nullptr, n_rows, out, first_pos + layer);
    }
  } else {
    const float* src = in;
    std::vector<float> rounded;
    if (w0.type != gguf::TensorType::F32 && numerics_.f16_float_matmul_input) {
      rounded.assign(in, in + static_cast<size_t>(n_rows) * k);
      kernels::round_to_f16(model_.kernels(), rounded.data(), static_cast<int64_t>(rounded.size()));
      src = rounded.data();
    }
    for (const auto& [proj, out] : outs) {
      kernels::matmul_float(model_.kernels(), proj->w, src, n_rows, out, &pool_);
      if (verify_now_) verify_product(proj->w, nullptr, src, n_rows, out, first_pos + layer);
    }
  }
  // `bitnet` arch: scalar .scale tensors multiply the matmul result.
  for (const auto& [proj, out] : outs) {
    if (!proj->has_scale) continue;
    const int64_t n = static_cast<int64_t>(n_rows) * proj->w.n_out;
    for (int64_t i = 0; i < n; ++i) out[i] *= proj->scale;
  }
}

void Session::verify_product(const kernels::WeightMatrix& w, const kernels::QuantizedActivations* a,
                             const float* x, int n_rows, const float* out, int salt) {
  if (!verify_status_.ok()) return;  // keep the first failure
  verify_status_ = kernels::verify_sample_rows(model_.kernels(), w, a, x, n_rows, out,
                                               static_cast<uint64_t>(salt));
}

void Session::warm_next(std::initializer_list<const Projection*> next) {
  // Half a core's L2 (2 MiB on the machines measured): a decode step's serial stretches last
  // 5-25 us, in which one core fetches ~100-400 KiB; a worker stops at the next job anyway.
  constexpr size_t kWarmBytes = 512 * 1024;
  const int n = pool_.size();
  auto hint = [&](auto&& range_of) {
    for (int i = 0; i < n; ++i) pool_.warm_after_next_job(i, range_of(i));
  };
  if (next.size() == 0) {
    hint([&](int i) { return kernels::share_start(model_.head(), i, n, kWarmBytes); });
    return;
  }
  if (!kernels::is_ternary((*next.begin())->w.type)) return;  // float projections: no hint
  kernels::TernaryProduct products[kernels::kMaxFusedProducts];
  size_t k = 0;
  for (const Projection* p : next) products[k++] = {&p->w, nullptr};
  hint([&](int i) { return kernels::share_start(std::span(products, k), i, n, kWarmBytes); });
}

void Session::rope_rows(float* x, int n_rows, int n_heads, int first_pos) const {
  const int hd = static_cast<int>(c_.head_dim());
  const int half = hd / 2;
  for (int r = 0; r < n_rows; ++r) {
    const float* cs = rope_cos_.data() + static_cast<size_t>(first_pos + r) * half;
    const float* sn = rope_sin_.data() + static_cast<size_t>(first_pos + r) * half;
    for (int h = 0; h < n_heads; ++h) {
      float* v = x + (static_cast<size_t>(r) * n_heads + h) * hd;
      for (int i = 0; i < half; ++i) {
        const float x0 = v[i], x1 = v[i + half];
        v[i] = x0 * cs[i] - x1 * sn[i];
        v[i + half] = x0 * sn[i] + x1 * cs[i];
      }
    }
  }
}

// K goes in transposed per layer and KV head ([layer][kv head][element][position]), V by
// position ([layer][position][n_embd_kv]): the layouts the attention kernels read
// (kernels/attention.h). Both take the same memory as a by-position cache.
void Session::store_kv(int layer, const float* k, const float* v, int n_rows, int first_pos) {
  const size_t dkv = c_.n_embd_kv(), hd = c_.head_dim(), n_kv_heads = c_.n_kv_heads;
  const size_t kbase = static_cast<size_t>(layer) * n_kv_heads * hd * n_ctx_;
  const size_t vbase = (static_cast<size_t>(layer) * n_ctx_ + first_pos) * dkv;
  for (int r = 0; r < n_rows; ++r) {
    const size_t pos = static_cast<size_t>(first_pos + r);
    for (size_t h0 = 0; h0 < dkv; h0 += hd) {  // one KV head at a time
      uint16_t k_head[kMaxHeadDim];            // its K in f16, before it goes down the columns
      if (kv_f16_)
        kernels::fp32_to_fp16_row(model_.kernels(), k + r * dkv + h0, static_cast<int64_t>(hd),
                                  k_head);
      for (size_t e = h0; e < h0 + hd; ++e) {  // e = g * hd + i: row (g * hd + i) of the layer's K
        const size_t at = kbase + e * n_ctx_ + pos;
        if (kv_f16_) {
          k16_[at] = k_head[e - h0];
        } else {
          k32_[at] = k[r * dkv + e];
        }
      }
    }
  }
  const size_t n = static_cast<size_t>(n_rows) * dkv;
  if (kv_f16_) {
    kernels::fp32_to_fp16_row(model_.kernels(), v, static_cast<int64_t>(n), v16_.data() + vbase);
  } else {
    std::memcpy(v32_.data() + vbase, v, n * 4);
  }
  if (kv_f16_ && verify_now_ && verify_status_.ok()) {  // the first row's K (a column) and V
    verify_status_ = kernels::verify_to_f16(model_.kernels(), k, k16_.data() + kbase + first_pos,
                                            static_cast<int64_t>(dkv), n_ctx_);
    if (verify_status_.ok())
      verify_status_ = kernels::verify_to_f16(model_.kernels(), v, v16_.data() + vbase,
                                              static_cast<int64_t>(dkv), 1);
  }
}

// Causal GQA attention for rows at positions first_pos + r, over the cache [0, pos], with
// ggml's portable numerics: s_j = (float)(sum_i q_i k_ji in double) * (1/sqrt(hd)) (kernel);
// softmax with ggml's exp and sum (ggml_math.h), p_j = e_j * (float)(1/sum); out_i =
// (float)(sum_j p_j v_ji in double) (kernel). With an F16 cache, q and p are rounded to f16
// first, as ggml's F16 matrix product does (f16 x f16 products are exact in float).
void Session::attention(int layer, const float* q, int n_rows, int first_pos, float* out) {
  const int hd = static_cast<int>(c_.head_dim());
  const int n_heads = static_cast<int>(c_.n_heads);
  const int group = n_heads / static_cast<int>(c_.n_kv_heads);
  const size_t dkv = c_.n_embd_kv();
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const bool round = numerics_.f16_attention_operands;

  // Head h of row r (position first_pos + r), over the cache [0, first_pos + r]; qh receives the
  // (rounded) query the head reads.
  auto head_of = [&](int r, int h, float* qh) {
    const size_t g = static_cast<size_t>(h / group);
    const float* qsrc = q + (static_cast<size_t>(r) * n_heads + h) * hd;
    std::memcpy(qh, qsrc, static_cast<size_t>(hd) * sizeof(float));
    if (round) kernels::round_to_f16(model_.kernels(), qh, hd);
    kernels::AttentionHead a;
    a.q = qh;
    a.f16 = kv_f16_;
    a.head_dim = hd;
    a.n_kv = first_pos + r + 1;
    a.scale = scale;
    const size_t kbase = ((static_cast<size_t>(layer) * c_.n_kv_heads + g) * hd) * n_ctx_;
    const size_t vbase = static_cast<size_t>(layer) * n_ctx_ * dkv + g * hd;
    a.k = kv_f16_ ? static_cast<const void*>(k16_.data() + kbase)
                  : static_cast<const void*>(k32_.data() + kbase);
    a.v = kv_f16_ ? static_cast<const void*>(v16_.data() + vbase)
                  : static_cast<const void*>(v32_.data() + vbase);
    a.k_stride = n_ctx_;
    a.v_stride = static_cast<int64_t>(dkv);
    return a;
  };
  // Its probabilities stay in the head's scratch row until the next call for that head.
  auto attend = [&](int r, int h) {
    float qh[kMaxHeadDim];
    const kernels::AttentionHead a = head_of(r, h, qh);
    float* s = scores_.data() + static_cast<size_t>(h) * n_ctx_;
    kernels::attention_scores(model_.kernels(), a, s);
    kernels::softmax_probs(model_.kernels(), s, a.n_kv, round);
    kernels::attention_values(model_.kernels(), a, s,
                              out + (static_cast<size_t>(r) * n_heads + h) * hd);
  };
  // --verify-kernels: one head of the last row (its probabilities are still in the scratch row)
  // recomputed with the scalar references.
  auto verify_one_head = [&]() {
    if (!verify_now_ || !verify_status_.ok()) return;
    const int r = n_rows - 1;
    const int h = static_cast<int>((static_cast<uint64_t>(first_pos + layer) * 7919u) % n_heads);
    float qh[kMaxHeadDim];
    verify_status_ =
        kernels::verify_attention(model_.kernels(), head_of(r, h, qh), &kernels::softmax_probs_ref,
                                  round, scores_.data() + static_cast<size_t>(h) * n_ctx_,
                                  out + (static_cast<size_t>(r) * n_heads + h) * hd);
  };

  // Each (row, head) is computed the same way whatever the grouping, so both schedules below give
  // identical bits. Untraced: one task per head covering every row (one pool dispatch). Traced:
  // row by row, so each row's scores can be recorded before the next row overwrites them.
  const bool trace_scores = trace::kTraceCompiled && trace_ != nullptr;
  if (!trace_scores) {
    pool_.run(n_heads, [&](int64_t h) {
      for (int r = 0; r < n_rows; ++r) attend(r, static_cast<int>(h));
    });
    verify_one_head();
    return;
  }
  for (int r = 0; r < n_rows; ++r) {
    pool_.run(n_heads, [&](int64_t h) { attend(r, static_cast<int>(h)); });
    const int n_kv = first_pos + r + 1;
    const trace::Point p{first_pos + r, layer, Op::kAttnScoresSoftmax};
    if (trace_->wants(p)) {
      std::vector<float> rows(static_cast<size_t>(n_heads) * n_kv);
      for (int h = 0; h < n_heads; ++h) {
        std::memcpy(rows.data() + static_cast<size_t>(h) * n_kv,
                    scores_.data() + static_cast<size_t>(h) * n_ctx_, n_kv * sizeof(float));
      }
      const int64_t shape[2] = {n_heads, n_kv};
      trace_->record(p, rows, shape);
    }
  }
  verify_one_head();
}

}  // namespace bitnet::model

namespace bitnet::model {

Status Session::eval(std::span<const int32_t> tokens, bool all_logits, std::vector<float>* logits) {
  const int n = static_cast<int>(tokens.size());
  if (n == 0) return make_error("eval: no tokens");
  if (n_past_ + n > n_ctx_) {
    return make_error("context full: %d tokens already in the cache + %d new > context length %d",
                      n_past_, n, n_ctx_);
  }
  for (int32_t t : tokens) {
    if (t < 0 || static_cast<uint32_t>(t) >= c_.n_vocab) {
      return make_error("token id %d is outside the vocabulary (0..%u)", t, c_.n_vocab - 1);
    }
  }
  ensure_capacity(n);
  const int p0 = n_past_;
  verify_now_ = verify_every_ > 0 && (n > 1 || p0 % verify_every_ == 0);
  const int64_t d = c_.n_embd, dkv = c_.n_embd_kv(), f = c_.n_ff;
  float *x = x_.data(), *h = h_.data(), *q = q_.data(), *k = k_.data(), *v = v_.data();
  float *att = att_.data(), *tmp = tmp_.data(), *gate = gate_.data(), *up = up_.data();

  for (int r = 0; r < n; ++r) model_.embedding_row(tokens[r], x + r * d);
  trace_rows(Op::kEmbeddings, -1, x, n, d, p0);

  const bool relu2 = ffn_activation(c_.arch) == FfnActivation::kReluSquared;
  for (int l = 0; l < static_cast<int>(c_.n_layers); ++l) {
    const LayerWeights& L = model_.layers()[l];
    // Attention.
    rms_norm_rows(x, L.attn_norm, n, d, h);
    trace_rows(Op::kAttnNorm, l, h, n, d, p0);
    warm_next({&L.o});
    project(h, n, {{&L.q, q}, {&L.k, k}, {&L.v, v}}, p0, l, Op::kAttnNorm);
    trace_rows(Op::kQProj, l, q, n, d, p0);
    trace_rows(Op::kKProj, l, k, n, dkv, p0);
    trace_rows(Op::kVProj, l, v, n, dkv, p0);
    for_rows(n, [&](int r0, int r1) {
      rope_rows(q + r0 * d, r1 - r0, static_cast<int>(c_.n_heads), p0 + r0);
      rope_rows(k + r0 * dkv, r1 - r0, static_cast<int>(c_.n_kv_heads), p0 + r0);
    });
    trace_rows(Op::kQRope, l, q, n, d, p0);
    trace_rows(Op::kKRope, l, k, n, dkv, p0);
    store_kv(l, k, v, n, p0);
    warm_next({&L.o});
    attention(l, q, n, p0, att);
    trace_rows(Op::kAttnOut, l, att, n, d, p0);
    rms_norm_rows(att, L.attn_sub_norm, n, d, h);
    trace_rows(Op::kAttnSubNorm, l, h, n, d, p0);
    warm_next({&L.gate, &L.up});
    project(h, n, {{&L.o, tmp}}, p0, l, Op::kAttnSubNorm);
    trace_rows(Op::kOProj, l, tmp, n, d, p0);
    add_rows(x, tmp, n, d);
    trace_rows(Op::kAttnResidual, l, x, n, d, p0);

    // Feed-forward.
    rms_norm_rows(x, L.ffn_norm, n, d, h);
    trace_rows(Op::kFfnNorm, l, h, n, d, p0);
    warm_next({&L.down});
    project(h, n, {{&L.gate, gate}, {&L.up, up}}, p0, l, Op::kFfnNorm);
    trace_rows(Op::kGateProj, l, gate, n, f, p0);
    trace_rows(Op::kUpProj, l, up, n, f, p0);
    // --verify-kernels: a window of the first row's SwiGLU inputs, kept to recompute it.
    constexpr int64_t kWindow = 64;
    float win_x[kWindow], win_g[kWindow];
    const int64_t win_at = (static_cast<int64_t>(p0 + l) * 7919 % std::max<int64_t>(1, f / 4)) * 4;
    const int64_t win_n = std::min(kWindow, f / 4 * 4 - win_at);
    const bool check_swiglu = !relu2 && verify_now_ && win_n > 0;
    if (check_swiglu) {
      std::memcpy(win_x, gate + win_at, win_n * sizeof(float));
      std::memcpy(win_g, up + win_at, win_n * sizeof(float));
    }
    for_rows(n, [&](int r0, int r1) {
      if (relu2) {
        // relu(g)^2 * up (bitnet-b1.58 / bitnet-25).
        for (int64_t i = r0 * f; i < r1 * f; ++i) {
          const float a = gate[i] > 0.0f ? gate[i] : 0.0f;
          gate[i] = a * a * up[i];
        }
      } else {
        // silu(g) * up (bitnet), row by row as ggml's fused SwiGLU does.
        for (int r = r0; r < r1; ++r)
          kernels::swiglu(model_.kernels(), f, gate + r * f, gate + r * f, up + r * f);
      }
    });
    if (check_swiglu && verify_status_.ok())
      verify_status_ = kernels::verify_swiglu(model_.kernels(), win_x, win_g, gate + win_at, win_n);
    trace_rows(Op::kFfnAct, l, gate, n, f, p0);
    rms_norm_rows(gate, L.ffn_sub_norm, n, f, up);
    trace_rows(Op::kFfnSubNorm, l, up, n, f, p0);
    if (l + 1 < static_cast<int>(c_.n_layers)) {
      const LayerWeights& N = model_.layers()[l + 1];
      warm_next({&N.q, &N.k, &N.v});
    } else {
      warm_next({});
    }
    project(up, n, {{&L.down, tmp}}, p0, l, Op::kFfnSubNorm);
    trace_rows(Op::kDownProj, l, tmp, n, d, p0);
    add_rows(x, tmp, n, d);
    trace_rows(Op::kFfnResidual, l, x, n, d, p0);
  }
  n_past_ += n;

  // Final norm and LM head, for every row or only the last.
  const int first = all_logits ? 0 : n - 1;
  const int n_out = n - first;
  float* fin = final_.data();
  if (first > 0) trace_head_rows(x, first, p0);
  rms_norm_rows(x + first * d, model_.output_norm(), n_out, d, fin);
  trace_rows(Op::kFinalNorm, -1, fin, n_out, d, p0 + first);
  logits->resize(static_cast<size_t>(n_out) * c_.n_vocab);
  apply_head(fin, n_out, logits->data());
  if (verify_now_) verify_product(model_.head(), nullptr, fin, n_out, logits->data(), p0);
  trace_rows(Op::kLogits, -1, logits->data(), n_out, c_.n_vocab, p0 + first);
  if (!verify_status_.ok()) return verify_status_;
  return {};
}

}  // namespace bitnet::model
