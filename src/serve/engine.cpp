#include "serve/engine.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace bitnet::serve {
namespace {

using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// OpenAI's finish_reason for a Stepper's stop reason.
std::string finish_reason(const std::string& stop_reason) {
  if (stop_reason == "eog" || stop_reason == "stop_string") return "stop";
  if (stop_reason == "max_tokens" || stop_reason == "context_full") return "length";
  return stop_reason;  // "cancelled"
}

// The log-probability of `token` and the n most likely tokens under softmax(logits), the sum in
// double as the sampler and perplexity do.
TokenLogprob logprobs_of(std::span<const float> logits, int32_t token, int n) {
  const float m = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float l : logits) sum += std::exp(static_cast<double>(l) - m);
  const double log_z = m + std::log(sum);
  TokenLogprob r;
  r.token = token;
  r.logprob = static_cast<float>(logits[static_cast<size_t>(token)] - log_z);
  if (n > 0) {
    std::vector<int32_t> ids(logits.size());
    std::iota(ids.begin(), ids.end(), 0);
    const auto k = std::min(ids.size(), static_cast<size_t>(n));
    std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k), ids.end(),
                      [&](int32_t a, int32_t b) {
                        const float la = logits[static_cast<size_t>(a)];
                        const float lb = logits[static_cast<size_t>(b)];
                        return la != lb ? la > lb : a < b;
                      });
    for (size_t i = 0; i < k; ++i)
      r.top.emplace_back(ids[i], static_cast<float>(logits[static_cast<size_t>(ids[i])] - log_z));
  }
  return r;
}

}  // namespace

std::vector<Event> Job::wait(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return !events_.empty(); });
  std::vector<Event> out(std::make_move_iterator(events_.begin()),
                         std::make_move_iterator(events_.end()));
  events_.clear();
  return out;
}

void Job::push(Event e) {
  {
    std::lock_guard lock(mu_);
    events_.push_back(std::move(e));
  }
  cv_.notify_all();
}

// A sequence of the context and the request it is serving, if any.
struct Engine::Slot {
  int seq = 0;
  std::vector<int32_t> cached;  // the tokens whose K/V the sequence holds, in order
  Clock::time_point last_used{};

  std::shared_ptr<Job> job;  // null: idle
  std::unique_ptr<Request> req;
  std::unique_ptr<generate::Stepper> stepper;
  size_t n_prompt_done = 0;  // prompt tokens in the cache (reused or evaluated)
  int n_reused = 0;
  std::optional<int32_t> next;  // the token to evaluate at the next step
  std::string text;             // streamed text not yet sent
  std::vector<TokenLogprob> logprobs;
  Clock::time_point t_start{}, t_prompt_done{};
  uint64_t order = 0;  // admission order: prompt chunks go to the oldest first

  bool prefilling() const { return job && n_prompt_done < req->prompt.size(); }
  int top() const { return req->n_logprobs >= 0 ? 0 : stepper->logits_needed(); }
};

Result<std::unique_ptr<Engine>> Engine::create(const model::Model& model,
                                               const tokenizer::Tokenizer& tok,
                                               const EngineOptions& o) {
  if (o.n_slots < 1 || o.n_slots > 256) return make_error("slots must be in 1..256");
  if (o.n_queue < 0) return make_error("the queue length must not be negative");
  if (o.n_batch < 1) return make_error("the batch size must be at least 1");
  BITNET_ASSIGN_OR_RETURN(auto ctx, model::Context::create(model, {.n_ctx = o.n_ctx,
                                                                   .kv_f16 = o.kv_f16,
                                                                   .n_threads = o.n_threads,
                                                                   .n_seq_max = o.n_slots}));
  return std::unique_ptr<Engine>(new Engine(model, tok, o, std::move(ctx)));
}

Engine::Engine(const model::Model& model, const tokenizer::Tokenizer& tok, const EngineOptions& o,
               std::unique_ptr<model::Context> ctx)
    : model_(model), tok_(tok), o_(o), ctx_(std::move(ctx)) {
  for (int i = 0; i < o_.n_slots; ++i) {
    slots_.push_back(std::make_unique<Slot>());
    slots_.back()->seq = i;
  }
  worker_ = std::thread([this] { run(); });
}

Engine::~Engine() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  worker_.join();
  for (auto& [job, req] : queue_) job->push({.done = true, .finish_reason = "cancelled"});
  for (auto& s : slots_) {
    if (s->job) emit(*s, true, "cancelled");
  }
}

