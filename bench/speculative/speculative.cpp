// Speculative decoding (--draft ngram[:N], generate/generator.h) against plain greedy decoding
// of the same prompt, in one process, alternating the two run by run, with identical output
// checked on every run:
//
//   build/bin/bench_speculative MODEL.gguf [reps=3] [threads=2] [draft max=8] [tokens=64]
//
// Two prompts. "general": a fixed text prompt. "repeating": a prompt whose greedy continuation
// repeats earlier text, found in the model's own output: greedy decoding from a seed prompt
// runs until the last `tokens` + 16 generated tokens form one copy of earlier text (at most
// 1500 tokens); the prompt is everything before that copy began, as token ids, so its
// continuation is exactly that copy (greedy decoding is deterministic, and a prompt evaluated
// in one batch gives the same logits as the tokens one by one). On a synthetic model that text
// is degenerate (a token or a short cycle repeated); on a real one it is what repeats in code
// edits, quotations and lists. Prints tok/s of both, the ratio and the acceptance rate.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "generate/generator.h"
#include "gguf/reader.h"
#include "model/context.h"
#include "tokenizer/tokenizer.h"

using namespace bitnet;

namespace {

[[noreturn]] void die(const std::string& m) {
  std::fprintf(stderr, "bench_speculative: %s\n", m.c_str());
  std::exit(1);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// Length of the longest run ending at the last token of s that copies the text some distance
// d before it (s[i] == s[i - d] for each of its tokens; a copy may overlap itself, as a repeat
// does).
int copy_run(const std::vector<int32_t>& s) {
  const int n = static_cast<int>(s.size());
  int best = 0;
  for (int d = 1; d < n; ++d) {  // period: s[i] == s[i - d] for the last L tokens
    int L = 0;
    while (L < n - d && s[static_cast<size_t>(n - 1 - L)] == s[static_cast<size_t>(n - 1 - L - d)])
      ++L;
    best = std::max(best, L);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2)
    die("usage: bench_speculative MODEL.gguf [reps=3] [threads=2] [draft max=8] [tokens=64]");
  const std::string path = argv[1];
  const int reps = argc > 2 ? std::atoi(argv[2]) : 3;
  const int threads = argc > 3 ? std::atoi(argv[3]) : 2;
  const int draft_max = argc > 4 ? std::atoi(argv[4]) : 8;
  const int n_tokens = argc > 5 ? std::atoi(argv[5]) : 64;
  if (reps < 1 || threads < 1 || draft_max < 1 || n_tokens < 1) die("bad arguments");

  auto meta = gguf::File::open(path);
  if (!meta) die(meta.message());
  auto tok = tokenizer::Tokenizer::from_gguf(*meta);
  if (!tok) die(tok.message());
  model::LoadOptions lo;
  lo.head = model::HeadType::kAuto;
  auto m = model::Model::load(path, lo);
  if (!m) die(m.message());
  auto ctx = model::Context::create(**m, {.n_ctx = 2048, .kv_f16 = true, .n_threads = threads});
  if (!ctx) die(ctx.message());
  std::printf("model %s, head %s, kernels %s, %d threads, draft ngram:%d, %d tokens\n",
              path.c_str(), std::string(model::head_type_name((*m)->head_type())).c_str(),
              std::string((*m)->kernels().name()).c_str(), threads, draft_max, n_tokens);

  generate::GenerateOptions plain;
  plain.sampler.greedy = true;
  plain.stop_at_eog = false;
  plain.max_tokens = n_tokens;
  generate::GenerateOptions drafted = plain;
  drafted.draft.max = draft_max;

  // The repeating prompt: search the model's greedy output from a seed prompt.
  std::vector<int32_t> repeating;
  {
    std::vector<int32_t> s =
        tok->encode("Count: 1 2 3 4 5 6 7 8 9 10 11 12", {.add_special = true});
    const size_t seed_len = s.size();
    generate::GenerateOptions search = plain;
    search.max_tokens = 1500;
    search.draft.max = draft_max;  // the search itself runs faster with drafts
    bool found = false;
    (*ctx)->kv_cache().clear();
    // In pieces of 64 tokens, checking the copy run after each: each piece's prompt is the last
    // token of the one before (generated, not yet evaluated).
    std::vector<int32_t> gen, feed = s;
    while (!found && gen.size() < 1500) {
      generate::GenerateOptions piece = search;
      piece.max_tokens = 64;
      auto r = generate::generate(**ctx, *tok, feed, piece);
      if (!r) die(r.message());
      gen.insert(gen.end(), r->generated.begin(), r->generated.end());
      feed = {gen.back()};
      std::vector<int32_t> all = s;
      all.insert(all.end(), gen.begin(), gen.end());
      const int run = copy_run(all);
      if (run >= n_tokens + 16 && static_cast<int>(gen.size()) > run) {
        all.resize(all.size() - static_cast<size_t>(run) + 16);  // keep 16 of the copy
        repeating = all;
        found = true;
      }
    }
    if (!found) die("no repeating continuation found in 1500 greedy tokens");
    std::printf("repeating prompt: %zu tokens (%zu of them generated from the seed prompt)\n",
                repeating.size(), repeating.size() - seed_len);
  }

  struct Prompt {
    std::string name;
    std::vector<int32_t> ids;
  };
  const std::vector<Prompt> prompts = {
      {"general",
       tok->encode("The quick brown fox jumps over the lazy dog.", {.add_special = true})},
      {"repeating", repeating}};
  for (const Prompt& p : prompts) {
    std::vector<double> a, b;
    int drafted_n = 0, accepted_n = 0, steps = 0;
    for (int r = 0; r < reps; ++r) {
      (*ctx)->kv_cache().clear();
      auto x = generate::generate(**ctx, *tok, p.ids, plain);
      if (!x) die(x.message());
      (*ctx)->kv_cache().clear();
      auto y = generate::generate(**ctx, *tok, p.ids, drafted);
      if (!y) die(y.message());
      if (x->generated != y->generated) die(p.name + ": speculative output differs from plain");
      a.push_back(x->timings.decode_tok_s());
      b.push_back(y->timings.decode_tok_s());
      drafted_n += y->timings.n_drafted;
      accepted_n += y->timings.n_accepted;
      steps += y->timings.n_steps;
    }
    std::printf(
        "%-9s plain %7.2f tok/s | draft %7.2f tok/s | ratio %.2f | accepted %d of %d proposed "
        "(%.0f%%), %.2f tokens per step | output identical\n",
        p.name.c_str(), median(a), median(b), median(b) / median(a), accepted_n, drafted_n,
        drafted_n > 0 ? 100.0 * accepted_n / drafted_n : 0.0,
        static_cast<double>(reps) * (n_tokens - 1) / std::max(1, steps));
  }
  return 0;
}
