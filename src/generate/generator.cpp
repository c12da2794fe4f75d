#include "generate/generator.h"

#include <algorithm>
#include <chrono>

namespace bitnet::generate {
namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Length of the longest prefix of `s` made of whole UTF-8 characters (a truncated sequence at
// the end is held back until its remaining bytes arrive).
size_t complete_utf8_prefix(std::string_view s) {
  size_t i = s.size();
  size_t back = 0;
  while (i > 0 && back < 4) {
    const unsigned char c = static_cast<unsigned char>(s[i - 1]);
    if ((c & 0xC0) != 0x80) {
      const size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
      return back + 1 >= need ? s.size() : i - 1;
    }
    --i;
    ++back;
  }
  return s.size();  // not UTF-8 at all: pass the bytes on
}

// Streams text, holding back what could still become a stop string or an unfinished character.
class TextStream {
 public:
  TextStream(const GenerateOptions& o) : o_(o) {
    for (const auto& s : o.stop) hold_ = std::max(hold_, s.empty() ? 0 : s.size() - 1);
  }
  // Appends a piece; returns true if a stop string now appears (text cut before it).
  bool add(std::string_view piece) {
    text_ += piece;
    for (const auto& s : o_.stop) {
      if (s.empty()) continue;
      const size_t at = text_.find(s, emitted_ > s.size() ? emitted_ - s.size() : 0);
      if (at != std::string::npos) {
        text_.resize(at);
        flush(text_.size());
        return true;
      }
    }
    if (text_.size() > hold_) flush(complete_utf8_prefix(std::string_view(text_).substr(0, text_.size() - hold_)));
    return false;
  }
  void finish() { flush(text_.size()); }
  const std::string& text() const { return text_; }

 private:
  void flush(size_t upto) {
    if (upto > emitted_ && o_.on_text) o_.on_text(std::string_view(text_).substr(emitted_, upto - emitted_));
    emitted_ = std::max(emitted_, upto);
  }
  const GenerateOptions& o_;
  std::string text_;
  size_t emitted_ = 0, hold_ = 0;
};

}  // namespace

Result<GenerateResult> generate(model::Session& session, const tokenizer::Tokenizer& tok,
                                std::span<const int32_t> prompt, const GenerateOptions& o) {
  if (prompt.empty()) return make_error("the prompt has no tokens");
  if (session.n_past() + static_cast<int>(prompt.size()) > session.n_ctx()) {
    return make_error("the prompt (%zu tokens) does not fit the context (%d tokens, %d used)",
                      prompt.size(), session.n_ctx(), session.n_past());
  }
  GenerateResult r;
  const int64_t nv = session.model().config().n_vocab;
  std::vector<float> logits;
  std::vector<int32_t> history(prompt.begin(), prompt.end());
  Sampler sampler(o.sampler);
  TextStream stream(o);

  auto t0 = std::chrono::steady_clock::now();
  BITNET_TRY(session.eval(prompt, o.collect_logits, &logits));
  r.timings.prompt_ms = ms_since(t0);
  r.timings.n_prompt = static_cast<int>(prompt.size());
  if (o.collect_logits) {
    r.logits = logits;
    r.logits_rows = static_cast<int64_t>(prompt.size());
  }
  std::span<const float> last(logits.data() + logits.size() - nv, static_cast<size_t>(nv));

  r.stop_reason = "max_tokens";
  auto t1 = std::chrono::steady_clock::now();
  for (int i = 0; i < o.max_tokens; ++i) {
    const int32_t t = sampler.sample(last, history);
    r.generated.push_back(t);
    history.push_back(t);
    if (o.stop_at_eog && tok.is_eog(t)) {
      r.stop_reason = "eog";
      break;
    }
    if (stream.add(tok.token_to_piece(t, false))) {
      r.stop_reason = "stop_string";
      break;
    }
    if (i + 1 == o.max_tokens) break;
    if (session.n_past() >= session.n_ctx()) {
      r.stop_reason = "context_full";
      break;
    }
    BITNET_TRY(session.eval(std::span(&t, 1), false, &logits));
    ++r.timings.n_decode;
    last = std::span<const float>(logits.data(), static_cast<size_t>(nv));
    if (o.collect_logits) {
      r.logits.insert(r.logits.end(), logits.begin(), logits.end());
      ++r.logits_rows;
    }
  }
  r.timings.decode_ms = ms_since(t1);
  stream.finish();
  r.text = stream.text();
  return r;
}

}  // namespace bitnet::generate
