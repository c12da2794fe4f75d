#include "eval/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace bitnet::eval {

double NllSums::ppl() const { return count > 0 ? std::exp(nll / count) : 0.0; }

double NllSums::err() const {
  if (count < 2) return 0.0;
  const double mean = nll / count;
  const double var = nll2 / count - mean * mean;
  return var > 0 ? ppl() * std::sqrt(var / (count - 1)) : 0.0;
}

int chunk_count(int64_t n_tokens, int n_ctx, int requested) {
  const auto max_chunks = static_cast<int>(n_tokens / n_ctx);
  return requested < 0 ? max_chunks : std::min(requested, max_chunks);
}

std::pair<double, double> mean_and_uncertainty(double sum, double sum2, int64_t count) {
  if (count < 1) return {0.0, 0.0};
  const double f = sum / count;
  double df = sum2 / count - f * f;
  df = df > 0 && count > 10 ? std::sqrt(df / (count - 1)) : 0.0;
  return {f, df};
}

double mean_covariance(double sum_a, double sum_b, double sum_ab, int64_t count) {
  if (count < 10) return 0.0;
  return (sum_ab / count - (sum_a / count) * (sum_b / count)) / (count - 1);
}

double percentile(const std::vector<float>& v, double fraction) {
  if (v.empty()) return 0.0;
  if (fraction <= 0) return v.front();
  if (fraction >= 1) return v.back();
  double p = fraction * static_cast<double>(v.size() - 1);
  const auto ip = static_cast<size_t>(p);
  p -= static_cast<double>(ip);
  return (1 - p) * v[ip] + p * v[std::min(ip + 1, v.size() - 1)];
}

namespace {

// One scored row: our nll, and the KL base's row written or compared.
Status score_row(std::span<const float> logits, int32_t next, PerplexityResult& r,
                 KlBaseWriter* write_base, KlBaseReader* read_base, KlBaseRow& mine,
                 KlBaseRow& base) {
  const double nll = token_nll(logits, next);
  r.sums.add(nll);
  if (write_base == nullptr && read_base == nullptr) return {};
  mine.argmax = row_argmax(logits);
  mine.nll = nll;
  quantize_log_probs(logits, &mine.log_probs);
  if (write_base != nullptr) return write_base->write(mine);
  BITNET_TRY(read_base->read(&base));
  KlStats& k = r.kl;
  k.q.add(nll);
  k.base.add(base.nll);
  k.sum_nll_nll_base += nll * base.nll;
  const double kld = row_kld(base.log_probs, mine.log_probs, logits);
  k.sum_kld += kld;
  k.sum_kld2 += kld * kld;
  k.kld.push_back(static_cast<float>(kld));
  const double p_diff = std::exp(-nll) - std::exp(-base.nll);
  k.sum_p_diff += p_diff;
  k.sum_p_diff2 += p_diff * p_diff;
  k.sum_p_diff4 += p_diff * p_diff * p_diff * p_diff;
  k.p_diff.push_back(static_cast<float>(p_diff));
  k.same_top += mine.argmax == base.argmax ? 1 : 0;
  return {};
}

}  // namespace

Result<PerplexityResult> perplexity(model::Context& ctx, std::span<const int32_t> tokens,
                                    const PerplexityOptions& o, KlBaseWriter* write_base,
                                    KlBaseReader* read_base) {
  const int n_ctx = o.n_ctx;
  if (n_ctx < 4) return make_error("the context must be at least 4 tokens, not %d", n_ctx);
  if (n_ctx > ctx.n_ctx())
    return make_error("--ctx %d exceeds the context's %d positions", n_ctx, ctx.n_ctx());
  if (o.n_batch < 1 || (o.n_batch >= n_ctx && o.n_batch % n_ctx != 0))
    return make_error("--batch %d must be below --ctx %d or a multiple of it", o.n_batch, n_ctx);
  const int n_seq = std::min(std::max(1, o.n_batch / n_ctx), ctx.n_seq_max());
  const int n_pass = std::min(o.n_batch, n_ctx);  // positions per forward pass of each chunk
  const int64_t nv = ctx.model().config().n_vocab;

  PerplexityResult r;
  r.n_ctx = n_ctx;
  r.n_text_tokens = static_cast<int64_t>(tokens.size());
  r.n_chunks = chunk_count(r.n_text_tokens, n_ctx, o.n_chunks);
  r.has_kl = read_base != nullptr;
  const int first = n_ctx / 2;

  model::Batch batch;
  std::vector<float> logits;
  KlBaseRow mine, base;
  double seconds = 0;
  for (int c0 = 0; c0 < r.n_chunks; c0 += n_seq) {
    const int n_here = std::min(n_seq, r.n_chunks - c0);
    ctx.kv_cache().clear();
    // Logits of the scored positions, per sequence: [n_ctx - 1 - first rows x n_vocab].
    std::vector<std::vector<float>> scored(static_cast<size_t>(n_here));
    for (int p0 = 0; p0 < n_ctx; p0 += n_pass) {
      batch.clear();
      for (int s = 0; s < n_here; ++s) {
        const size_t start = static_cast<size_t>(c0 + s) * n_ctx;
        for (int p = p0; p < std::min(p0 + n_pass, n_ctx); ++p) {
          const int32_t t = p == 0 && o.add_bos ? o.bos : tokens[start + p];
          batch.add(t, s, p, p >= first && p < n_ctx - 1);
        }
      }
      const auto t0 = std::chrono::steady_clock::now();
      BITNET_TRY(ctx.decode(batch, &logits));
      seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      // Rows come in batch order: each sequence's scored rows of this pass, sequence by sequence.
      const int lo = std::max(p0, first), hi = std::min(p0 + n_pass, n_ctx - 1);
      const int rows = std::max(0, hi - lo);
      for (int s = 0; s < n_here; ++s) {
        const float* src = logits.data() + static_cast<size_t>(s) * rows * nv;
        scored[static_cast<size_t>(s)].insert(scored[static_cast<size_t>(s)].end(), src,
                                              src + static_cast<size_t>(rows) * nv);
      }
    }
    for (int s = 0; s < n_here; ++s) {
      const size_t start = static_cast<size_t>(c0 + s) * n_ctx;
      for (int j = first; j < n_ctx - 1; ++j) {
        const std::span<const float> row(
            scored[static_cast<size_t>(s)].data() + static_cast<size_t>(j - first) * nv,
            static_cast<size_t>(nv));
        BITNET_TRY(score_row(row, tokens[start + j + 1], r, write_base, read_base, mine, base));
      }
      r.chunk_ppl.push_back(r.sums.ppl());
    }
    r.eval_tokens += static_cast<int64_t>(n_here) * n_ctx;
    if (o.on_chunk) o.on_chunk(c0 + n_here, r.n_chunks, seconds);
  }
  r.eval_seconds = seconds;
  std::sort(r.kl.kld.begin(), r.kl.kld.end());
  std::sort(r.kl.p_diff.begin(), r.kl.p_diff.end());
  return r;
}

}  // namespace bitnet::eval
