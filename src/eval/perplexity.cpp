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

// The scored rows of one forward pass. The expensive part of each row (an exponential per
// vocabulary entry for the nll, the KL codes and the KL sum) is independent of the others and
// runs on the context's threads; the sums are then added in row order, llama-perplexity's order,
// so the result does not depend on the thread count.
struct PassScorer {
  std::vector<double> nll, kld;
  std::vector<KlBaseRow> mine, base;

  Status score(ThreadPool& pool, const float* logits, int64_t nv, std::span<const int32_t> next,
               PerplexityResult& r, KlBaseWriter* write_base, KlBaseReader* read_base) {
    const size_t n = next.size();
    const bool kl = write_base != nullptr || read_base != nullptr;
    nll.resize(n);
    kld.resize(n);
    if (kl) mine.resize(std::max(mine.size(), n));
    if (read_base != nullptr) {
      base.resize(std::max(base.size(), n));
      for (size_t i = 0; i < n; ++i) BITNET_TRY(read_base->read(&base[i]));
    }
    auto row = [&](size_t i) {
      return std::span<const float>(logits + i * static_cast<size_t>(nv), static_cast<size_t>(nv));
    };
    pool.run(static_cast<int64_t>(n), [&](int64_t j) {
      const auto i = static_cast<size_t>(j);
      nll[i] = token_nll(row(i), next[i]);
      if (!kl) return;
      mine[i].argmax = row_argmax(row(i));
      mine[i].nll = nll[i];
      quantize_log_probs(row(i), &mine[i].log_probs);
      if (read_base != nullptr) kld[i] = row_kld(base[i].log_probs, mine[i].log_probs, row(i));
    });
    for (size_t i = 0; i < n; ++i) {
      r.sums.add(nll[i]);
      if (write_base != nullptr) BITNET_TRY(write_base->write(mine[i]));
      if (read_base == nullptr) continue;
      KlStats& k = r.kl;
      k.q.add(nll[i]);
      k.base.add(base[i].nll);
      k.sum_nll_nll_base += nll[i] * base[i].nll;
      k.sum_kld += kld[i];
      k.sum_kld2 += kld[i] * kld[i];
      k.kld.push_back(static_cast<float>(kld[i]));
      const double p_diff = std::exp(-nll[i]) - std::exp(-base[i].nll);
      k.sum_p_diff += p_diff;
      k.sum_p_diff2 += p_diff * p_diff;
      k.sum_p_diff4 += p_diff * p_diff * p_diff * p_diff;
      k.p_diff.push_back(static_cast<float>(p_diff));
      k.same_top += mine[i].argmax == base[i].argmax ? 1 : 0;
    }
    return {};
  }
};

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
  PassScorer scorer;
  const auto start_time = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_time).count();
  };
  for (int c0 = 0; c0 < r.n_chunks; c0 += n_seq) {
    const int n_here = std::min(n_seq, r.n_chunks - c0);
    ctx.kv_cache().clear();
    for (int p0 = 0; p0 < n_ctx; p0 += n_pass) {
      batch.clear();
      for (int s = 0; s < n_here; ++s) {
        const size_t start = static_cast<size_t>(c0 + s) * n_ctx;
        for (int p = p0; p < std::min(p0 + n_pass, n_ctx); ++p) {
          const int32_t t = p == 0 && o.add_bos ? o.bos : tokens[start + p];
          batch.add(t, s, p, p >= first && p < n_ctx - 1);
        }
      }
      BITNET_TRY(ctx.decode(batch, &logits));
      // Rows come in batch order: each sequence's scored rows of this pass, sequence by sequence.
      // Scoring them now keeps llama-perplexity's order (chunk by chunk, position by position):
      // several sequences share a pass only when a pass holds whole chunks.
      const int lo = std::max(p0, first), hi = std::min(p0 + n_pass, n_ctx - 1);
      const int rows = std::max(0, hi - lo);
      for (int s = 0; s < n_here; ++s) {
        const size_t start = static_cast<size_t>(c0 + s) * n_ctx;
        BITNET_TRY(scorer.score(
            ctx.thread_pool(), logits.data() + static_cast<size_t>(s) * rows * nv, nv,
            tokens.subspan(start + lo + 1, static_cast<size_t>(rows)), r, write_base, read_base));
        if (p0 + n_pass >= n_ctx) r.chunk_ppl.push_back(r.sums.ppl());
      }
    }
    r.eval_tokens += static_cast<int64_t>(n_here) * n_ctx;
    if (o.on_chunk) o.on_chunk(c0 + n_here, r.n_chunks, elapsed());
  }
  const double seconds = elapsed();
  r.eval_seconds = seconds;
  std::sort(r.kl.kld.begin(), r.kl.kld.end());
  std::sort(r.kl.p_diff.begin(), r.kl.p_diff.end());
  return r;
}

}  // namespace bitnet::eval
