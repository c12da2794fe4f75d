// The generation loop: evaluate the prompt in one batch, then sample one token at a time,
// streaming text, until end-of-generation, a stop string, max_tokens or a full context.
#pragma once

#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "generate/sampler.h"
#include "model/session.h"
#include "tokenizer/tokenizer.h"

namespace bitnet::generate {

struct GenerateOptions {
  int max_tokens = 32;
  SamplerOptions sampler;
  std::vector<std::string> stop;  // stop strings (not included in the text)
  bool stop_at_eog = true;        // EOS / EOT end generation
  bool collect_logits = false;    // keep the logits of every evaluated position
  std::function<void(std::string_view)> on_text;  // streamed text, whole UTF-8 characters
};

struct Timings {
  int n_prompt = 0;
  int n_decode = 0;  // tokens evaluated one by one
  double prompt_ms = 0;
  double decode_ms = 0;
  double prompt_tok_s() const { return prompt_ms > 0 ? n_prompt * 1000.0 / prompt_ms : 0; }
  double decode_tok_s() const { return decode_ms > 0 ? n_decode * 1000.0 / decode_ms : 0; }
};

struct GenerateResult {
  std::vector<int32_t> generated;  // sampled ids (an end-of-generation id included)
  std::string text;                // their text, up to any stop string
  std::string stop_reason;         // "eog", "stop_string", "max_tokens", "context_full"
  Timings timings;
  // With collect_logits: one row of n_vocab per evaluated position (every prompt position,
  // then one per decode step; the last generated token is not evaluated).
  std::vector<float> logits;
  int64_t logits_rows = 0;
};

// Evaluates `prompt` on top of what `session` already holds, then generates.
Result<GenerateResult> generate(model::Session& session, const tokenizer::Tokenizer& tok,
                                std::span<const int32_t> prompt, const GenerateOptions& options);

}  // namespace bitnet::generate
