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

}  // namespace

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
    if (text_.size() > hold_)
      flush(complete_utf8_prefix(std::string_view(text_).substr(0, text_.size() - hold_)));
    return false;
  }
  void finish() { flush(text_.size()); }
  const std::string& text() const { return text_; }

 private:
  void flush(size_t upto) {
    if (upto > emitted_ && o_.on_text)
      o_.on_text(std::string_view(text_).substr(emitted_, upto - emitted_));
    emitted_ = std::max(emitted_, upto);
  }
  const GenerateOptions& o_;
  std::string text_;
  size_t emitted_ = 0, hold_ = 0;
};

Stepper::Stepper(const tokenizer::Tokenizer& tok, const GenerateOptions& o,
                 std::span<const int32_t> history)
    : tok_(tok),
      o_(o),
      sampler_(o.sampler),
      history_(history.begin(), history.end()),
      stream_(std::make_unique<TextStream>(o)) {
  result_.stop_reason = "max_tokens";
  if (o.max_tokens <= 0) finish("max_tokens");
}

Stepper::~Stepper() = default;

std::optional<int32_t> Stepper::next(std::span<const float> logits) {
  if (done_) return std::nullopt;
  const int32_t t = sampler_.sample(logits, history_);
  result_.generated.push_back(t);
  history_.push_back(t);
  if (o_.stop_at_eog && tok_.is_eog(t)) {
    finish("eog");
  } else if (stream_->add(tok_.token_to_piece(t, false))) {
    finish("stop_string");
  } else if (static_cast<int>(result_.generated.size()) >= o_.max_tokens) {
    finish("max_tokens");
  }
  if (done_) return std::nullopt;
  return t;
}

void Stepper::finish(const std::string& reason) {
  if (done_) return;
  done_ = true;
  result_.stop_reason = reason;
  stream_->finish();
  result_.text = stream_->text();
}

Result<GenerateResult> generate(model::Context& ctx, const tokenizer::Tokenizer& tok,
                                std::span<const int32_t> prompt, const GenerateOptions& o,
                                int seq) {
  if (prompt.empty()) return make_error("the prompt has no tokens");
  if (ctx.n_past(seq) + static_cast<int>(prompt.size()) > ctx.n_ctx()) {
    return make_error("the prompt (%zu tokens) does not fit the context (%d tokens, %d used)",
                      prompt.size(), ctx.n_ctx(), ctx.n_past(seq));
  }
  const int64_t nv = ctx.model().config().n_vocab;
  std::vector<float> logits;
  Stepper stepper(tok, o, prompt);
  GenerateResult& r = stepper.result();

  auto t0 = std::chrono::steady_clock::now();
  const int top = stepper.logits_needed();
  BITNET_TRY(ctx.eval(prompt, o.collect_logits, &logits, seq, top));
  r.timings.prompt_ms = ms_since(t0);
  r.timings.n_prompt = static_cast<int>(prompt.size());
  if (o.collect_logits) {
    r.logits = logits;
    r.logits_rows = static_cast<int64_t>(prompt.size());
  }
  std::span<const float> last(logits.data() + logits.size() - nv, static_cast<size_t>(nv));

  auto t1 = std::chrono::steady_clock::now();
  while (const std::optional<int32_t> t = stepper.next(last)) {
    if (ctx.n_past(seq) >= ctx.n_ctx()) {
      stepper.finish("context_full");
      break;
    }
    BITNET_TRY(ctx.eval(std::span(&*t, 1), false, &logits, seq, top));
    ++r.timings.n_decode;
    last = std::span<const float>(logits.data(), static_cast<size_t>(nv));
    if (o.collect_logits) {
      r.logits.insert(r.logits.end(), logits.begin(), logits.end());
      ++r.logits_rows;
    }
  }
  r.timings.decode_ms = ms_since(t1);
  return std::move(r);
}

}  // namespace bitnet::generate
