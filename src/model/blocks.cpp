#include "model/blocks.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "kernels/attention.h"
#include "kernels/elementwise.h"
#include "kernels/matmul.h"
#include "kernels/q8_0_head.h"

namespace bitnet::model {

Numerics numerics_for(const Model& m, bool kv_f16) {
  Numerics n;
  n.f16_attention_operands = kv_f16;
  // bitnet.cpp (bitnet-b1.58 / bitnet-25) multiplies its F16 head with f32 activations;
  // upstream llama.cpp (bitnet, llama) rounds them to f16 first (FACTS.md sections 3 and 6).
  const Arch a = m.config().arch;
  n.f16_head_input = a == Arch::kBitnet || a == Arch::kLlama;
  n.f16_float_matmul_input = true;
  return n;
}

void RopeTable::init(const ModelConfig& c) {
  half_ = static_cast<int>(c.rope_dims / 2);
  theta_scale_ = std::pow(c.rope_freq_base, -2.0f / static_cast<float>(c.rope_dims));
  n_pos_ = 0;
  cos_.clear();
  sin_.clear();
}

void RopeTable::ensure(int n_pos) {
  if (n_pos <= n_pos_) return;
  cos_.resize(static_cast<size_t>(n_pos) * half_);
  sin_.resize(static_cast<size_t>(n_pos) * half_);
  for (int p = n_pos_; p < n_pos; ++p) {
    float theta = static_cast<float>(p);
    for (int i = 0; i < half_; ++i) {
      cos_[static_cast<size_t>(p) * half_ + i] = std::cos(theta);
      sin_[static_cast<size_t>(p) * half_ + i] = std::sin(theta);
      theta *= theta_scale_;
    }
  }
  n_pos_ = n_pos;
}

void Scratch::ensure(const ModelConfig& c, int n_rows, int n_ctx) {
  scores.resize(static_cast<size_t>(c.n_heads) * n_ctx);
  if (n_rows <= rows_) return;
  rows_ = n_rows;
  const int64_t d = c.n_embd, dkv = c.n_embd_kv(), f = c.n_ff;
  Act* acts[] = {&x, &h, &q, &k, &v, &att, &o, &gate, &up, &act, &hf, &fin};
  const int64_t dims[] = {d, d, d, dkv, dkv, d, d, f, f, f, f, d};
  int64_t total = 0;
  for (int64_t dim : dims) total += dim * n_rows;
  storage_.resize(static_cast<size_t>(total));
  float* p = storage_.data();
  for (size_t i = 0; i < std::size(acts); ++i) {
    acts[i]->p = p;
    acts[i]->dim = dims[i];
    p += dims[i] * n_rows;
  }
}

Blocks::Blocks(const State& st, std::span<const BatchRow> rows, float* logits)
    : st_(st),
      c_(st.model.config()),
      k_(st.model.kernels()),
      rows_(rows),
      n_(static_cast<int>(rows.size())),
      logits_(logits),
      obs_(kObserverCompiled ? st.observer : nullptr) {
  st_.warm.next = 0;
  if (obs_ != nullptr) obs_->begin(rows_);
}

// Runs fn(r0, r1) over row ranges covering [0, n_rows): on the pool for prompts (rows are
// independent and each is computed the same way, so the split changes nothing), inline for a
// few decode rows. Not from inside another pool job (the pool is not reentrant).
template <class Fn>
void Blocks::for_rows(int n_rows, const Fn& fn) {
  constexpr int kRowsPerChunk = 4;
  if (n_rows <= kRowsPerChunk) return fn(0, n_rows);
  st_.pool.run((n_rows + kRowsPerChunk - 1) / kRowsPerChunk, [&](int64_t c) {
    const int r0 = static_cast<int>(c) * kRowsPerChunk;
    fn(r0, std::min(n_rows, r0 + kRowsPerChunk));
  });
}

void Blocks::observe(int layer, Op op, Act& a, std::span<const BatchRow> rows) {
  a.op = op;
  if (obs_ != nullptr) obs_->output({op, layer, rows, a.p, a.dim});
}

void Blocks::warm(size_t group) {
  const WarmSchedule& w = st_.warm;
  if (!w.learned || group >= w.groups.size()) return;
  // Half a core's L2 (2 MiB on the machines measured): a decode step's serial stretches last
  // 5-25 us, in which one core fetches ~100-400 KiB; a worker stops at the next job anyway.
  constexpr size_t kWarmBytes = 512 * 1024;
  ThreadPool& pool = st_.pool;
  const int n = pool.size();
  const auto& next = w.groups[group];
  if (next.empty()) {  // the LM head
    for (int i = 0; i < n; ++i)
      pool.warm_after_next_job(i, kernels::share_start(st_.model.head(), i, n, kWarmBytes));
    return;
  }
  if (!kernels::is_ternary(next.front()->w.type)) return;  // float projections: no hint
  kernels::TernaryProduct products[kernels::kMaxFusedProducts];
  size_t k = 0;
  for (const Projection* p : next) {
    if (k == std::size(products)) break;  // the first pass of a larger group
    products[k++] = {&p->w, nullptr};
  }
  for (int i = 0; i < n; ++i) {
    pool.warm_after_next_job(i, kernels::share_start(std::span(products, k), i, n, kWarmBytes));
  }
}

void Blocks::embed(Act& x) {
  for (int r = 0; r < n_; ++r)
    st_.model.embedding_row(rows_[static_cast<size_t>(r)].token, x.row(r));
  observe(-1, Op::kEmbeddings, x, rows_);
}

// RMSNorm as ggml computes it (kernels/elementwise.h).
void Blocks::rms_norm(int layer, Op op, const Act& in, const std::vector<float>& w, Act& out) {
  for_rows(n_, [&](int r0, int r1) {
    for (int r = r0; r < r1; ++r)
      kernels::rms_norm(k_, in.row(r), w.data(), in.dim, c_.rms_eps, out.row(r));
  });
  if (obs_ != nullptr) obs_->rms_norm(layer, in.p, w.data(), in.dim, c_.rms_eps, out.p);
  observe(layer, op, out, rows_);
}

void Blocks::project(int layer, const Act& in, std::initializer_list<Out> outs) {
  WarmSchedule& ws = st_.warm;
  if (!ws.learned) {
    ws.groups.emplace_back();
    for (const Out& o : outs) ws.groups.back().push_back(&o.w);
  }
  warm(ws.next + 1);
  const kernels::WeightMatrix& w0 = outs.begin()->w.w;
  const int64_t k = w0.k;
  Scratch& s = st_.s;
  if (kernels::is_ternary(w0.type)) {
    // One quantization of the shared input serves every projection reading it.
    kernels::quantize_activations(k_, kernels::act_quant_for(w0.type), in.p, n_, k, &s.qa,
                                  &st_.pool);
    if (obs_ != nullptr) obs_->quantized(in.op, layer, rows_, in.p, s.qa);
    // One parallel pass over all of them (q/k/v, gate/up): one pool start and finish in all.
    kernels::TernaryProduct products[kernels::kMaxFusedProducts];
    size_t n_products = 0;
    for (const Out& o : outs) {
      if (n_products == std::size(products)) {
        kernels::matmul_ternary_many(k_, std::span(products, n_products), s.qa, &st_.pool);
        n_products = 0;
      }
      products[n_products++] = {&o.w.w, o.y.p};
    }
    kernels::matmul_ternary_many(k_, std::span(products, n_products), s.qa, &st_.pool);
    for (const Out& o : outs) st_.stats.int8_macs += static_cast<int64_t>(n_) * k * o.w.w.n_out;
    if (obs_ != nullptr) {
      for (const Out& o : outs) obs_->product({layer, o.w.w, &s.qa, nullptr, n_, o.y.p});
    }
  } else {
    const float* src = in.p;
    std::vector<float> rounded;
    if (w0.type != gguf::TensorType::F32 && st_.numerics.f16_float_matmul_input) {
      rounded.assign(in.p, in.p + static_cast<size_t>(n_) * k);
      kernels::round_to_f16(k_, rounded.data(), static_cast<int64_t>(rounded.size()));
      src = rounded.data();
    }
    for (const Out& o : outs) {
      kernels::matmul_float(k_, o.w.w, src, n_, o.y.p, &st_.pool);
      if (obs_ != nullptr) obs_->product({layer, o.w.w, nullptr, src, n_, o.y.p});
    }
  }
  // Each matrix is read once for the whole batch.
  for (const Out& o : outs) st_.stats.weight_bytes += static_cast<uint64_t>(o.w.w.bytes());
  // `bitnet` arch: scalar .scale tensors multiply the matmul result.
  for (const Out& o : outs) {
    if (!o.w.has_scale) continue;
    const int64_t n = static_cast<int64_t>(n_) * o.w.w.n_out;
    for (int64_t i = 0; i < n; ++i) o.y.p[i] *= o.w.scale;
  }
  ++ws.next;
  for (const Out& o : outs) observe(layer, o.op, o.y, rows_);
}

// ggml's rotate_pairs: pair i (angle i of the table) is (v[a], v[b]) with a = i, b = i + half
// (NEOX) or a = 2i, b = 2i + 1 (NORM); v[a] = x0 cos - x1 sin, v[b] = x0 sin + x1 cos.
void rope_heads(float* x, int n_heads, int head_dim, const float* cs, const float* sn,
                RopeMode mode) {
  const int half = head_dim / 2;
  const int a_step = mode == RopeMode::kNorm ? 2 : 1;  // a = i * a_step, b = a + b_off
  const int b_off = mode == RopeMode::kNorm ? 1 : half;
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + static_cast<size_t>(h) * head_dim;
    for (int i = 0; i < half; ++i) {
      float* pa = v + i * a_step;
      float* pb = pa + b_off;
      const float x0 = *pa, x1 = *pb;
      *pa = x0 * cs[i] - x1 * sn[i];
      *pb = x0 * sn[i] + x1 * cs[i];
    }
  }
}

