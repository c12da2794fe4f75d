// OpenAI's completion APIs as llama-server speaks them: parsing and checking request bodies of
// POST /v1/completions and /v1/chat/completions, and building their responses and stream
// chunks. Every problem with a request is an ApiError (HTTP status and OpenAI's error object),
// never an exception or an abort; fields this server does not implement are refused by name
// rather than silently ignored (a client asking for tools must not get a reply that pretends
// to have used them).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "generate/sampler.h"
#include "serve/engine.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace bitnet::serve {

using json = nlohmann::json;

struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";  // OpenAI's error types
  std::string param;                           // the offending field, if one
};

// {"error": {"message", "type", "param", "code"}}
json error_body(const ApiError& e);
// Serialises JSON for the wire: invalid UTF-8 (a token piece ending inside a character) is
// replaced, never thrown on.
std::string dump(const json& j);

// What the server brings to every request.
struct ApiContext {
  const tokenizer::Tokenizer* tok = nullptr;
  tokenizer::ChatTemplate chat_template = tokenizer::ChatTemplate::kRaw;
  generate::SamplerOptions defaults;  // sampling for fields a request leaves out
  int n_ctx = 0;                      // positions per slot
};

struct CompletionRequest {
  bool chat = false;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  std::string prompt_text;     // the rendered chat, or the completion prompt when text
  Request request;             // tokens, max_tokens, sampler, stop, logprobs
};

// Parses and checks a request body (chat: /v1/chat/completions, else /v1/completions).
std::variant<CompletionRequest, ApiError> parse_completion(const std::string& body, bool chat,
                                                           const ApiContext& ctx);

// Chat messages of a request body's "messages" (also for POST /apply-template).
std::variant<std::vector<tokenizer::ChatMessage>, ApiError> parse_messages(const json& messages);

// The whole reply of a finished request.
struct Finished {
  std::string text;
  std::vector<TokenLogprob> logprobs;
  Event last;  // the done event: finish_reason, counts, timings
};

// Response bodies. `id` e.g. "chatcmpl-1", `created` in Unix seconds.
json completion_response(const CompletionRequest& r, const Finished& f, const std::string& id,
                         int64_t created, const std::string& model, const ApiContext& ctx);
// One stream chunk: a text delta (and its logprobs), or with finish set the final chunk.
json stream_chunk(const CompletionRequest& r, const std::string& text,
                  const std::vector<TokenLogprob>& logprobs, const std::string* finish,
                  const std::string& id, int64_t created, const std::string& model,
                  const ApiContext& ctx);
// The chat stream's first chunk (delta {"role": "assistant", "content": ""}).
json stream_role_chunk(const std::string& id, int64_t created, const std::string& model);
// The usage chunk (stream_options.include_usage): no choices, the usage and timings.
json stream_usage_chunk(const CompletionRequest& r, const Event& last, const std::string& id,
                        int64_t created, const std::string& model);

json usage_of(const Event& last);
json timings_of(const Event& last);

}  // namespace bitnet::serve
