#include "serve/openai.h"

#include <cmath>
#include <random>
#include <set>

namespace bitnet::serve {
namespace {

ApiError bad(const std::string& param, const std::string& message) {
  return ApiError{400, message, "invalid_request_error", param};
}

// Fields of the request body that are present and not null.
const json* field(const json& body, const char* name) {
  auto it = body.find(name);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

std::optional<ApiError> read_bool(const json& body, const char* name, bool* out) {
  const json* v = field(body, name);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) return bad(name, std::string("'") + name + "' must be a boolean");
  *out = v->get<bool>();
  return std::nullopt;
}

std::optional<ApiError> read_number(const json& body, const char* name, double lo, double hi,
                                    float* out) {
  const json* v = field(body, name);
  if (!v) return std::nullopt;
  if (!v->is_number()) return bad(name, std::string("'") + name + "' must be a number");
  const double d = v->get<double>();
  if (!std::isfinite(d) || d < lo || d > hi) {
    char msg[160];
    std::snprintf(msg, sizeof msg, "'%s' must be between %g and %g", name, lo, hi);
    return bad(name, msg);
  }
  *out = static_cast<float>(d);
  return std::nullopt;
}

std::optional<ApiError> read_int(const json& body, const char* name, int64_t lo, int64_t hi,
                                 int64_t* out) {
  const json* v = field(body, name);
  if (!v) return std::nullopt;
  if (!v->is_number_integer()) return bad(name, std::string("'") + name + "' must be an integer");
  // Unsigned values above INT64_MAX read as negative through get<int64_t>: check the sign too.
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(hi)) {
    return bad(name, std::string("'") + name + "' is too large");
  }
  const int64_t i = v->get<int64_t>();
  if (i < lo || i > hi) {
    return bad(name, std::string("'") + name + "' must be between " + std::to_string(lo) + " and " +
                         std::to_string(hi));
  }
  *out = i;
  return std::nullopt;
}

// Fields of both endpoints that this server reads.
const std::set<std::string>& common_fields() {
  static const std::set<std::string> k = {"model",
                                          "stream",
                                          "stream_options",
                                          "max_tokens",
                                          "n_predict",
                                          "temperature",
                                          "top_p",
                                          "top_k",
                                          "min_p",
                                          "seed",
                                          "stop",
                                          "n",
                                          "user",
                                          "presence_penalty",
                                          "frequency_penalty",
                                          "repeat_penalty",
                                          "logit_bias",
                                          "cache_prompt",
                                          "logprobs",
                                          "response_format",
                                          "tools",
                                          "tool_choice",
                                          "functions",
                                          "function_call",
                                          "parallel_tool_calls"};
  return k;
}

// Fields that would change what is generated in ways this server does not implement: refused
// unless they hold their neutral value.
std::optional<ApiError> check_unsupported(const json& body) {
  for (const char* name : {"tools", "functions"}) {
    const json* v = field(body, name);
    if (v && !(v->is_array() && v->empty())) {
      return bad(name, std::string("'") + name + "' (tool and function calling) is not supported");
    }
  }
  for (const char* name : {"tool_choice", "function_call"}) {
    const json* v = field(body, name);
    if (v && !(v->is_string() && v->get<std::string>() == "none")) {
      return bad(name, std::string("'") + name + "' is not supported (only \"none\")");
    }
  }
  if (const json* v = field(body, "parallel_tool_calls"); v && !v->is_boolean())
    return bad("parallel_tool_calls", "'parallel_tool_calls' must be a boolean");
  if (const json* v = field(body, "n")) {
    if (!v->is_number_integer() || v->get<int64_t>() != 1)
      return bad("n", "only n = 1 is supported (one choice per request)");
  }
  for (const char* name : {"presence_penalty", "frequency_penalty"}) {
    const json* v = field(body, name);
    if (!v) continue;
    if (!v->is_number()) return bad(name, std::string("'") + name + "' must be a number");
    if (v->get<double>() != 0.0) {
      return bad(name, std::string("'") + name +
                           "' is not supported (only 0; 'repeat_penalty' is llama.cpp's penalty)");
    }
  }
  if (const json* v = field(body, "logit_bias"); v && !(v->is_object() && v->empty()))
    return bad("logit_bias", "'logit_bias' is not supported");
  if (const json* v = field(body, "response_format")) {
    const json* type = v->is_object() ? field(*v, "type") : nullptr;
    if (!type || !type->is_string() || type->get<std::string>() != "text")
      return bad("response_format", "only response_format {\"type\": \"text\"} is supported");
  }
  if (const json* v = field(body, "user"); v && !v->is_string())
    return bad("user", "'user' must be a string");
  if (const json* v = field(body, "model"); v && !v->is_string())
    return bad("model", "'model' must be a string");
  bool cache = true;
  if (auto e = read_bool(body, "cache_prompt", &cache)) return e;
  return std::nullopt;
}

std::optional<ApiError> read_stop(const json& body, std::vector<std::string>* out) {
  const json* v = field(body, "stop");
  if (!v) return std::nullopt;
  if (v->is_string()) {
    if (!v->get<std::string>().empty()) out->push_back(v->get<std::string>());
    return std::nullopt;
  }
  if (!v->is_array() || v->size() > 16)
    return bad("stop", "'stop' must be a string or an array of at most 16 strings");
  for (const auto& s : *v) {
    if (!s.is_string()) return bad("stop", "'stop' must be a string or an array of strings");
    if (!s.get<std::string>().empty()) out->push_back(s.get<std::string>());
  }
  return std::nullopt;
}

json token_bytes(std::string_view piece) {
  json b = json::array();
  for (unsigned char c : piece) b.push_back(static_cast<int>(c));
  return b;
}

json chat_logprobs(const std::vector<TokenLogprob>& lps, const ApiContext& ctx) {
  json content = json::array();
  for (const auto& lp : lps) {
    const std::string_view piece = ctx.tok->token_to_piece(lp.token, false);
    json top = json::array();
    for (const auto& [id, l] : lp.top) {
      const std::string_view p = ctx.tok->token_to_piece(id, false);
      top.push_back({{"token", std::string(p)}, {"logprob", l}, {"bytes", token_bytes(p)}});
    }
    content.push_back({{"id", lp.token},
                       {"token", std::string(piece)},
                       {"logprob", lp.logprob},
                       {"bytes", token_bytes(piece)},
                       {"top_logprobs", std::move(top)}});
  }
  return {{"content", std::move(content)}};
}

// The legacy completions format: parallel arrays, text offsets from the start of the reply.
json completion_logprobs(const std::vector<TokenLogprob>& lps, size_t offset0,
                         const ApiContext& ctx) {
  json tokens = json::array(), lp = json::array(), top = json::array(), offsets = json::array();
  size_t offset = offset0;
  for (const auto& t : lps) {
    const std::string_view piece = ctx.tok->token_to_piece(t.token, false);
    tokens.push_back(std::string(piece));
    lp.push_back(t.logprob);
    json alts = json::object();
    for (const auto& [id, l] : t.top) alts[std::string(ctx.tok->token_to_piece(id, false))] = l;
    top.push_back(std::move(alts));
    offsets.push_back(offset);
    offset += piece.size();
  }
  return {{"tokens", std::move(tokens)},
          {"token_logprobs", std::move(lp)},
          {"top_logprobs", std::move(top)},
          {"text_offset", std::move(offsets)}};
}

}  // namespace

