// Our engine against the pinned llama.cpp on the same GGUF file, in one process, alternating
// the two run by run (A B A B ...) so drift in machine load hits both alike. Prints medians and
// the ratio ours / llama.cpp for prompt processing (whole prompt as one batch) and token
// generation, per thread count.
//
//   build/bin/bench_vs_llama MODEL.gguf [reps=5] [threads=1,2]
//   [head-type=auto|file|screened|fast|q8_0] [reference-cpu-variant, e.g. haswell]
//
// Equal work, printed at the start: prompt tests give both engines the same tokens as one batch
// and ask each for every logit of the last position only (llama.cpp skips the LM head of the
// other rows; so do we). Generation tests decode greedily, the same tokens: ours asks each step
// for what greedy decoding needs, the argmax of the exact head (BatchRow::top = 1): with the
// default head (auto, the screened exact head where it can be built) that is the full exact
// head's argmax without computing most of its rows; llama.cpp computes every logit of the
// step.
// With head-type fast our LM head sums its F16 products in float (as llama.cpp's own SIMD dot
// products do; model::HeadType) instead of in double, with q8_0 it is quantized at load; either
// way the logits are not our exact head's, and the output says so on every line.
// The reference loads its best CPU variant for this machine (not the portable one the parity
// tests use), or the one named (haswell: llama.cpp's AVX2 build, to compare with ours under
// BITNET_KERNELS=avx2 as an AVX2-only laptop would run both). Its timings include copying one row
// of logits out of llama.cpp per test or step (0.5 MB): microseconds, not subtracted; alderlake
// is its AVX2 + AVX-VNNI build, the peer of BITNET_KERNELS=avx2-vnni.
// BITNET_KERNELS (scalar | avx2 | avx2-vnni | avx512) and BITNET_HUGEPAGES=1 act on our side as
// they do for `bitnet`.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "core/random.h"
#include "generate/sampler.h"
#include "kernels/dispatch.h"
#include "model/context.h"
#include "reference/llama_reference.h"

using namespace bitnet;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

double load_average() {
  std::ifstream f("/proc/loadavg");
  double l = -1;
  f >> l;
  return l;
}

[[noreturn]] void die(const std::string& m) {
  std::fprintf(stderr, "bench_vs_llama: %s\n", m.c_str());
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2)
    die("usage: bench_vs_llama MODEL.gguf [reps=5] [threads=1,2] "
        "[head-type=auto|file|screened|fast|q8_0] [reference-cpu-variant]");
  const std::string path = argv[1];
  const int reps = argc > 2 ? std::atoi(argv[2]) : 5;
  std::vector<int> thread_counts = {1, 2};
  if (argc > 3) {
    thread_counts.clear();
    for (const char* p = argv[3]; *p;) {
      thread_counts.push_back(std::atoi(p));
      while (*p && *p != ',') ++p;
      if (*p == ',') ++p;
    }
  }
  const double load = load_average();
  std::printf("load average %.2f%s\n", load,
              load > 0.5 ? "  (WARNING: machine not idle, ratios are noisy)" : "");

  model::LoadOptions load_options;
  const std::string head_name = argc > 4 ? argv[4] : "auto";
  auto head = model::head_type_from_name(head_name);
  if (!head) die(head.message());
  load_options.head = *head;
  if (const char* e = std::getenv("BITNET_KERNELS"); e != nullptr && e[0] != '\0') {
    auto k = kernels::Kernels::named(e);
    if (!k) die("BITNET_KERNELS: " + k.message());
    load_options.kernels = *k;
  }
  const char* hp = std::getenv("BITNET_HUGEPAGES");
  load_options.hugepages = hp != nullptr && std::string(hp) == "1";
  auto model = model::Model::load(path, load_options);
  if (!model) die(model.message());
  const model::HeadType used = (*model)->head_type();
  const bool exact = used == model::HeadType::kFile || used == model::HeadType::kScreened;
  const std::string head_note =
      exact ? "" : " (ours: " + std::string(model::head_type_name(used)) + " head, not exact)";
  const uint32_t n_vocab = (*model)->config().n_vocab;
  SplitMix64 rng(99);
  std::vector<int32_t> tokens(513);
  for (auto& t : tokens) t = static_cast<int32_t>(rng.below(n_vocab));
  std::printf("model %s, ours: kernels %s, head %s\n", path.c_str(),
              std::string((*model)->kernels().name()).c_str(),
              std::string(model::head_type_name(used)).c_str());

  std::printf(
      "equal work: ppN = the same N random tokens as one batch from an empty cache, both engines "
      "computing every logit of the last position only; tgN = N greedy steps after a 1-token "
      "prompt, the same tokens (ours: the exact head's argmax%s; llama.cpp: every logit); the same "
      "thread count; runs alternate ours, llama.cpp, ...\n",
      used == model::HeadType::kScreened ? ", screened" : "");
  for (int threads : thread_counts) {
    reference::ReferenceSettings rs;
    rs.n_threads = threads;
    if (argc > 5) rs.cpu_variant = argv[5];
    auto ref = reference::LlamaReference::load(path, rs);
    if (!ref) die(ref.message());
    if (threads == thread_counts.front())
      std::printf("reference: %s\n", (*ref)->description().c_str());
    auto context =
        model::Context::create(**model, {.n_ctx = 1024, .kv_f16 = true, .n_threads = threads});
    if (!context) die(context.message());
    model::Context& s = **context;
    std::vector<float> logits;

    struct Test {
      std::string name;
      int n;
      bool prompt;
    };
    for (const Test& t : {Test{"pp64", 64, true}, Test{"pp128", 128, true},
                          Test{"pp512", 512, true}, Test{"tg64", 64, false}}) {
      std::vector<double> ours, theirs;
      const std::vector<int32_t> prompt(tokens.begin(), tokens.begin() + (t.prompt ? t.n : 1));
      for (int r = 0; r < reps; ++r) {
        // A: ours.
        s.kv_cache().clear();
        double t0 = now_s();
        if (t.prompt) {
          if (!s.eval(prompt, false, &logits, 0, 0).ok()) die("our eval failed");
          ours.push_back(t.n / (now_s() - t0));
        } else {
          if (!s.eval(prompt, false, &logits, 0, 1).ok()) die("our eval failed");
          t0 = now_s();
          for (int i = 0; i < t.n; ++i) {
            const int32_t next = generate::argmax(logits);
            if (!s.eval(std::span(&next, 1), false, &logits, 0, 1).ok()) die("our eval failed");
          }
          ours.push_back(t.n / (now_s() - t0));
        }
        // B: llama.cpp.
        if (t.prompt) {
          t0 = now_s();
          if (!(*ref)->eval_last_logits(prompt).ok()) die("reference eval failed");
          theirs.push_back(t.n / (now_s() - t0));
        } else {
          // greedy() evaluates the 1-token prompt, then n steps; time the steps only by
          // subtracting a 1-token eval timed just before.
          t0 = now_s();
          if (!(*ref)->eval_logits(prompt).ok()) die("reference eval failed");
          const double one = now_s() - t0;
          t0 = now_s();
          if (!(*ref)->greedy(prompt, t.n + 1).ok()) die("reference greedy failed");
          theirs.push_back(t.n / (now_s() - t0 - one));
        }
      }
      const double a = median(ours), b = median(theirs);
      std::printf("%-6s threads %d: ours %8.2f tok/s | llama.cpp %8.2f tok/s | ratio %.2f%s\n",
                  t.name.c_str(), threads, a, b, a / b, head_note.c_str());
      std::fflush(stdout);
    }
  }
  return 0;
}