Result<std::shared_ptr<Job>> Engine::submit(Request r, bool* queue_full) {
  if (queue_full) *queue_full = false;
  if (r.prompt.empty()) return make_error("the prompt has no tokens");
  const int64_t need = static_cast<int64_t>(r.prompt.size()) + r.options.max_tokens;
  if (need > n_ctx()) {
    return make_error(
        "the prompt (%zu tokens) and max_tokens (%d) exceed the context of %d tokens per slot",
        r.prompt.size(), r.options.max_tokens, n_ctx());
  }
  for (int32_t t : r.prompt) {
    if (t < 0 || static_cast<uint32_t>(t) >= model_.config().n_vocab)
      return make_error("token id %d is out of the vocabulary (%u tokens)", t,
                        model_.config().n_vocab);
  }
  r.options.on_text = nullptr;
  auto job = std::make_shared<Job>();
  {
    std::lock_guard lock(mu_);
    // Waiting requests beyond the free slots are the queue.
    if (static_cast<int>(queue_.size()) >= o_.n_queue + o_.n_slots - stats_.slots_busy) {
      ++stats_.requests_refused;
      if (queue_full) *queue_full = true;
      return make_error("the server is busy: %d requests are waiting for a slot",
                        static_cast<int>(queue_.size()));
    }
    queue_.emplace_back(job, std::move(r));
    stats_.queue_depth = static_cast<int>(queue_.size());
  }
  cv_.notify_all();
  return job;
}

EngineStats Engine::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void Engine::emit(Slot& s, bool done, const std::string& reason, const std::string& error) {
  Event e;
  e.text = std::move(s.text);
  e.logprobs = std::move(s.logprobs);
  s.text.clear();
  s.logprobs.clear();
  if (done) {
    e.done = true;
    e.finish_reason = reason;
    e.error = error;
    e.n_prompt = static_cast<int>(s.req->prompt.size());
    e.n_cached = s.n_reused;
    e.n_generated = s.stepper ? static_cast<int>(s.stepper->generated().size()) : 0;
    const auto now = Clock::now();
    const bool prompt_done = s.t_prompt_done != Clock::time_point{};
    e.prompt_ms = ms_between(s.t_start, prompt_done ? s.t_prompt_done : now);
    e.generate_ms = prompt_done ? ms_between(s.t_prompt_done, now) : 0;
  } else if (e.text.empty() && e.logprobs.empty()) {
    return;
  }
  s.job->push(std::move(e));
  if (done) {
    s.job.reset();
    s.stepper.reset();
    s.req.reset();
    s.next.reset();
    s.last_used = Clock::now();
    std::lock_guard lock(mu_);
    ++stats_.requests_finished;
    --stats_.slots_busy;
  }
}

// Places queued requests on idle slots: the slot whose cached tokens share the longest prefix
// with the prompt (the least recently used among equals), cut back to that prefix.
void Engine::admit(std::deque<std::pair<std::shared_ptr<Job>, Request>>& incoming) {
  while (!incoming.empty()) {
    auto [job, req] = std::move(incoming.front());
    incoming.pop_front();
    if (job->cancelled()) {
      job->push({.done = true, .finish_reason = "cancelled"});
      std::lock_guard lock(mu_);
      --stats_.slots_busy;
      continue;
    }
    // A slot is worth reusing when it holds at least half the prompt (as llama-server's slot
    // similarity); otherwise the least recently used slot goes, so that a conversation's cache
    // is not given up to a request sharing only its first tokens.
    Slot* best = nullptr;
    Slot* lru = nullptr;
    size_t best_common = 0;
    for (auto& s : slots_) {
      if (s->job) continue;
      size_t c = 0;
      while (c < s->cached.size() && c < req.prompt.size() && s->cached[c] == req.prompt[c]) ++c;
      if (!best || c > best_common) {
        best = s.get();
        best_common = c;
      }
      if (!lru || s->last_used < lru->last_used) lru = s.get();
    }
    if (2 * best_common < req.prompt.size()) {
      best = lru;
      best_common = 0;
      while (best_common < best->cached.size() && best_common < req.prompt.size() &&
             best->cached[best_common] == req.prompt[best_common])
        ++best_common;
    }
    // One token at least is evaluated: its logits choose the first generated token.
    if (best_common == req.prompt.size()) --best_common;
    Slot& s = *best;
    if (auto st = ctx_->kv_cache().remove(s.seq, static_cast<int>(best_common)); !st) {
      job->push({.done = true, .finish_reason = "error", .error = st.message()});
      std::lock_guard lock(mu_);
      --stats_.slots_busy;
      continue;
    }
    s.cached.resize(best_common);
    s.job = std::move(job);
    s.req = std::make_unique<Request>(std::move(req));
    s.req->options.on_text = [&s](std::string_view t) { s.text += t; };
    s.stepper = std::make_unique<generate::Stepper>(tok_, s.req->options, s.req->prompt);
    s.n_prompt_done = best_common;
    s.n_reused = static_cast<int>(best_common);
    s.next.reset();
    s.t_start = Clock::now();
    s.t_prompt_done = {};
    s.order = next_order_++;
    std::lock_guard lock(mu_);
    ++stats_.requests_started;
    stats_.prompt_reused += static_cast<int64_t>(best_common);
  }
}

