// The server's engine: N slots (sequences of one Context) decoded together, one forward pass per
// step, by one worker thread. Continuous batching: a request waits in a bounded queue until a
// slot is free and joins the batch at the next step; a long prompt is evaluated in chunks beside
// the running slots' decode rows, so their streams keep flowing. A finished slot keeps its
// tokens' K/V: the next request placed on it re-evaluates only what follows the longest prefix
// they share (a chat's next turn re-evaluates only the new messages).
//
// Each slot's tokens are exactly what a single-sequence generate() would produce for the same
// prompt and options: a row's logits do not depend on the batch it is in, nor on how a prompt is
// split into passes.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/result.h"
#include "generate/generator.h"
#include "model/context.h"
#include "model/weights.h"
#include "tokenizer/tokenizer.h"

namespace bitnet::serve {

struct EngineOptions {
  int n_slots = 4;    // sequences decoded together
  int n_ctx = 0;      // positions per slot; 0: the model's context length
  int n_queue = 64;   // requests waiting for a slot at most (more: refused, HTTP 503)
  int n_batch = 256;  // rows per forward pass at most (prompt chunks fill what decode leaves)
  int n_threads = 1;
  bool kv_f16 = true;
};

// The log-probability of a generated token and of the most likely alternatives (OpenAI's
// logprobs), from the model's distribution (softmax of the raw logits, before sampling).
struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top;  // most likely first
};

struct Request {
  std::vector<int32_t> prompt;        // not empty
  generate::GenerateOptions options;  // max_tokens, sampler, stop strings (on_text is ignored)
  int n_logprobs = -1;                // -1: no logprobs; 0..20: that many alternatives
};

// What a request produced so far; events arrive in order.
struct Event {
  std::string text;                    // new text (whole UTF-8 characters)
  std::vector<TokenLogprob> logprobs;  // of the tokens generated since the last event
  bool done = false;
  // With done: "stop" (end of generation or a stop string), "length" (max_tokens or a full
  // context), "cancelled", or "error" with `error` set.
  std::string finish_reason;
  std::string error;
  int n_prompt = 0, n_cached = 0, n_generated = 0;
  double prompt_ms = 0, generate_ms = 0;
};

// One submitted request: the engine pushes events, the HTTP side pops them.
class Job {
 public:
  // Waits up to `timeout` for events; returns what arrived (empty on timeout). After the event
  // with done, nothing more comes.
  std::vector<Event> wait(std::chrono::milliseconds timeout);
  // Asks the engine to stop this request at its next step (a client went away).
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }

 private:
  friend class Engine;
  void push(Event e);

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Event> events_;
  std::atomic<bool> cancelled_{false};
};

struct EngineStats {
  int64_t requests_started = 0, requests_finished = 0, requests_refused = 0;
  int64_t prompt_tokens = 0;  // evaluated (reused prefixes not counted)
  int64_t prompt_reused = 0;  // taken from a slot's cache instead
  int64_t generated_tokens = 0;
  int64_t steps = 0, step_rows = 0;
  double busy_seconds = 0;  // time spent in forward passes and sampling
  int queue_depth = 0, slots_busy = 0, last_batch_rows = 0;
  double generated_tok_s_last = 0;  // generated tokens per second over the last step
};

class Engine {
 public:
  static Result<std::unique_ptr<Engine>> create(const model::Model& model,
                                                const tokenizer::Tokenizer& tok,
                                                const EngineOptions& options);
  ~Engine();  // stops the worker; unfinished jobs end with "cancelled"

  // Queues a request. Errors: the queue is full (`*queue_full` set: HTTP 503), or the request
  // cannot fit a slot (prompt + max_tokens > n_ctx: HTTP 400).
  Result<std::shared_ptr<Job>> submit(Request request, bool* queue_full = nullptr);

  int n_ctx() const { return ctx_->n_ctx(); }
  int n_slots() const { return o_.n_slots; }
  EngineStats stats() const;

 private:
  struct Slot;
  Engine(const model::Model& model, const tokenizer::Tokenizer& tok, const EngineOptions& o,
         std::unique_ptr<model::Context> ctx);
  void run();
  void admit(std::deque<std::pair<std::shared_ptr<Job>, Request>>& incoming);
  Status step();
  void emit(Slot& s, bool done, const std::string& reason, const std::string& error = {});

  const model::Model& model_;
  const tokenizer::Tokenizer& tok_;
  EngineOptions o_;
  std::unique_ptr<model::Context> ctx_;
  std::vector<std::unique_ptr<Slot>> slots_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<std::shared_ptr<Job>, Request>> queue_;
  bool stopping_ = false;
  EngineStats stats_;
  uint64_t next_order_ = 0;  // admission counter (worker thread only)
  std::thread worker_;
};

}  // namespace bitnet::serve
