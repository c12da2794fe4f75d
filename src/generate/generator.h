// Generation, one step at a time. A Stepper holds one sequence's generation state (sampler,
// stop strings, streamed text) and turns the logits of its last evaluated position into the next
// token to evaluate; it never evaluates anything itself, so a caller can drive many of them and
// evaluate their next tokens together in one batch (a server), or stop one at any step.
// generate() is the single-sequence loop: evaluate the prompt in one batch, then step until
// end-of-generation, a stop string, max_tokens or a full context.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "generate/sampler.h"
#include "model/context.h"
#include "tokenizer/tokenizer.h"

namespace bitnet::generate {

// Speculative decoding without a draft model (`--draft ngram[:N]`): before each step, the last
// n tokens (n = ngram_max down to ngram_min) are looked up earlier in the text so far, and the
// tokens that followed them there are proposed (at most `max`, fewer after proposals missed);
// one batch evaluates the current token and the proposals (the weights read once for all of
// them), and the sampler checks the proposals in order (Sampler::sample_with_draft), keeping
// each it confirms and stopping at the first it does not, whose place it fills with its own
// choice. Greedy output is the same token
// for token as without drafts (a row's logits do not depend on the batch it is in); sampled
// output has the same distribution. The cache keeps only what plain decoding would hold.
struct DraftOptions {
  int max = 0;  // tokens proposed per step at most; 0: off
  int ngram_min = 2, ngram_max = 4;
};
// The proposal for what follows `history` (empty if its last tokens occur nowhere before).
std::vector<int32_t> ngram_draft(std::span<const int32_t> history, const DraftOptions& o);

struct GenerateOptions {
  int max_tokens = 32;
  DraftOptions draft;
  SamplerOptions sampler;
  std::vector<std::string> stop;                  // stop strings (not included in the text)
  bool stop_at_eog = true;                        // EOS / EOT end generation
  bool collect_logits = false;                    // keep the logits of every evaluated position
  std::function<void(std::string_view)> on_text;  // streamed text, whole UTF-8 characters
};

struct Timings {
  int n_prompt = 0;
  int n_decode = 0;  // tokens evaluated after the prompt (by one step each, without drafts)
  int n_steps = 0;   // forward passes after the prompt
  int n_drafted = 0, n_accepted = 0;  // speculative decoding: proposals, and those kept
  double prompt_ms = 0;
  double decode_ms = 0;
  double prompt_tok_s() const { return prompt_ms > 0 ? n_prompt * 1000.0 / prompt_ms : 0; }
  double decode_tok_s() const { return decode_ms > 0 ? n_decode * 1000.0 / decode_ms : 0; }
};

struct GenerateResult {
  std::vector<int32_t> generated;  // sampled ids (an end-of-generation id included)
  std::string text;                // their text, up to any stop string
  // "eog", "stop_string", "max_tokens", "context_full", "cancelled"
  std::string stop_reason;
  Timings timings;
  // With collect_logits: one row of n_vocab per evaluated position (every prompt position,
  // then one per decode step; the last generated token is not evaluated).
  std::vector<float> logits;
  int64_t logits_rows = 0;
};

class TextStream;

class Stepper {
 public:
  // `history`: the tokens before the first generated one (the prompt), for the repetition
  // penalty. options.max_tokens == 0 finishes at once.
  Stepper(const tokenizer::Tokenizer& tok, const GenerateOptions& options,
          std::span<const int32_t> history);
  ~Stepper();

  // logits: n_vocab floats of the last evaluated position. Samples a token and streams its text;
  // returns it if it is to be evaluated next, or nothing when the generation is over (the
  // sampled token is then the last one of generated(), unless the generation had already ended).
  std::optional<int32_t> next(std::span<const float> logits);
  // The same, checking a proposed token (Sampler::sample_with_draft): generated().back() says
  // whether it was taken.
  std::optional<int32_t> next(std::span<const float> logits, int32_t draft);
  // Ends the generation with this reason (e.g. "context_full", "cancelled"), keeping the text.
  void finish(const std::string& reason);
  bool done() const { return done_; }
  // How many of the largest logits next() depends on (BatchRow::top; 0: all).
  int logits_needed() const { return o_.collect_logits ? 0 : sampler_.logits_needed(); }
  const std::vector<int32_t>& generated() const { return result_.generated; }
  // The history, then every token generated so far.
  const std::vector<int32_t>& history() const { return history_; }
  // The result so far; its text is complete once done().
  const GenerateResult& result() const { return result_; }
  GenerateResult& result() { return result_; }

 private:
  std::optional<int32_t> take(int32_t t);  // records a sampled token

  const tokenizer::Tokenizer& tok_;
  const GenerateOptions& o_;
  Sampler sampler_;
  std::vector<int32_t> history_;
  std::unique_ptr<TextStream> stream_;
  GenerateResult result_;
  bool done_ = false;
};

// Evaluates `prompt` on top of what sequence `seq` of `ctx` already holds, then generates.
Result<GenerateResult> generate(model::Context& ctx, const tokenizer::Tokenizer& tok,
                                std::span<const int32_t> prompt, const GenerateOptions& options,
                                int seq = 0);

}  // namespace bitnet::generate
