// `bitnet bench`: prompt-processing (pp) and token-generation (tg) speed, like llama-bench, plus
// the machine's measured read bandwidth and the fraction of the memory roofline tg reaches
// (token generation reads every weight once per token). With --parallel N it also decodes N
// sequences together, one batch of N rows per step (what a server does with N clients), and
// prints the aggregate and per-sequence rates beside the single-sequence one.
//
// Every decode step asks for the logits a sampler would look at (--top: 1, the exact argmax of
// greedy decoding, by default; 0 for every logit), and the weight bytes the steps read are
// counted as the kernels stream them (model::ForwardStats), not estimated.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/model_flags.h"
#include "core/bandwidth.h"
#include "core/random.h"
#include "kernels/dot_peak.h"
#include "model/context.h"

namespace bitnet::cli {
namespace {

struct BenchFlags {
  std::string model;
  std::vector<int> prompt_sizes = {64};
  std::vector<int> gen_sizes = {64};
  std::vector<int> threads = {2};
  int reps = 5;
  bool json = false;
  std::string kernels;
  std::string head_type = "auto";
  int parallel = 1;
  int top = 1;
  int depth = 0;
};

struct Stats {
  double median, min, max;
};

Stats stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  const double med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  return {med, v.front(), v.back()};
}

uint64_t peak_rss_bytes() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<uint64_t>(ru.ru_maxrss) * 1024;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int run_bench(const BenchFlags& f) {
  auto load_options = model_load_options(f.kernels, f.head_type);
  if (!load_options) return fail(load_options.error());
  if (f.reps < 1) return fail("-r must be at least 1");
  if (f.parallel < 1 || f.parallel > 256) return fail("--parallel must be in 1..256");
  if (f.top < 0) return fail("--top must not be negative");
  if (f.depth < 0) return fail("--depth must not be negative");
  for (int t : f.threads) {
    if (t < 1) return fail("thread counts must be positive");
  }
  for (int n : f.prompt_sizes) {
    if (n < 1) return fail("prompt sizes must be positive");
  }
  auto m = model::Model::load(f.model, *load_options);
  if (!m) return fail(m.error());
  const auto& c = (*m)->config();
  // What a decode step reads: every block matrix and the LM head in the precision in use.
  const uint64_t weight_bytes = (*m)->decode_weight_bytes();
  int max_ctx = 1;
  for (int p : f.prompt_sizes) max_ctx = std::max(max_ctx, p);
  for (int g : f.gen_sizes) max_ctx = std::max(max_ctx, f.depth + g + 1);
  if (max_ctx > static_cast<int>(c.n_ctx_train))
    return fail("test sizes exceed the model's context length");

  SplitMix64 rng(1234);
  // One stream of tokens per sequence (the first is the single-sequence tests' stream).
  std::vector<std::vector<int32_t>> streams(static_cast<size_t>(f.parallel));
  for (auto& s : streams) {
    s.resize(static_cast<size_t>(max_ctx));
    for (auto& t : s) t = static_cast<int32_t>(rng.below(c.n_vocab));
  }
  const std::vector<int32_t>& tokens = streams[0];

  nlohmann::ordered_json results = nlohmann::ordered_json::array();
  if (!f.json) {
    std::printf(
        "model %s: %s, %s weights, %s head (--head-type %s), %.2f GB read per token; "
        "kernels %s\n",
        f.model.c_str(), std::string(model::arch_name(c.arch)).c_str(),
        std::string(gguf::tensor_type_name((*m)->weight_type())).c_str(),
        std::string(gguf::tensor_type_name((*m)->head().type)).c_str(),
        std::string(model::head_type_name((*m)->head_type())).c_str(), weight_bytes / 1e9,
        std::string((*m)->kernels().name()).c_str());
    std::printf("%-8s %7s %12s %12s %12s %10s %9s\n", "test", "threads", "t/s median", "t/s min",
                "t/s max", "read GB/s", "roofline");
  }
  for (int threads : f.threads) {
    // Measured (in a forked child) before this thread count's context starts its workers.
    const double bw = measure_read_bandwidth_isolated(threads);
    // The int8 dot-product peak of this many threads, measured (kernels/dot_peak.h); prompt
    // processing is compute-bound, so its multiply-adds per second over this are its efficiency.
    kernels::DotPeak peak;
    if (!f.prompt_sizes.empty()) {
      ThreadPool peak_pool(threads);
      peak = kernels::measure_int8_dot_peak((*m)->kernels(), &peak_pool);
    }
    auto s = model::Context::create(
        **m, {.n_ctx = max_ctx, .kv_f16 = true, .n_threads = threads, .n_seq_max = f.parallel});
    if (!s) return fail(s.error());
    model::KvCache& kv = (*s)->kv_cache();
    std::vector<float> logits;
    auto emit = [&](const std::string& test, const Stats& st, double read_gbs, double roofline,
                    const nlohmann::ordered_json& extra = {}) {
      nlohmann::ordered_json j = {{"test", test},
                                  {"threads", threads},
                                  {"tok_s_median", st.median},
                                  {"tok_s_min", st.min},
                                  {"tok_s_max", st.max},
                                  {"reps", f.reps},
                                  {"kernels", (*m)->kernels().name()},
                                  {"head_type", gguf::tensor_type_name((*m)->head().type)},
                                  {"head", model::head_type_name((*m)->head_type())},
                                  {"read_bandwidth_gbs", read_gbs}};
      if (roofline > 0) {
        j["bytes_per_token"] = weight_bytes;
        j["roofline_fraction"] = roofline;
      }
      j["peak_rss_bytes"] = peak_rss_bytes();
      for (const auto& [k, v] : extra.items()) j[k] = v;
      results.push_back(j);
      if (!f.json) {
        std::printf("%-8s %7d %12.2f %12.2f %12.2f %10.1f %8s\n", test.c_str(), threads, st.median,
                    st.min, st.max, read_gbs,
                    roofline > 0
                        ? (std::to_string(static_cast<int>(roofline * 100 + 0.5)) + "%").c_str()
                        : "");
      }
    };
    for (int p : f.prompt_sizes) {
      std::vector<double> rates;
      (*s)->reset_stats();
      for (int r = 0; r < f.reps; ++r) {
        kv.clear();
        const auto t0 = std::chrono::steady_clock::now();
        if (auto st = (*s)->eval(std::span(tokens).first(p), false, &logits, 0, f.top); !st)
          return fail(st.error());
        rates.push_back(p / seconds_since(t0));
      }
      const Stats st = stats(rates);
      // Counted by the forward pass: the int8 multiply-adds of every ternary product.
      const double macs_per_token =
          static_cast<double>((*s)->stats().int8_macs) / (static_cast<double>(p) * f.reps);
      const double macs_s = st.median * macs_per_token;
      nlohmann::ordered_json extra;
      if (macs_per_token > 0) extra["int8_macs_per_token"] = macs_per_token;
      if (peak.macs_per_s > 0 && macs_per_token > 0) {
        extra["int8_peak_macs_s"] = peak.macs_per_s;
        extra["int8_peak_fraction"] = macs_s / peak.macs_per_s;
        extra["int8_peak_instruction"] = peak.instruction;
      }
      emit("pp" + std::to_string(p), st, bw, 0, extra);
      if (!f.json && peak.macs_per_s > 0 && macs_per_token > 0) {
        std::printf(
            "  prompt: %.0f G int8 multiply-adds/s (%.2f G per token) = %.0f%% of the int8 "
            "dot-product peak, %.0f G/s (%s on %d threads, measured)\n",
            macs_s / 1e9, macs_per_token / 1e9, 100 * macs_s / peak.macs_per_s,
            peak.macs_per_s / 1e9, std::string(peak.instruction).c_str(), threads);
      }
    }
    for (int g : f.gen_sizes) {
      if (g < 1) continue;
      std::vector<double> rates;
      model::ForwardStats counted;  // over the timed steps of every repetition
      for (int r = 0; r < f.reps; ++r) {
        kv.clear();
        // The untimed start: the first token, or a prompt of `depth` + 1 tokens with --depth.
        const auto start = static_cast<size_t>(f.depth) + 1;
        if (auto st = (*s)->eval(std::span(tokens).first(start), false, &logits, 0, f.top); !st)
          return fail(st.error());
        (*s)->reset_stats();
        const auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < g; ++i) {
          if (auto st = (*s)->eval(std::span(tokens).subspan(start + static_cast<size_t>(i), 1),
                                   false, &logits, 0, f.top);
              !st)
            return fail(st.error());
        }
        rates.push_back(g / seconds_since(t0));
        counted += (*s)->stats();
      }
      const Stats st = stats(rates);
      const double steps = static_cast<double>(g) * f.reps;
      const double bytes_per_token = static_cast<double>(counted.weight_bytes) / steps;
      const double exact_per_screened =
          counted.screened_rows > 0
              ? static_cast<double>(counted.exact_rows) / static_cast<double>(counted.screened_rows)
              : 0;
      // Fraction of the roofline: bytes each token must read, over the measured bandwidth. The
      // bandwidth is measured again right after the runs and the higher of the two is used: on a
      // shared host a transient dip in the first measurement must not flatter the fraction.
      const double bw_tg = std::max(bw, measure_read_bandwidth_isolated(threads));
      nlohmann::ordered_json head_extra = {{"top", f.top},
                                           {"counted_bytes_per_token", bytes_per_token}};
      if (counted.screened_rows > 0) head_extra["exact_head_rows_per_token"] = exact_per_screened;
      const std::string tg_name =
          "tg" + std::to_string(g) + (f.depth > 0 ? "@d" + std::to_string(f.depth) : "");
      emit(tg_name, st, bw_tg, bw_tg > 0 ? st.median * bytes_per_token / (bw_tg * 1e9) : 0,
           head_extra);
      if (f.depth > 0) results.back()["depth"] = f.depth;
      if (!f.json) {
        std::printf("  %s: %.3f GB of weights read per token (counted)",
                    f.top > 0 ? ("logits: the " + std::to_string(f.top) + " largest").c_str()
                              : "logits: all",
                    bytes_per_token / 1e9);
        if (counted.screened_rows > 0)
          std::printf("; screened head: %.1f of %u rows computed exactly per token",
                      exact_per_screened, c.n_vocab);
        std::printf("\n");
      }
      if (f.parallel > 1) {
        // N sequences, each started with its own first token, then g steps of one batch of N
        // decode rows, logits for every row. Its roofline fraction says how close a step comes
        // to the time one pass over the weights takes: near 1 the steps are bandwidth-bound, well
        // below it they are compute-bound.
        const int n = f.parallel;
        model::Batch batch;
        std::vector<double> agg;
        for (int r = 0; r < f.reps; ++r) {
          kv.clear();
          batch.clear();
          for (int q = 0; q < n; ++q)
            batch.add(streams[static_cast<size_t>(q)][0], q, 0, true, f.top);
          if (auto e = (*s)->decode(batch, &logits); !e) return fail(e.error());
          const auto t0 = std::chrono::steady_clock::now();
          for (int i = 0; i < g; ++i) {
            batch.clear();
            for (int q = 0; q < n; ++q)
              batch.add(streams[static_cast<size_t>(q)][static_cast<size_t>(1 + i)], q, 1 + i, true,
                        f.top);
            if (auto e = (*s)->decode(batch, &logits); !e) return fail(e.error());
          }
          agg.push_back(static_cast<double>(n) * g / seconds_since(t0));
        }
        const Stats pst = stats(agg);
        const double steps_s = pst.median / n;
        const double frac =
            bw_tg > 0 ? steps_s * static_cast<double>(weight_bytes) / (bw_tg * 1e9) : 0;
        emit("tg" + std::to_string(g) + "x" + std::to_string(n), pst, bw_tg, frac,
             {{"parallel", n},
              {"per_sequence_tok_s", steps_s},
              {"aggregate_vs_single", st.median > 0 ? pst.median / st.median : 0},
              {"bound", frac >= 0.8 ? "bandwidth" : "compute"}});
        if (!f.json) {
          std::printf(
              "  %d sequences: aggregate %.2f tok/s = %.2fx the single sequence, %.2f tok/s "
              "each; steps at %.0f%% of the memory roofline (%s-bound)\n",
              n, pst.median, st.median > 0 ? pst.median / st.median : 0, steps_s, frac * 100,
              frac >= 0.8 ? "bandwidth" : "compute");
        }
      }
    }
  }
  if (f.json)
    std::puts(results.dump(2).c_str());
  else
    std::printf("peak RSS %.2f GB (file %.2f GB)\n", peak_rss_bytes() / 1e9,
                (*m)->file().file_size() / 1e9);
  return kExitOk;
}

}  // namespace