json error_body(const ApiError& e) {
  return {{"error",
           {{"message", e.message},
            {"type", e.type},
            {"param", e.param.empty() ? json(nullptr) : json(e.param)},
            {"code", e.status}}}};
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::variant<std::vector<tokenizer::ChatMessage>, ApiError> parse_messages(const json& messages) {
  if (!messages.is_array() || messages.empty())
    return bad("messages", "'messages' must be a non-empty array");
  std::vector<tokenizer::ChatMessage> out;
  for (const auto& m : messages) {
    if (!m.is_object()) return bad("messages", "every message must be an object");
    const json* role = field(m, "role");
    if (!role || !role->is_string()) return bad("messages", "every message needs a string 'role'");
    std::string r = role->get<std::string>();
    if (r == "developer") r = "system";  // OpenAI's newer name for the system role
    if (r != "system" && r != "user" && r != "assistant") {
      return bad("messages", "message role '" + role->get<std::string>() +
                                 "' is not supported (system, developer, user, assistant)");
    }
    std::string content;
    const json* c = field(m, "content");
    if (c && c->is_string()) {
      content = c->get<std::string>();
    } else if (c && c->is_array()) {
      // Content parts: text only.
      for (const auto& part : *c) {
        const json* type = part.is_object() ? field(part, "type") : nullptr;
        const json* text = part.is_object() ? field(part, "text") : nullptr;
        if (!type || !type->is_string() || type->get<std::string>() != "text" || !text ||
            !text->is_string()) {
          return bad("messages", "only text content parts are supported");
        }
        content += text->get<std::string>();
      }
    } else if (c) {
      return bad("messages", "message content must be a string or an array of text parts");
    } else if (r != "assistant") {
      return bad("messages", "a " + r + " message needs 'content'");
    }
    if (const json* tc = field(m, "tool_calls"); tc && !(tc->is_array() && tc->empty()))
      return bad("messages", "tool calls in messages are not supported");
    out.push_back({r, std::move(content)});
  }
  return out;
}

std::variant<CompletionRequest, ApiError> parse_completion(const std::string& body_text, bool chat,
                                                           const ApiContext& ctx) {
  json body = json::parse(body_text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) return bad("", "the request body is not valid JSON");
  if (!body.is_object()) return bad("", "the request body must be a JSON object");
  std::set<std::string> known = common_fields();
  if (chat) {
    known.insert({"messages", "max_completion_tokens", "top_logprobs"});
  } else {
    known.insert({"prompt", "echo", "suffix", "best_of"});
  }
  for (const auto& [k, v] : body.items()) {
    if (!known.count(k)) return bad(k, "unknown field '" + k + "'");
  }
  if (auto e = check_unsupported(body)) return *e;

  CompletionRequest r;
  r.chat = chat;
  if (auto e = read_bool(body, "stream", &r.stream)) return *e;
  if (const json* so = field(body, "stream_options")) {
    if (!so->is_object()) return bad("stream_options", "'stream_options' must be an object");
    for (const auto& [k, v] : so->items()) {
      if (k != "include_usage") return bad("stream_options", "unknown stream option '" + k + "'");
    }
    if (auto e = read_bool(*so, "include_usage", &r.include_usage)) return *e;
  }

  // The prompt.
  std::vector<int32_t>& ids = r.request.prompt;
  if (chat) {
    const json* m = field(body, "messages");
    if (!m) return bad("messages", "'messages' is required");
    auto msgs = parse_messages(*m);
    if (auto* e = std::get_if<ApiError>(&msgs)) return *e;
    auto text = tokenizer::apply_chat_template(
        ctx.chat_template, std::get<std::vector<tokenizer::ChatMessage>>(msgs), true);
    if (!text) return bad("messages", text.message());
    r.prompt_text = *text;
    ids = ctx.tok->encode(r.prompt_text, {.add_special = true, .parse_special = true});
  } else {
    const json* p = field(body, "prompt");
    if (!p) return bad("prompt", "'prompt' is required");
    const json* one = p;
    if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) one = &(*p)[0];
    if (one->is_string()) {
      r.prompt_text = one->get<std::string>();
      ids = ctx.tok->encode(r.prompt_text, {.add_special = true, .parse_special = false});
    } else if (p->is_array() && !p->empty() && std::all_of(p->begin(), p->end(), [](const json& t) {
                 return t.is_number_integer();
               })) {
      for (const auto& t : *p) {
        const int64_t id = t.get<int64_t>();
        if (id < 0 || id >= static_cast<int64_t>(ctx.tok->n_tokens()))
          return bad("prompt", "token id " + std::to_string(id) + " is out of the vocabulary");
        ids.push_back(static_cast<int32_t>(id));
      }
    } else {
      return bad("prompt", "'prompt' must be a string, one string in an array, or token ids");
    }
    bool echo = false;
    if (auto e = read_bool(body, "echo", &echo)) return *e;
    if (echo) return bad("echo", "'echo' is not supported");
    if (const json* s = field(body, "suffix");
        s && !(s->is_string() && s->get<std::string>().empty()))
      return bad("suffix", "'suffix' is not supported");
    int64_t best_of = 1;
    if (auto e = read_int(body, "best_of", 1, 1, &best_of)) return *e;
  }
  if (ids.empty()) return bad(chat ? "messages" : "prompt", "the prompt has no tokens");
  const int n_prompt = static_cast<int>(ids.size());
  if (n_prompt >= ctx.n_ctx) {
    return bad(chat ? "messages" : "prompt", "the prompt has " + std::to_string(n_prompt) +
                                                 " tokens; the context of a slot holds " +
                                                 std::to_string(ctx.n_ctx) +
                                                 " (prompt and reply together)");
  }

  // Length.
  int64_t max_tokens = -1;
  for (const char* name : {"max_tokens", "max_completion_tokens", "n_predict"}) {
    if (!known.count(name)) continue;
    int64_t v = -1;
    if (auto e = read_int(body, name, -1, 1 << 30, &v)) return *e;
    if (field(body, name) && v >= 0) max_tokens = v;
  }
  const int room = ctx.n_ctx - n_prompt;
  if (max_tokens < 0) max_tokens = room;  // as OpenAI: up to the context
  if (max_tokens > room) {
    return bad("max_tokens", "the prompt (" + std::to_string(n_prompt) +
                                 " tokens) and max_tokens (" + std::to_string(max_tokens) +
                                 ") exceed the context of " + std::to_string(ctx.n_ctx) +
                                 " tokens per slot");
  }
  r.request.options.max_tokens = static_cast<int>(max_tokens);

  // Sampling.
  generate::SamplerOptions& s = r.request.options.sampler;
  s = ctx.defaults;
  s.greedy = false;
  if (auto e = read_number(body, "temperature", 0, 100, &s.temperature)) return *e;
  if (auto e = read_number(body, "top_p", 0, 1, &s.top_p)) return *e;
  if (auto e = read_number(body, "min_p", 0, 1, &s.min_p)) return *e;
  if (auto e = read_number(body, "repeat_penalty", 1e-3, 100, &s.repeat_penalty)) return *e;
  int64_t top_k = s.top_k;
  if (auto e = read_int(body, "top_k", 0, 1 << 30, &top_k)) return *e;
  s.top_k = static_cast<int>(top_k);
  if (const json* seed = field(body, "seed")) {
    if (!seed->is_number_integer()) return bad("seed", "'seed' must be an integer");
    s.seed = seed->is_number_unsigned() ? seed->get<uint64_t>()
                                        : static_cast<uint64_t>(seed->get<int64_t>());
  } else {
    std::random_device rd;
    s.seed = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }
  if (auto e = read_stop(body, &r.request.options.stop)) return *e;

  // Log-probabilities: chat has logprobs (bool) + top_logprobs, completions logprobs (int).
  if (chat) {
    bool lp = false;
    if (auto e = read_bool(body, "logprobs", &lp)) return *e;
    int64_t top = 0;
    if (auto e = read_int(body, "top_logprobs", 0, 20, &top)) return *e;
    if (field(body, "top_logprobs") && !lp)
      return bad("top_logprobs", "'top_logprobs' needs 'logprobs': true");
    r.request.n_logprobs = lp ? static_cast<int>(top) : -1;
  } else {
    int64_t n = -1;
    if (auto e = read_int(body, "logprobs", 0, 20, &n)) return *e;
    r.request.n_logprobs = static_cast<int>(n);
  }
  return r;
}

