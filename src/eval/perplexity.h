// llama-perplexity's method on our engine: the text's tokens (BOS first when the vocabulary adds
// one) are cut into chunks of n_ctx tokens; each chunk is evaluated from an empty KV cache with
// its first token replaced by BOS (when the vocabulary adds one), and only the second half is
// scored: the logits at positions j in [n_ctx/2, n_ctx - 1) predict token j + 1, each adding
// -log p(token) (scoring.h). The estimate is exp(mean nll); its error, llama.cpp's, is
// ppl * sqrt(var(nll) / (count - 1)).
//
// With a KL base (kl_base.h) the same positions are written to it, or compared with it:
// KL divergence, top-1 agreement, Delta-p (p of the text's token, ours minus the base's) and
// the perplexity ratio, as llama-perplexity --kl-divergence reports them.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "core/result.h"
#include "eval/kl_base.h"
#include "model/context.h"

namespace bitnet::eval {

struct PerplexityOptions {
  int n_ctx = 512;
  int n_chunks = -1;  // < 0: every whole chunk of the text
  // Tokens per forward pass: below n_ctx a chunk takes several passes; a multiple of n_ctx
  // evaluates that many chunks side by side as parallel sequences (the context must have as
  // many sequences). Every row's logits are the same either way.
  int n_batch = 512;
  bool add_bos = true;
  int32_t bos = 0;
  // Called after each chunk (1-based count of chunks done, of n_chunks, seconds so far).
  std::function<void(int done, int n_chunks, double seconds)> on_chunk;
};

// Sums over the scored tokens: nll and nll^2 (llama.cpp's estimate and error).
struct NllSums {
  double nll = 0;
  double nll2 = 0;
  int64_t count = 0;
  void add(double v) {
    nll += v;
    nll2 += v * v;
    ++count;
  }
  double ppl() const;
  double err() const;  // 0 when the variance is not positive (or fewer than 2 tokens)
};

struct KlStats {
  NllSums q, base;
  double sum_nll_nll_base = 0;
  double sum_kld = 0, sum_kld2 = 0;
  double sum_p_diff = 0, sum_p_diff2 = 0, sum_p_diff4 = 0;
  int64_t same_top = 0;
  std::vector<float> kld;     // per scored position
  std::vector<float> p_diff;  // per scored position: p(token) ours - base's
};

struct PerplexityResult {
  int n_ctx = 0;
  int n_chunks = 0;
  int64_t n_text_tokens = 0;
  NllSums sums;
  std::vector<double> chunk_ppl;  // the running estimate after each chunk
  double eval_seconds = 0;        // forward passes and scoring, from the first pass to the last row
  int64_t eval_tokens = 0;        // tokens evaluated (n_chunks * n_ctx)
  bool has_kl = false;
  KlStats kl;
};

// How many chunks `n_tokens` tokens give: min(requested, n_tokens / n_ctx); requested < 0: all.
int chunk_count(int64_t n_tokens, int n_ctx, int requested);

// Evaluates the chunks of `tokens` on `ctx` (its KV cache is cleared). With `write_base`, every
// scored row goes to it; with `read_base`, each is compared with the base's row. The caller
// checks that the text is long enough and that the base matches it.
Result<PerplexityResult> perplexity(model::Context& ctx, std::span<const int32_t> tokens,
                                    const PerplexityOptions& o, KlBaseWriter* write_base = nullptr,
                                    KlBaseReader* read_base = nullptr);

// mean and llama.cpp's uncertainty sqrt((mean(x^2) - mean^2) / (count - 1)) (0 for count <= 10).
std::pair<double, double> mean_and_uncertainty(double sum, double sum2, int64_t count);
// The covariance of two per-token series' means, from their sums (0 for count < 10).
double mean_covariance(double sum_a, double sum_b, double sum_ab, int64_t count);
// Linear interpolation between the sorted values (fraction in [0, 1]).
double percentile(const std::vector<float>& sorted, double fraction);

}  // namespace bitnet::eval