void Engine::run() {
  for (;;) {
    std::deque<std::pair<std::shared_ptr<Job>, Request>> incoming;
    {
      std::unique_lock lock(mu_);
      auto busy = [&] {
        return static_cast<int>(std::count_if(slots_.begin(), slots_.end(),
                                              [](const auto& s) { return s->job != nullptr; }));
      };
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty() || busy() > 0; });
      if (stopping_) return;
      for (int idle = o_.n_slots - busy(); idle > 0 && !queue_.empty(); --idle) {
        incoming.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      stats_.queue_depth = static_cast<int>(queue_.size());
      // Counted busy from here (submit() compares the queue with the free slots); admit()
      // gives back the ones it does not place.
      stats_.slots_busy += static_cast<int>(incoming.size());
    }
    admit(incoming);
    if (auto st = step(); !st) {
      // A forward pass failed (it checks its batch; this is not expected): every slot in it
      // reports the error and starts over from an empty cache.
      for (auto& s : slots_) {
        if (!s->job) continue;
        (void)ctx_->kv_cache().remove(s->seq, 0);
        s->cached.clear();
        emit(*s, true, "error", st.message());
      }
    }
  }
}

Status Engine::step() {
  const auto t0 = Clock::now();
  // Cancelled requests and requests that finished at admission (max_tokens 0) end here.
  for (auto& s : slots_) {
    if (!s->job) continue;
    if (s->job->cancelled()) {
      s->stepper->finish("cancelled");
      emit(*s, true, "cancelled");
    } else if (s->stepper->done()) {
      emit(*s, true, finish_reason(s->stepper->result().stop_reason));
    }
  }
  model::Batch batch;
  std::vector<Slot*> row_slot;  // the slot of each row with logits, in row order
  // Decode rows first: one per generating slot.
  for (auto& s : slots_) {
    if (!s->job || !s->next) continue;
    const int pos = ctx_->n_past(s->seq);
    if (pos >= ctx_->n_ctx()) {
      s->stepper->finish("context_full");
      emit(*s, true, "length");
      continue;
    }
    batch.add(*s->next, s->seq, pos, true, s->top());
    row_slot.push_back(s.get());
  }
  // Prompt chunks fill the rest of the batch, oldest request first.
  std::vector<Slot*> filling;
  for (auto& s : slots_) {
    if (s->prefilling()) filling.push_back(s.get());
  }
  std::sort(filling.begin(), filling.end(),
            [](const Slot* a, const Slot* b) { return a->order < b->order; });
  int budget = std::max(1, o_.n_batch - batch.size());
  std::vector<std::pair<Slot*, size_t>> chunks;
  for (Slot* s : filling) {
    if (budget <= 0) break;
    const size_t n =
        std::min(s->req->prompt.size() - s->n_prompt_done, static_cast<size_t>(budget));
    const bool last = s->n_prompt_done + n == s->req->prompt.size();
    const int pos = ctx_->n_past(s->seq);
    for (size_t i = 0; i < n; ++i) {
      batch.add(s->req->prompt[s->n_prompt_done + i], s->seq, pos + static_cast<int>(i),
                last && i + 1 == n, s->top());
    }
    if (last) row_slot.push_back(s);
    chunks.emplace_back(s, n);
    budget -= static_cast<int>(n);
  }
  if (batch.empty()) return {};
  std::vector<float> logits;
  BITNET_TRY(ctx_->decode(batch, &logits));

  // The rows are in the cache now.
  for (auto& s : slots_) {
    if (s->job && s->next) s->cached.push_back(*s->next);
  }
  for (auto& [s, n] : chunks) {
    s->cached.insert(s->cached.end(),
                     s->req->prompt.begin() + static_cast<std::ptrdiff_t>(s->n_prompt_done),
                     s->req->prompt.begin() + static_cast<std::ptrdiff_t>(s->n_prompt_done + n));
    s->n_prompt_done += n;
  }
  const auto nv = static_cast<size_t>(model_.config().n_vocab);
  int64_t generated = 0;
  const auto now = Clock::now();
  for (size_t i = 0; i < row_slot.size(); ++i) {
    Slot& s = *row_slot[i];
    const std::span<const float> row(logits.data() + i * nv, nv);
    if (s.t_prompt_done == Clock::time_point{}) s.t_prompt_done = now;
    const size_t before = s.stepper->generated().size();
    s.next = s.stepper->next(row);
    const auto& gen = s.stepper->generated();
    if (gen.size() > before) {
      ++generated;
      if (s.req->n_logprobs >= 0 && !tok_.is_eog(gen.back()))
        s.logprobs.push_back(logprobs_of(row, gen.back(), s.req->n_logprobs));
    }
    if (!s.next) {
      emit(s, true, finish_reason(s.stepper->result().stop_reason));
    } else {
      emit(s, false, {});
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  std::lock_guard lock(mu_);
  stats_.steps += 1;
  stats_.step_rows += batch.size();
  stats_.last_batch_rows = batch.size();
  stats_.generated_tokens += generated;
  int64_t prompt_rows = 0;
  for (auto& c : chunks) prompt_rows += static_cast<int64_t>(c.second);
  stats_.prompt_tokens += prompt_rows;
  stats_.busy_seconds += seconds;
  stats_.generated_tok_s_last = seconds > 0 ? static_cast<double>(generated) / seconds : 0;
  return {};
}

}  // namespace bitnet::serve