json usage_of(const Event& last) {
  return {{"prompt_tokens", last.n_prompt},
          {"completion_tokens", last.n_generated},
          {"total_tokens", last.n_prompt + last.n_generated},
          {"prompt_tokens_details", {{"cached_tokens", last.n_cached}}}};
}

json timings_of(const Event& last) {
  const int evaluated = last.n_prompt - last.n_cached;
  return {{"cache_n", last.n_cached},
          {"prompt_n", evaluated},
          {"prompt_ms", last.prompt_ms},
          {"prompt_per_second", last.prompt_ms > 0 ? evaluated * 1000.0 / last.prompt_ms : 0.0},
          {"predicted_n", last.n_generated},
          {"predicted_ms", last.generate_ms},
          {"predicted_per_second",
           last.generate_ms > 0 ? last.n_generated * 1000.0 / last.generate_ms : 0.0}};
}

json completion_response(const CompletionRequest& r, const Finished& f, const std::string& id,
                         int64_t created, const std::string& model, const ApiContext& ctx) {
  json choice = {{"index", 0}, {"finish_reason", f.last.finish_reason}};
  const bool lp = r.request.n_logprobs >= 0;
  if (r.chat) {
    choice["message"] = {{"role", "assistant"}, {"content", f.text}};
    choice["logprobs"] = lp ? chat_logprobs(f.logprobs, ctx) : json(nullptr);
  } else {
    choice["text"] = f.text;
    choice["logprobs"] = lp ? completion_logprobs(f.logprobs, 0, ctx) : json(nullptr);
  }
  return {{"id", id},
          {"object", r.chat ? "chat.completion" : "text_completion"},
          {"created", created},
          {"model", model},
          {"system_fingerprint", "bitnet"},
          {"choices", json::array({std::move(choice)})},
          {"usage", usage_of(f.last)},
          {"timings", timings_of(f.last)}};
}