void Blocks::rope(int layer, Op op, Act& x, int n_heads, RopeMode mode) {
  const int hd = static_cast<int>(c_.head_dim());
  for_rows(n_, [&](int r0, int r1) {
    for (int r = r0; r < r1; ++r) {
      const int pos = rows_[static_cast<size_t>(r)].pos;
      rope_heads(x.row(r), n_heads, hd, st_.rope.cos(pos), st_.rope.sin(pos), mode);
    }
  });
  observe(layer, op, x, rows_);
}

void Blocks::store_kv(int layer, const Act& k, const Act& v) {
  KvCache& kv = st_.kv;
  const int64_t dkv = k.dim, hd = c_.head_dim();
  const bool f16 = kv.f16();
  // Rows write disjoint cells (their own sequence and position), so they can go in parallel.
  for_rows(n_, [&](int r0, int r1) {
    for (int r = r0; r < r1; ++r) {
      const BatchRow& row = rows_[static_cast<size_t>(r)];
      const int64_t stride = kv.k_stride(row.seq);
      const float* kr = k.row(r);
      for (int64_t h0 = 0; h0 < dkv; h0 += hd) {  // one KV head at a time, down its columns
        uint8_t* col = kv.k_head(row.seq, layer, static_cast<int>(h0 / hd));
        if (f16) {
          uint16_t k_head[kMaxHeadDim];
          kernels::fp32_to_fp16_row(k_, kr + h0, hd, k_head);
          auto* dst = reinterpret_cast<uint16_t*>(col) + row.pos;
          for (int64_t i = 0; i < hd; ++i) dst[i * stride] = k_head[i];
        } else {
          auto* dst = reinterpret_cast<float*>(col) + row.pos;
          for (int64_t i = 0; i < hd; ++i) dst[i * stride] = kr[h0 + i];
        }
      }
      uint8_t* vdst = kv.v_row(row.seq, layer, row.pos);
      if (f16) {
        kernels::fp32_to_fp16_row(k_, v.row(r), dkv, reinterpret_cast<uint16_t*>(vdst));
      } else {
        std::memcpy(vdst, v.row(r), static_cast<size_t>(dkv) * sizeof(float));
      }
    }
  });
  if (obs_ != nullptr) {
    const BatchRow& row = rows_.front();
    const size_t eb = kv.element_bytes();
    obs_->kv_stored(layer, k.p, kv.k_head(row.seq, layer, 0) + row.pos * eb, kv.k_stride(row.seq),
                    v.p, kv.v_row(row.seq, layer, row.pos), dkv, f16);
  }
}

