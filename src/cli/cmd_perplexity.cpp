// `bitnet perplexity`: llama-perplexity's measurement (eval/perplexity.h) on a text file, and
// with --kl-divergence-base / --kl-divergence the comparison of two models' predictions over it.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "cli/command.h"
#include "cli/model_flags.h"
#include "eval/perplexity.h"

namespace bitnet::cli {
namespace {

struct PerplexityFlags {
  ModelFlags model;
  std::string text_file;
  std::optional<int> chunks;  // unset: all
  int batch = 0;              // 0: --ctx
  bool json = false;
  std::string kl_base_out;
  std::string kl_base_in;
};

void print_kl_report(const eval::PerplexityResult& r) {
  const eval::KlStats& k = r.kl;
  const int64_t n = k.q.count;
  const auto lq = eval::mean_and_uncertainty(k.q.nll, k.q.nll2, n);
  const auto lb = eval::mean_and_uncertainty(k.base.nll, k.base.nll2, n);
  const double cov = eval::mean_covariance(k.q.nll, k.base.nll, k.sum_nll_nll_base, n);
  const double ppl_q = std::exp(lq.first), ppl_b = std::exp(lb.first);
  const double ratio = lq.first - lb.first;
  const double ratio_unc =
      std::sqrt(std::max(0.0, lq.second * lq.second + lb.second * lb.second - 2.0 * cov));
  std::printf("====== Perplexity statistics ======\n");
  std::printf("Mean PPL(Q)                   : %10.6f ± %10.6f\n", ppl_q, ppl_q * lq.second);
  std::printf("Mean PPL(base)                : %10.6f ± %10.6f\n", ppl_b, ppl_b * lb.second);
  std::printf("Mean ln(PPL(Q)/PPL(base))     : %10.6f ± %10.6f\n", ratio, ratio_unc);
  std::printf("Mean PPL(Q)/PPL(base)         : %10.6f ± %10.6f\n", std::exp(ratio),
              std::exp(ratio) * ratio_unc);
  std::printf("\n====== KL divergence statistics ======\n");
  const auto kl = eval::mean_and_uncertainty(k.sum_kld, k.sum_kld2, n);
  std::printf("Mean    KLD: %10.6f ± %10.6f\n", kl.first, kl.second);
  std::printf("Maximum KLD: %10.6f\n", eval::percentile(k.kld, 1.0));
  std::printf("99.0%%   KLD: %10.6f\n", eval::percentile(k.kld, 0.99));
  std::printf("90.0%%   KLD: %10.6f\n", eval::percentile(k.kld, 0.90));
  std::printf("Median  KLD: %10.6f\n", eval::percentile(k.kld, 0.5));
  std::printf("Minimum KLD: %10.6f\n", eval::percentile(k.kld, 0.0));
  std::printf("\n====== Token probability statistics ======\n");
  const auto pd = eval::mean_and_uncertainty(k.sum_p_diff, k.sum_p_diff2, n);
  std::printf("Mean    Δp: %6.3f ± %5.3f %%\n", 100.0 * pd.first, 100.0 * pd.second);
  std::printf("Maximum Δp: %6.3f%%\n", 100.0 * eval::percentile(k.p_diff, 1.0));
  std::printf("Median  Δp: %6.3f%%\n", 100.0 * eval::percentile(k.p_diff, 0.5));
  std::printf("Minimum Δp: %6.3f%%\n", 100.0 * eval::percentile(k.p_diff, 0.0));
  std::printf("RMS Δp    : %6.3f %%\n", 100.0 * std::sqrt(n > 0 ? k.sum_p_diff2 / n : 0.0));
  const double top = n > 0 ? 1.0 * k.same_top / n : 0.0;
  std::printf("Same top p: %6.3f %%\n", 100.0 * top);
}

int run_perplexity(const PerplexityFlags& f) {
  if (f.model.ctx < 4) return fail("--ctx must be at least 4");
  if (f.chunks && *f.chunks < 1) return fail("--chunks must be positive");
  if (f.batch < 0) return fail("--batch must not be negative");
  if (!f.kl_base_out.empty() && !f.kl_base_in.empty())
    return fail("--kl-divergence-base and --kl-divergence are exclusive");
  std::ifstream in(f.text_file, std::ios::binary);
  if (!in) return fail("cannot read the text file " + f.text_file);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  if (text.empty()) return fail("the text file " + f.text_file + " is empty");

  std::unique_ptr<eval::KlBaseReader> base;
  if (!f.kl_base_in.empty()) {
    auto b = eval::KlBaseReader::open(f.kl_base_in);
    if (!b) return fail(b.error());
    base = std::move(*b);
  }
  auto lm = load_model(f.model, /*all_logits=*/true);
  if (!lm) return fail(lm.error());
  const auto& cfg = lm->model->config();
  if (f.model.ctx > static_cast<int>(cfg.n_ctx_train))
    return fail("--ctx " + std::to_string(f.model.ctx) + " exceeds the model's context length " +
                std::to_string(cfg.n_ctx_train));
  const int n_ctx = f.model.ctx;
  // llama-perplexity refuses such vocabularies too: an EOS after the text would be scored.
  if (lm->tokenizer.info().add_eos)
    return fail("the vocabulary adds EOS to every text; perplexity needs one that does not");
  const std::vector<int32_t> tokens = lm->tokenizer.encode(text, {.add_special = true});
  // As llama-perplexity: two chunks' worth at least, so the estimate rests on something.
  if (static_cast<int64_t>(tokens.size()) < 2 * static_cast<int64_t>(n_ctx))
    return fail("the text gives " + std::to_string(tokens.size()) + " tokens; --ctx " +
                std::to_string(n_ctx) + " needs at least " + std::to_string(2 * n_ctx));
  eval::PerplexityOptions o;
  o.n_ctx = n_ctx;
  o.n_chunks = f.chunks.value_or(-1);
  o.n_batch = f.batch > 0 ? f.batch : n_ctx;
  o.add_bos = lm->tokenizer.add_bos();
  o.bos = lm->tokenizer.bos();
  const int n_chunks = eval::chunk_count(static_cast<int64_t>(tokens.size()), n_ctx, o.n_chunks);

  std::unique_ptr<eval::KlBaseWriter> writer;
  if (base) {
    const eval::KlBaseHeader& h = base->header();
    if (h.n_vocab != cfg.n_vocab)
      return fail(f.kl_base_in + " was written with a vocabulary of " + std::to_string(h.n_vocab) +
                  " tokens; this model has " + std::to_string(cfg.n_vocab));
    if (static_cast<int>(h.n_ctx) != n_ctx)
      return fail(f.kl_base_in + " was written with --ctx " + std::to_string(h.n_ctx) +
                  "; this run uses " + std::to_string(n_ctx));
    if (h.n_tokens > tokens.size() ||
        eval::hash_tokens(std::span(tokens).first(h.n_tokens)) != h.tokens_hash)
      return fail(f.kl_base_in + " was written for another text or tokenizer (token hash differs)");
    if (f.chunks && *f.chunks > static_cast<int>(h.n_chunks))
      return fail("--chunks " + std::to_string(*f.chunks) + " exceeds the base's " +
                  std::to_string(h.n_chunks));
    o.n_chunks = f.chunks.value_or(static_cast<int>(h.n_chunks));
  } else if (!f.kl_base_out.empty()) {
    eval::KlBaseHeader h;
    h.n_vocab = cfg.n_vocab;
    h.n_ctx = static_cast<uint32_t>(n_ctx);
    h.n_chunks = static_cast<uint32_t>(n_chunks);
    h.n_tokens = static_cast<uint64_t>(n_chunks) * n_ctx;
    h.tokens_hash = eval::hash_tokens(std::span(tokens).first(h.n_tokens));
    h.rows_per_chunk = static_cast<uint32_t>(n_ctx - 1 - n_ctx / 2);
    auto w = eval::KlBaseWriter::create(f.kl_base_out, h);
    if (!w) return fail(w.error());
    writer = std::move(*w);
  }

  // A context with as many sequences as one batch holds chunks.
  const int n_seq = std::max(1, o.n_batch / n_ctx);
  const int threads = lm->context->n_threads();
  lm->context.reset();
  auto ctx = model::Context::create(*lm->model, {.n_ctx = n_ctx,
                                                 .kv_f16 = f.model.kv_type == "f16",
                                                 .n_threads = threads,
                                                 .n_seq_max = n_seq});
  if (!ctx) return fail(ctx.error());
  const bool tty = isatty(STDERR_FILENO) != 0;
  if (tty) {
    o.on_chunk = [](int done, int total, double s) {
      const double eta = done > 0 ? s / done * (total - done) : 0.0;
      std::fprintf(stderr, "\rperplexity: chunk %d/%d, %.1f s, ETA %.1f s   ", done, total, s, eta);
      if (done == total) std::fprintf(stderr, "\n");
    };
  }
  auto r = eval::perplexity(**ctx, tokens, o, writer.get(), base.get());
  if (!r) return fail(r.error());
  if (writer) {
    if (auto st = writer->finish(); !st) return fail(st.error());
  }
  const double tok_s = r->eval_seconds > 0 ? r->eval_tokens / r->eval_seconds : 0.0;
  if (f.json) {
    nlohmann::ordered_json j;
    j["ppl"] = r->sums.ppl();
    j["err"] = r->sums.err();
    j["chunks"] = r->n_chunks;
    j["n_ctx"] = r->n_ctx;
    j["text_tokens"] = r->n_text_tokens;
    j["tokens_scored"] = r->sums.count;
    j["tokens_evaluated"] = r->eval_tokens;
    j["eval_seconds"] = r->eval_seconds;
    j["tok_s"] = tok_s;
    j["chunk_ppl"] = r->chunk_ppl;
    if (r->has_kl) {
      const eval::KlStats& k = r->kl;
      const int64_t n = k.q.count;
      j["kl"] = {{"mean_kld", n > 0 ? k.sum_kld / n : 0.0},
                 {"median_kld", eval::percentile(k.kld, 0.5)},
                 {"p99_kld", eval::percentile(k.kld, 0.99)},
                 {"p90_kld", eval::percentile(k.kld, 0.90)},
                 {"max_kld", eval::percentile(k.kld, 1.0)},
                 {"min_kld", eval::percentile(k.kld, 0.0)},
                 {"same_top", n > 0 ? 1.0 * k.same_top / n : 0.0},
                 {"mean_delta_p", n > 0 ? k.sum_p_diff / n : 0.0},
                 {"rms_delta_p", n > 0 ? std::sqrt(k.sum_p_diff2 / n) : 0.0},
                 {"ppl_base", k.base.ppl()},
                 {"ln_ppl_ratio", n > 0 ? (k.q.nll - k.base.nll) / n : 0.0}};
    }
    std::puts(j.dump().c_str());
    return kExitOk;
  }
  for (size_t i = 0; i < r->chunk_ppl.size(); ++i)
    std::printf("[%zu]%.4f,", i + 1, r->chunk_ppl[i]);
  std::printf("\n");
  std::printf("Final estimate: PPL = %.4f +/- %.5f\n", r->sums.ppl(), r->sums.err());
  std::printf("%d chunks of %d tokens, %lld scored; evaluation %.1f tok/s (%d threads)\n",
              r->n_chunks, r->n_ctx, static_cast<long long>(r->sums.count), tok_s, threads);
  if (r->has_kl) {
    std::printf("\n");
    print_kl_report(*r);
  }
  return kExitOk;
}

}  // namespace

std::vector<Command> register_perplexity(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "perplexity", "Perplexity of a text (llama-perplexity's method), and KL divergence");
  auto f = std::make_shared<PerplexityFlags>();
  f->model.ctx = 512;  // llama-perplexity's default chunk length
  f->model.add_to(sub);
  sub->get_option("--ctx")->description("Chunk length in tokens (default: 512)");
  sub->add_option("-f,--file", f->text_file, "Text file")->required();
  sub->add_option("--chunks", f->chunks, "Chunks to evaluate at most (default: all)");
  sub->add_option("-b,--batch", f->batch,
                  "Tokens per forward pass: below --ctx or a multiple of it, which evaluates "
                  "that many chunks together (default: --ctx)");
  sub->add_flag("--json", f->json, "Print one JSON object");
  sub->add_option("--kl-divergence-base", f->kl_base_out,
                  "Write this model's log-probabilities over the text to FILE");
  sub->add_option("--kl-divergence", f->kl_base_in,
                  "Compare with the log-probabilities in FILE (same text): KL divergence, top-1 "
                  "agreement, Delta-p, PPL ratio");
  return {Command{sub, [f] { return run_perplexity(*f); }}};
}

}  // namespace bitnet::cli