json stream_chunk(const CompletionRequest& r, const std::string& text,
                  const std::vector<TokenLogprob>& logprobs, const std::string* finish,
                  const std::string& id, int64_t created, const std::string& model,
                  const ApiContext& ctx) {
  json choice = {{"index", 0}, {"finish_reason", finish ? json(*finish) : json(nullptr)}};
  const bool lp = r.request.n_logprobs >= 0 && !logprobs.empty();
  if (r.chat) {
    choice["delta"] = finish && text.empty() ? json::object() : json{{"content", text}};
    choice["logprobs"] = lp ? chat_logprobs(logprobs, ctx) : json(nullptr);
  } else {
    choice["text"] = text;
    choice["logprobs"] = lp ? completion_logprobs(logprobs, 0, ctx) : json(nullptr);
  }
  return {{"id", id},
          {"object", r.chat ? "chat.completion.chunk" : "text_completion"},
          {"created", created},
          {"model", model},
          {"system_fingerprint", "bitnet"},
          {"choices", json::array({std::move(choice)})}};
}

json stream_role_chunk(const std::string& id, int64_t created, const std::string& model) {
  return {{"id", id},
          {"object", "chat.completion.chunk"},
          {"created", created},
          {"model", model},
          {"system_fingerprint", "bitnet"},
          {"choices", json::array({{{"index", 0},
                                    {"delta", {{"role", "assistant"}, {"content", ""}}},
                                    {"logprobs", nullptr},
                                    {"finish_reason", nullptr}}})}};
}

json stream_usage_chunk(const CompletionRequest& r, const Event& last, const std::string& id,
                        int64_t created, const std::string& model) {
  return {{"id", id},
          {"object", r.chat ? "chat.completion.chunk" : "text_completion"},
          {"created", created},
          {"model", model},
          {"system_fingerprint", "bitnet"},
          {"choices", json::array()},
          {"usage", usage_of(last)},
          {"timings", timings_of(last)}};
}

}  // namespace bitnet::serve