// Head h of row r over its sequence's cache [0, pos]; qh receives the (rounded) query it reads.
kernels::AttentionHead Blocks::head_of(int layer, int r, int h, float* qh, const Act& q) const {
  const BatchRow& row = rows_[static_cast<size_t>(r)];
  const int hd = static_cast<int>(c_.head_dim());
  const int group = static_cast<int>(c_.n_heads / c_.n_kv_heads);
  const int g = h / group;
  std::memcpy(qh, q.row(r) + static_cast<size_t>(h) * hd, static_cast<size_t>(hd) * sizeof(float));
  if (st_.numerics.f16_attention_operands) kernels::round_to_f16(k_, qh, hd);
  const KvCache& kv = st_.kv;
  kernels::AttentionHead a;
  a.q = qh;
  a.f16 = kv.f16();
  a.head_dim = hd;
  a.n_kv = row.pos + 1;
  a.scale = 1.0f / std::sqrt(static_cast<float>(hd));
  a.k = kv.k_head(row.seq, layer, g);
  a.v = kv.v_row(row.seq, layer, 0) + static_cast<size_t>(g) * hd * kv.element_bytes();
  a.k_stride = kv.k_stride(row.seq);
  a.v_stride = kv.n_embd_kv();
  return a;
}

// Attention with ggml's portable numerics: s_j = (float)(sum_i q_i k_ji in double) *
// (1/sqrt(hd)) (kernel); softmax with ggml's exp and sum (ggml_math.h), p_j = e_j * (float)(1 /
// sum); out_i = (float)(sum_j p_j v_ji in double) (kernel). With an F16 cache, q and p are
// rounded to f16 first, as ggml's F16 matrix product does (f16 x f16 products are exact).
void Blocks::attention(int layer, const Act& q, const Act& k, const Act& v, Act& out) {
  store_kv(layer, k, v);
  warm(st_.warm.next);
  if (obs_ == nullptr && c_.n_heads / c_.n_kv_heads <= kMaxGroupHeads) {
    if (n_ == 1 && rows_.front().pos + 1 >= kSplitMinPositions && st_.pool.size() > 1) {
      attention_split(layer, q, out);
    } else {
      attention_grouped(layer, q, out);
    }
    observe(layer, Op::kAttnOut, out, rows_);
    return;
  }
  const int n_heads = static_cast<int>(c_.n_heads);
  const int hd = static_cast<int>(c_.head_dim());
  const bool round = st_.numerics.f16_attention_operands;
  const int64_t stride = static_cast<int64_t>(st_.s.scores.size()) / n_heads;
  auto probs_of = [&](int h) { return st_.s.scores.data() + static_cast<size_t>(h) * stride; };
  auto out_of = [&](int r, int h) { return out.row(r) + static_cast<size_t>(h) * hd; };
  // Its probabilities stay in the head's scratch row until the next call for that head.
  auto attend = [&](int r, int h) {
    float qh[kMaxHeadDim];
    const kernels::AttentionHead a = head_of(layer, r, h, qh, q);
    float* s = probs_of(h);
    kernels::attention_scores(k_, a, s);
    kernels::softmax_probs(k_, s, a.n_kv, round);
    kernels::attention_values(k_, a, s, out_of(r, h));
  };
  // Each (row, head) is computed the same way whatever the grouping, so both schedules give
  // identical bits: one task per head covering every row (one pool dispatch), or row by row
  // when an observer wants each row's probabilities before the next row overwrites them.
  bool by_row = false;
  if (obs_ != nullptr) {
    for (const BatchRow& row : rows_)
      by_row = by_row || obs_->wants(row, layer, Op::kAttnScoresSoftmax);
  }
  if (!by_row) {
    st_.pool.run(n_heads, [&](int64_t h) {
      for (int r = 0; r < n_; ++r) attend(r, static_cast<int>(h));
    });
  } else {
    std::vector<float> probs;
    for (int r = 0; r < n_; ++r) {
      st_.pool.run(n_heads, [&](int64_t h) { attend(r, static_cast<int>(h)); });
      const BatchRow& row = rows_[static_cast<size_t>(r)];
      if (!obs_->wants(row, layer, Op::kAttnScoresSoftmax)) continue;
      const int n_kv = row.pos + 1;
      probs.resize(static_cast<size_t>(n_heads) * n_kv);
      for (int h = 0; h < n_heads; ++h)
        std::memcpy(probs.data() + static_cast<size_t>(h) * n_kv, probs_of(h),
                    n_kv * sizeof(float));
      obs_->attention_probs(layer, row, probs, n_heads, n_kv);
      // An observer may have changed them (a test's fault injection): the output follows.
      for (int h = 0; h < n_heads; ++h) {
        const float* p = probs.data() + static_cast<size_t>(h) * n_kv;
        if (std::memcmp(p, probs_of(h), n_kv * sizeof(float)) == 0) continue;
        float qh[kMaxHeadDim];
        kernels::attention_values(k_, head_of(layer, r, h, qh, q), p, out_of(r, h));
      }
    }
  }
  if (obs_ != nullptr) {  // the last row's probabilities are still in the scratch rows
    const int r = n_ - 1;
    obs_->attention({layer, rows_[static_cast<size_t>(r)], n_heads, round,
                     [&](int h, float* qh) { return head_of(layer, r, h, qh, q); }, probs_of,
                     [&](int h) -> const float* { return out_of(r, h); }});
  }
  observe(layer, Op::kAttnOut, out, rows_);
}

