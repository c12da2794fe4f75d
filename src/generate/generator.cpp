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
  return take(sampler_.sample(logits, history_));
}

std::optional<int32_t> Stepper::next(std::span<const float> logits, int32_t draft) {
  if (done_) return std::nullopt;
  return take(sampler_.sample_with_draft(logits, history_, draft));
}

std::optional<int32_t> Stepper::take(int32_t t) {
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

std::vector<int32_t> ngram_draft(std::span<const int32_t> history, const DraftOptions& o) {
  const auto len = static_cast<int64_t>(history.size());
  if (o.max <= 0) return {};
  for (int64_t n = std::min<int64_t>(o.ngram_max, len - 1); n >= std::max(1, o.ngram_min); --n) {
    const std::span<const int32_t> key = history.subspan(static_cast<size_t>(len - n));
    // The most recent earlier occurrence (it may overlap the key itself). What followed it is
    // proposed; where that runs into the end of the history, the copy goes on from what it has
    // proposed so far (text repeating with period len - n - at keeps repeating).
    for (int64_t at = len - n - 1; at >= 0; --at) {
      if (!std::equal(key.begin(), key.end(), history.begin() + at)) continue;
      std::vector<int32_t> out;
      for (int64_t i = at + n; static_cast<int>(out.size()) < o.max; ++i)
        out.push_back(i < len ? history[static_cast<size_t>(i)]
                              : out[static_cast<size_t>(i - len)]);
      return out;
    }
  }
  return {};
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
  model::Batch batch;
  // Proposals per step: as many as were accepted after a miss (none: only a full-length n-gram
  // match proposes, one token), doubled after a full hit. A step's cost grows with its rows
  // (2B4T shape, 2 threads: 2 rows 1.4x one, 9 rows 3.1x), so proposals only pay where text
  // repeats.
  int n_draft = o.draft.max;
  std::optional<int32_t> t = stepper.next(last);
  while (t) {
    const int n_past = ctx.n_past(seq);
    if (n_past >= ctx.n_ctx()) {
      stepper.finish("context_full");
      break;
    }
    std::vector<int32_t> draft;
    if (o.draft.max > 0) {
      DraftOptions d = o.draft;
      d.max = std::max(1, n_draft);
      if (n_draft == 0) d.ngram_min = d.ngram_max;  // after a miss: the longest matches only
      draft = ngram_draft(stepper.history(), d);
      // Never past the context, nor past max_tokens (the last proposal's own logits would
      // decide a token beyond it).
      const auto room = static_cast<size_t>(
          std::max(0, std::min(ctx.n_ctx() - n_past - 1,
                               o.max_tokens - static_cast<int>(stepper.generated().size()) - 1)));
      if (draft.size() > room) draft.resize(room);
    }
    batch.clear();
    batch.add(*t, seq, n_past, true, top);
    for (size_t i = 0; i < draft.size(); ++i)
      batch.add(draft[i], seq, n_past + 1 + static_cast<int>(i), true, top);
    BITNET_TRY(ctx.decode(batch, &logits));
    ++r.timings.n_steps;
    r.timings.n_drafted += static_cast<int>(draft.size());
    // Row i's logits decide the token after row i's; proposal i is row i + 1's token.
    size_t i = 0;
    for (;; ++i) {
      const std::span<const float> row(logits.data() + static_cast<int64_t>(i) * nv,
                                       static_cast<size_t>(nv));
      if (i == draft.size()) {
        t = stepper.next(row);
        break;
      }
      t = stepper.next(row, draft[i]);
      if (!t || stepper.generated().back() != draft[i]) break;
      ++r.timings.n_accepted;
    }
    if (!draft.empty()) {
      n_draft =
          i == draft.size() ? std::min(o.draft.max, 2 * std::max(1, n_draft)) : static_cast<int>(i);
    }
    // Rows 0..i are what plain decoding would have evaluated; the rest go.
    const int kept = n_past + static_cast<int>(i) + 1;
    if (ctx.n_past(seq) > kept) BITNET_TRY(ctx.kv_cache().remove(seq, kept));
    r.timings.n_decode += static_cast<int>(i) + 1;
    if (o.collect_logits) {
      r.logits.insert(r.logits.end(), logits.begin(),
                      logits.begin() + static_cast<int64_t>(i + 1) * nv);
      r.logits_rows += static_cast<int64_t>(i) + 1;
    }
  }
  r.timings.decode_ms = ms_since(t1);
  return std::move(r);
}

}  // namespace bitnet::generate