std::vector<Command> register_bench(CLI::App& app) {
  auto* sub = app.add_subcommand("bench", "Prompt and generation speed, bandwidth roofline");
  auto f = std::make_shared<BenchFlags>();
  sub->add_option("-m,--model", f->model, "GGUF model file")->required();
  sub->add_option("-p,--n-prompt", f->prompt_sizes, "Prompt sizes, e.g. 64,128")
      ->delimiter(',')
      ->capture_default_str();
  sub->add_option("-n,--n-gen", f->gen_sizes, "Generated token counts (0: none)")
      ->delimiter(',')
      ->capture_default_str();
  sub->add_option("-t,--threads", f->threads, "Thread counts, e.g. 1,2")
      ->delimiter(',')
      ->capture_default_str();
  sub->add_option("-r,--repetitions", f->reps, "Repetitions per test")->capture_default_str();
  sub->add_option("--kernels", f->kernels,
                  "Force a kernel variant: " + kernels::variant_names() + " (also BITNET_KERNELS)");
  sub->add_option("--head-type", f->head_type, kHeadTypeHelp)->capture_default_str();
  sub->add_option("--parallel", f->parallel,
                  "Also decode this many sequences together (one batch per step): aggregate and "
                  "per-sequence tok/s")
      ->capture_default_str();
  sub->add_option("--top", f->top,
                  "Logits each decode step asks for: its n largest (1: the exact argmax of greedy "
                  "decoding; k: top-k sampling), or 0 for every logit")
      ->capture_default_str();
  sub->add_option("--depth", f->depth,
                  "Positions already in the cache when the single-sequence generation tests start "
                  "(an untimed prompt of that many tokens first; its attention over them is "
                  "timed, its cache reads are not counted in the roofline's bytes)")
      ->capture_default_str();
  sub->add_flag("--json", f->json, "Print a JSON array, one object per test");
  return {Command{sub, [f] { return run_bench(*f); }}};
}

}  // namespace bitnet::cli