// The query heads sharing a KV head go through the grouped kernels together (each K and V
// vector converted once for all of them; the same bits as head by head, kernels/attention.h).
// Tasks are (KV head, run of rows, part of the group): enough of them to keep every thread busy
// in decode too, each with its own probability rows.
void Blocks::attention_grouped(int layer, const Act& q, Act& out) {
  const int n_kv_heads = static_cast<int>(c_.n_kv_heads);
  const int group = static_cast<int>(c_.n_heads / c_.n_kv_heads);
  const int hd = static_cast<int>(c_.head_dim());
  const bool round = st_.numerics.f16_attention_operands;
  const int rows_per_chunk = (n_ + 15) / 16;
  const int n_chunks = (n_ + rows_per_chunk - 1) / rows_per_chunk;
  // Decode: a handful of KV heads over the threads would leave one idle for a share of the
  // time; halves of each group even it out.
  const int parts = n_kv_heads * n_chunks < 4 * st_.pool.size() && group % 2 == 0 ? 2 : 1;
  const int heads_per_part = group / parts;
  int max_kv = 0;
  for (const BatchRow& row : rows_) max_kv = std::max(max_kv, row.pos + 1);
  const int64_t n_tasks = static_cast<int64_t>(n_kv_heads) * n_chunks * parts;
  std::vector<float>& scratch = st_.s.group_scores;
  const size_t need = static_cast<size_t>(n_tasks) * heads_per_part * max_kv;
  if (scratch.size() < need) scratch.resize(need);
  st_.pool.run(n_tasks, [&](int64_t task) {
    const int part = static_cast<int>(task % parts);
    const int chunk = static_cast<int>(task / parts % n_chunks);
    const int g = static_cast<int>(task / parts / n_chunks);
    const int h0 = g * group + part * heads_per_part;
    float* probs = scratch.data() + static_cast<size_t>(task) * heads_per_part * max_kv;
    float qh[kMaxGroupHeads][kMaxHeadDim];
    const float* qs[kMaxGroupHeads];
    float* s[kMaxGroupHeads];
    float* o[kMaxGroupHeads];
    const int r1 = std::min(n_, (chunk + 1) * rows_per_chunk);
    for (int r = chunk * rows_per_chunk; r < r1; ++r) {
      kernels::AttentionHead a;
      for (int i = 0; i < heads_per_part; ++i) {
        a = head_of(layer, r, h0 + i, qh[i], q);
        qs[i] = qh[i];
        s[i] = probs + static_cast<size_t>(i) * max_kv;
        o[i] = out.row(r) + static_cast<size_t>(h0 + i) * hd;
      }
      kernels::attention_scores_group(k_, a, qs, heads_per_part, s);
      for (int i = 0; i < heads_per_part; ++i) kernels::softmax_probs(k_, s[i], a.n_kv, round);
      kernels::attention_values_group(k_, a, heads_per_part, s, o);
    }
  });
}

// One row (a decode step of one sequence) over a long cache. Splitting each KV head's query heads
// between threads, as attention_grouped() does, has every thread read the whole of that head's K
// and V and convert each vector for half the heads. Here every task takes all the query heads of
// a KV head: the scores of a range of positions (each position's sum is its own, so any split
// gives the same bits), then, once every head has all its scores, the softmax per head, then the
// values of a range of dimensions (each dimension sums over the positions in order, as before).
// The same bits as attention_grouped(); three pool dispatches instead of one, which the long
// cache pays for.
void Blocks::attention_split(int layer, const Act& q, Act& out) {
  const int n_kv_heads = static_cast<int>(c_.n_kv_heads);
  const int n_heads = static_cast<int>(c_.n_heads);
  const int group = n_heads / n_kv_heads;
  const int hd = static_cast<int>(c_.head_dim());
  const bool round = st_.numerics.f16_attention_operands;
  const int n_kv = rows_.front().pos + 1;
  const int parts = st_.pool.size();
  std::vector<float>& scratch = st_.s.group_scores;
  const size_t need = static_cast<size_t>(n_heads) * n_kv;
  if (scratch.size() < need) scratch.resize(need);
  auto probs_of = [&](int h) { return scratch.data() + static_cast<size_t>(h) * n_kv; };
  std::vector<float>& qh = st_.s.split_q;  // every head's rounded query, read by all tasks
  std::vector<kernels::AttentionHead>& base = st_.s.split_heads;
  qh.resize(static_cast<size_t>(n_heads) * hd);
  base.resize(static_cast<size_t>(n_heads));
  for (int h = 0; h < n_heads; ++h)
    base[static_cast<size_t>(h)] = head_of(layer, 0, h, qh.data() + static_cast<size_t>(h) * hd, q);
  // Part `part` of [0, n) in whole units (the last one cut at n): [begin, end).
  auto share = [parts](int n, int unit, int part) {
    const int units = (n + unit - 1) / unit;
    return std::pair(std::min(n, units * part / parts * unit),
                     std::min(n, units * (part + 1) / parts * unit));
  };
  // Scores: (KV head, range of positions), ranges in whole blocks of 64 positions.
  st_.pool.run(static_cast<int64_t>(n_kv_heads) * parts, [&](int64_t task) {
    const int g = static_cast<int>(task / parts);
    const auto [j0, j1] = share(n_kv, 64, static_cast<int>(task % parts));
    if (j0 >= j1) return;
    kernels::AttentionHead a = base[static_cast<size_t>(g * group)];
    a.k = static_cast<const uint8_t*>(a.k) + static_cast<size_t>(j0) * st_.kv.element_bytes();
    a.n_kv = j1 - j0;
    const float* qs[kMaxGroupHeads];
    float* s[kMaxGroupHeads];
    for (int i = 0; i < group; ++i) {
      qs[i] = qh.data() + static_cast<size_t>(g * group + i) * hd;
      s[i] = probs_of(g * group + i) + j0;
    }
    kernels::attention_scores_group(k_, a, qs, group, s);
  });
  st_.pool.run(n_heads, [&](int64_t h) {
    kernels::softmax_probs(k_, probs_of(static_cast<int>(h)), n_kv, round);
  });
  // Values: (KV head, range of dimensions), ranges in multiples of 16.
  st_.pool.run(static_cast<int64_t>(n_kv_heads) * parts, [&](int64_t task) {
    const int g = static_cast<int>(task / parts);
    const auto [d0, d1] = share(hd, 16, static_cast<int>(task % parts));
    if (d0 >= d1) return;
    kernels::AttentionHead a = base[static_cast<size_t>(g * group)];
    a.v = static_cast<const uint8_t*>(a.v) + static_cast<size_t>(d0) * st_.kv.element_bytes();
    a.head_dim = d1 - d0;
    const float* p[kMaxGroupHeads];
    float* o[kMaxGroupHeads];
    for (int i = 0; i < group; ++i) {
      p[i] = probs_of(g * group + i);
      o[i] = out.row(0) + static_cast<size_t>(g * group + i) * hd + d0;
    }
    kernels::attention_values_group(k_, a, group, p, o);
  });
}

void Blocks::add(int layer, Op op, Act& x, const Act& y) {
  for_rows(n_, [&](int r0, int r1) {
    for (int64_t i = r0 * x.dim; i < r1 * x.dim; ++i) x.p[i] += y.p[i];
  });
  observe(layer, op, x, rows_);
}

void Blocks::ffn_activation(int layer, FfnActivation a, const Act& gate, const Act& up, Act& out) {
  const int64_t f = gate.dim;
  for_rows(n_, [&](int r0, int r1) {
    if (a == FfnActivation::kReluSquared) {
      kernels::relu_sqr_mul(k_, (r1 - r0) * f, out.row(r0), gate.row(r0), up.row(r0));
    } else {
      // Row by row, as ggml's fused SwiGLU does.
      for (int r = r0; r < r1; ++r) kernels::swiglu(k_, f, out.row(r), gate.row(r), up.row(r));
    }
  });
  if (obs_ != nullptr) obs_->ffn_activation(layer, a, gate.p, up.p, out.p, f);
  observe(layer, Op::kFfnAct, out, rows_);
}

void Blocks::apply_head(float* fin, int n_rows, float* out, int top) {
  const kernels::WeightMatrix& head = st_.model.head();
  ForwardStats& stats = st_.stats;
  stats.logits_rows += n_rows;
  if (head.type == gguf::TensorType::Q8_0) {  // --head-type q8_0: quantizes its input itself
    kernels::matmul_q8_0_head(k_, head, fin, n_rows, out, &st_.pool, &st_.s.qa_head);
    stats.weight_bytes += kernels::q8_0_head_size(head.k, head.n_out);
    return;
  }
  if (head.type != gguf::TensorType::F32 && st_.numerics.f16_head_input) {
    // What ggml does to F32 activations meeting an F16 matrix: round them to f16.
    kernels::round_to_f16(k_, fin, static_cast<int64_t>(n_rows) * c_.n_embd);
  }
  const kernels::ScreenedHead* screened = st_.model.screened_head();
  if (screened != nullptr && top > 0) {
    const int64_t n_exact =
        kernels::screened_head(k_, *screened, fin, n_rows, top, out, &st_.pool, &st_.s.screen);
    stats.screened_rows += n_rows;
    stats.exact_rows += n_exact;
    stats.weight_bytes +=
        kernels::screen_bytes(*screened) + static_cast<uint64_t>(n_exact * head.row_bytes());
    return;
  }
  kernels::matmul_float(k_, head, fin, n_rows, out, &st_.pool);
  stats.weight_bytes += static_cast<uint64_t>(head.bytes());
}

void Blocks::head(const Act& x) {
  WarmSchedule& ws = st_.warm;
  if (!ws.learned) ws.groups.emplace_back();  // the LM head closes the schedule
  ws.learned = true;
  const int64_t d = c_.n_embd, nv = c_.n_vocab;
  const std::vector<float>& norm_w = st_.model.output_norm();
  // Rows whose logits nobody asked for, but an observer wants their final_norm or logits: one
  // by one through the head into side buffers, leaving the batch's logits untouched.
  if (obs_ != nullptr) {
    std::vector<float> fin, out;
    for (int r = 0; r < n_; ++r) {
      const BatchRow& row = rows_[static_cast<size_t>(r)];
      if (row.logits) continue;
      const bool want_logits = obs_->wants(row, -1, Op::kLogits);
      if (!want_logits && !obs_->wants(row, -1, Op::kFinalNorm)) continue;
      fin.resize(static_cast<size_t>(d));
      kernels::rms_norm(k_, x.row(r), norm_w.data(), d, c_.rms_eps, fin.data());
      obs_->output({Op::kFinalNorm, -1, rows_.subspan(static_cast<size_t>(r), 1), fin.data(), d});
      if (!want_logits) continue;
      out.resize(static_cast<size_t>(nv));
      apply_head(fin.data(), 1, out.data());
      obs_->output({Op::kLogits, -1, rows_.subspan(static_cast<size_t>(r), 1), out.data(), nv});
    }
  }
  // The rows that ask for logits, gathered in order.
  std::vector<BatchRow> wanted;
  std::vector<int> at;
  for (int r = 0; r < n_; ++r) {
    if (!rows_[static_cast<size_t>(r)].logits) continue;
    wanted.push_back(rows_[static_cast<size_t>(r)]);
    at.push_back(r);
  }
  if (wanted.empty()) return;
  const int n_out = static_cast<int>(wanted.size());
  Act& fin = st_.s.fin;
  for_rows(n_out, [&](int i0, int i1) {
    for (int i = i0; i < i1; ++i)
      kernels::rms_norm(k_, x.row(at[static_cast<size_t>(i)]), norm_w.data(), d, c_.rms_eps,
                        fin.row(i));
  });
  if (obs_ != nullptr) {
    obs_->rms_norm(-1, x.row(at[0]), norm_w.data(), d, c_.rms_eps, fin.p);
    obs_->output({Op::kFinalNorm, -1, wanted, fin.p, d});
  }
  // Rows asking for their largest few logits go through the screened head (if the model has
  // one), unless an observer is attached: it sees, and may check, every row's logits in full.
  const bool screen = st_.model.screened_head() != nullptr && obs_ == nullptr;
  int top = 0, n_top_rows = 0;
  for (const BatchRow& row : wanted) {
    if (!screen || row.top <= 0) continue;
    top = std::max(top, row.top);  // the n largest of a row include its own top
    ++n_top_rows;
  }
  if (n_top_rows == 0 || n_top_rows == n_out) {
    apply_head(fin.p, n_out, logits_, top);
  } else {  // a mixed batch: each kind of row gathered, through its head, scattered back
    for (const bool top_rows : {false, true}) {
      std::vector<int> idx;
      for (int i = 0; i < n_out; ++i) {
        if ((wanted[static_cast<size_t>(i)].top > 0) == top_rows) idx.push_back(i);
      }
      const auto m = static_cast<int64_t>(idx.size());
      st_.s.head_in.resize(static_cast<size_t>(m * d));
      st_.s.head_out.resize(static_cast<size_t>(m * nv));
      for (int64_t i = 0; i < m; ++i)
        std::memcpy(st_.s.head_in.data() + i * d, fin.row(idx[static_cast<size_t>(i)]),
                    static_cast<size_t>(d) * sizeof(float));
      apply_head(st_.s.head_in.data(), static_cast<int>(m), st_.s.head_out.data(),
                 top_rows ? top : 0);
      for (int64_t i = 0; i < m; ++i)
        std::memcpy(logits_ + static_cast<int64_t>(idx[static_cast<size_t>(i)]) * nv,
                    st_.s.head_out.data() + i * nv, static_cast<size_t>(nv) * sizeof(float));
    }
  }
  if (obs_ != nullptr) {
    obs_->product({-1, st_.model.head(), nullptr, fin.p, n_out, logits_});
    obs_->output({Op::kLogits, -1, wanted, logits_, nv});
  }
}

}  // namespace bitnet::model
