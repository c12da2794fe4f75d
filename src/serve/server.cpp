#include "serve/server.h"

#include <httplib.h>

#include <chrono>
#include <ctime>

namespace bitnet::serve {
namespace {

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(dump(body), "application/json");
}

void send_error(httplib::Response& res, const ApiError& e) {
  send_json(res, e.status, error_body(e));
}

ApiError unavailable(const std::string& message) {
  return ApiError{503, message, "unavailable_error", ""};
}

const char* status_type(int status) {
  switch (status) {
    case 401:
      return "authentication_error";
    case 404:
      return "not_found_error";
    case 413:
      return "invalid_request_error";
    case 503:
      return "unavailable_error";
    default:
      return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

// A JSON object body, or an error.
std::variant<json, ApiError> object_body(const httplib::Request& req) {
  json body = json::parse(req.body, nullptr, false);
  if (body.is_discarded()) return ApiError{400, "the request body is not valid JSON"};
  if (!body.is_object()) return ApiError{400, "the request body must be a JSON object"};
  return body;
}

bool sse_write(httplib::DataSink& sink, const std::string& data) {
  const std::string s = "data: " + data + "\n\n";
  return sink.write(s.data(), s.size());
}

void metric(std::string& out, const char* name, const char* type, const char* help, double v) {
  char line[256];
  std::snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type,
                name, v);
  out += line;
}

// What a streamed response keeps between calls of its content provider.
struct StreamState {
  CompletionRequest request;
  std::shared_ptr<Job> job;
  std::string id, model;
  int64_t created = 0;
  bool role_sent = false;
  bool finished = false;
};

}  // namespace

Server::Server(const ServerOptions& o) : http_(std::make_unique<httplib::Server>()), o_(o) {
  const int threads = std::max(2, o_.http_threads);
  http_->new_task_queue = [threads] {
    return new httplib::ThreadPool(static_cast<size_t>(threads));
  };
  http_->set_payload_max_length(o_.max_body_bytes);
  http_->set_read_timeout(o_.read_timeout_s, 0);
  http_->set_write_timeout(o_.write_timeout_s, 0);
  http_->set_keep_alive_timeout(5);
  routes();
}

Server::~Server() { stop(); }

Result<int> Server::bind() {
  if (o_.port == 0) {
    const int port = http_->bind_to_any_port(o_.host);
    if (port <= 0) return make_error("cannot listen on %s (any port)", o_.host.c_str());
    return port;
  }
  if (!http_->bind_to_port(o_.host, o_.port))
    return make_error("cannot listen on %s:%d (in use, or not an address of this machine)",
                      o_.host.c_str(), o_.port);
  return o_.port;
}

void Server::listen() { http_->listen_after_bind(); }

void Server::stop() {
  if (http_) http_->stop();
}

void Server::set_ready(const Backend& b) {
  backend_storage_ = b;
  backend_.store(&backend_storage_);
}

void Server::routes() {
  httplib::Server& h = *http_;
  h.set_default_headers({{"Access-Control-Allow-Origin", "*"}});
  // Authentication and readiness before any handler runs.
  h.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    ++http_requests_;
    if (req.method == "OPTIONS" || req.path == "/health")
      return httplib::Server::HandlerResponse::Unhandled;
    if (!o_.api_key.empty() && req.get_header_value("Authorization") != "Bearer " + o_.api_key) {
      send_error(res, ApiError{401, "invalid or missing API key (Authorization: Bearer KEY)",
                               "authentication_error", ""});
      return httplib::Server::HandlerResponse::Handled;
    }
    if (!backend_.load()) {
      send_error(res, unavailable("the model is loading"));
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Errors without a body of ours (unknown path, body too large, ...) get OpenAI's error object.
  h.set_error_handler(
      httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        std::string msg = res.status == 404   ? "no endpoint " + req.method + " " + req.path
                          : res.status == 413 ? std::string("the request body is too large")
                                              : "HTTP status " + std::to_string(res.status);
        send_json(res, res.status, error_body({res.status, msg, status_type(res.status), ""}));
        return httplib::Server::HandlerResponse::Handled;
      }));
  h.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "internal error";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = std::string("internal error: ") + e.what();
        } catch (...) {
        }
        send_error(res, ApiError{500, what, "server_error", ""});
      });
  h.set_logger([this](const httplib::Request&, const httplib::Response& res) {
    if (res.status >= 400) ++http_errors_;
  });
  h.Options(".*", [](const httplib::Request&, httplib::Response& res) {
    res.status = 204;
    res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type");
  });

  h.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    if (!backend_.load()) return send_error(res, unavailable("the model is loading"));
    send_json(res, 200, {{"status", "ok"}});
  });

  auto models = [this](const httplib::Request&, httplib::Response& res) {
    const Backend& b = *backend_.load();
    const auto& c = b.model->config();
    send_json(res, 200,
              {{"object", "list"},
               {"data", json::array({{{"id", b.model_id},
                                      {"object", "model"},
                                      {"created", 0},
                                      {"owned_by", "bitnet"},
                                      {"meta",
                                       {{"n_vocab", c.n_vocab},
                                        {"n_ctx_train", c.n_ctx_train},
                                        {"n_embd", c.n_embd},
                                        {"n_layer", c.n_layers}}}}})}});
  };
  h.Get("/v1/models", models);
  h.Get("/models", models);

  h.Get("/props", [this](const httplib::Request&, httplib::Response& res) {
    const Backend& b = *backend_.load();
    const auto& s = b.api.defaults;
    send_json(res, 200,
              {{"model_path", b.model_path},
               {"model_alias", b.model_id},
               {"total_slots", b.engine->n_slots()},
               {"n_ctx", b.engine->n_ctx()},
               {"chat_template", std::string(tokenizer::chat_template_name(b.api.chat_template))},
               {"kernels", b.kernels},
               {"default_generation_settings",
                {{"n_ctx", b.engine->n_ctx()},
                 {"params",
                  {{"temperature", s.temperature},
                   {"top_k", s.top_k},
                   {"top_p", s.top_p},
                   {"min_p", s.min_p},
                   {"repeat_penalty", s.repeat_penalty}}}}}});
  });

  h.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    const Backend& b = *backend_.load();
    const EngineStats s = b.engine->stats();
    std::string out;
    metric(out, "bitnet_http_requests_total", "counter", "HTTP requests received.",
           static_cast<double>(http_requests_.load()));
    metric(out, "bitnet_http_errors_total", "counter", "HTTP responses with status >= 400.",
           static_cast<double>(http_errors_.load()));
    metric(out, "bitnet_requests_started_total", "counter", "Completions placed on a slot.",
           static_cast<double>(s.requests_started));
    metric(out, "bitnet_requests_finished_total", "counter", "Completions finished.",
           static_cast<double>(s.requests_finished));
    metric(out, "bitnet_requests_refused_total", "counter", "Completions refused: queue full.",
           static_cast<double>(s.requests_refused));
    metric(out, "bitnet_prompt_tokens_total", "counter", "Prompt tokens evaluated.",
           static_cast<double>(s.prompt_tokens));
    metric(out, "bitnet_prompt_tokens_reused_total", "counter",
           "Prompt tokens taken from a slot's cache.", static_cast<double>(s.prompt_reused));
    metric(out, "bitnet_generated_tokens_total", "counter", "Tokens generated.",
           static_cast<double>(s.generated_tokens));
    metric(out, "bitnet_steps_total", "counter", "Forward passes.", static_cast<double>(s.steps));
    metric(out, "bitnet_busy_seconds_total", "counter", "Seconds spent in forward passes.",
           s.busy_seconds);
    metric(out, "bitnet_queue_depth", "gauge", "Requests waiting for a slot.", s.queue_depth);
    metric(out, "bitnet_slots_busy", "gauge", "Slots serving a request.", s.slots_busy);
    metric(out, "bitnet_slots_total", "gauge", "Slots.", b.engine->n_slots());
    metric(out, "bitnet_batch_rows_last", "gauge", "Rows in the last forward pass.",
           s.last_batch_rows);
    metric(out, "bitnet_batch_rows_mean", "gauge", "Mean rows per forward pass.",
           s.steps > 0 ? static_cast<double>(s.step_rows) / static_cast<double>(s.steps) : 0.0);
    metric(out, "bitnet_generated_tokens_per_second", "gauge",
           "Generated tokens per busy second, since start.",
           s.busy_seconds > 0 ? static_cast<double>(s.generated_tokens) / s.busy_seconds : 0.0);
    res.set_content(out, "text/plain; version=0.0.4");
  });

  h.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
    const Backend& b = *backend_.load();
    auto body = object_body(req);
    if (auto* e = std::get_if<ApiError>(&body)) return send_error(res, *e);
    const json& j = std::get<json>(body);
    auto it = j.find("content");
    if (it == j.end() || !it->is_string())
      return send_error(
          res, ApiError{400, "'content' must be a string", "invalid_request_error", "content"});
    bool add_special = false, parse_special = true, with_pieces = false;
    for (auto [name, out] :
         {std::pair{"add_special", &add_special}, std::pair{"parse_special", &parse_special},
          std::pair{"with_pieces", &with_pieces}}) {
      auto f = j.find(name);
      if (f == j.end() || f->is_null()) continue;
      if (!f->is_boolean())
        return send_error(res, ApiError{400, std::string("'") + name + "' must be a boolean",
                                        "invalid_request_error", name});
      *out = f->get<bool>();
    }
    const auto ids = b.tok->encode(it->get<std::string>(),
                                   {.add_special = add_special, .parse_special = parse_special});
    json tokens = json::array();
    for (int32_t id : ids) {
      if (with_pieces)
        tokens.push_back({{"id", id}, {"piece", std::string(b.tok->token_to_piece(id, true))}});
      else
        tokens.push_back(id);
    }
    send_json(res, 200, {{"tokens", std::move(tokens)}});
  });

  h.Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
    const Backend& b = *backend_.load();
    auto body = object_body(req);
    if (auto* e = std::get_if<ApiError>(&body)) return send_error(res, *e);
    const json& j = std::get<json>(body);
    auto it = j.find("tokens");
    if (it == j.end() || !it->is_array())
      return send_error(res, ApiError{400, "'tokens' must be an array of token ids",
                                      "invalid_request_error", "tokens"});
    std::vector<int32_t> ids;
    for (const auto& t : *it) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0 ||
          t.get<int64_t>() >= static_cast<int64_t>(b.tok->n_tokens()))
        return send_error(
            res, ApiError{400, "'tokens' holds something that is not a token id of this vocabulary",
                          "invalid_request_error", "tokens"});
      ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
    }
    send_json(res, 200, {{"content", b.tok->decode(ids)}});
  });

  h.Post("/apply-template", [this](const httplib::Request& req, httplib::Response& res) {
    const Backend& b = *backend_.load();
    auto body = object_body(req);
    if (auto* e = std::get_if<ApiError>(&body)) return send_error(res, *e);
    const json& j = std::get<json>(body);
    auto it = j.find("messages");
    if (it == j.end())
      return send_error(
          res, ApiError{400, "'messages' is required", "invalid_request_error", "messages"});
    auto msgs = parse_messages(*it);
    if (auto* e = std::get_if<ApiError>(&msgs)) return send_error(res, *e);
    auto text = tokenizer::apply_chat_template(
        b.api.chat_template, std::get<std::vector<tokenizer::ChatMessage>>(msgs), true);
    if (!text)
      return send_error(res, ApiError{400, text.message(), "invalid_request_error", "messages"});
    send_json(res, 200, {{"prompt", *text}});
  });

  auto completion = [this](bool chat) {
    return [this, chat](const httplib::Request& req, httplib::Response& res) {
      const Backend& b = *backend_.load();
      auto parsed = parse_completion(req.body, chat, b.api);
      if (auto* e = std::get_if<ApiError>(&parsed)) return send_error(res, *e);
      auto state = std::make_shared<StreamState>();
      state->request = std::move(std::get<CompletionRequest>(parsed));
      bool full = false;
      auto job = b.engine->submit(state->request.request, &full);
      if (!job) {
        if (full) {
          res.set_header("Retry-After", "1");
          return send_error(res, unavailable(job.message()));
        }
        return send_error(res, ApiError{400, job.message(), "invalid_request_error", ""});
      }
      state->job = *job;
      state->id = (chat ? "chatcmpl-" : "cmpl-") + std::to_string(next_id_++);
      state->model = b.model_id;
      state->created = static_cast<int64_t>(std::time(nullptr));

      if (!state->request.stream) {
        Finished f;
        for (bool done = false; !done;) {
          for (Event& e : state->job->wait(std::chrono::seconds(1))) {
            f.text += e.text;
            f.logprobs.insert(f.logprobs.end(), e.logprobs.begin(), e.logprobs.end());
            if (e.done) {
              f.last = std::move(e);
              done = true;
            }
          }
        }
        if (f.last.finish_reason == "error")
          return send_error(res, ApiError{500, f.last.error, "server_error", ""});
        if (f.last.finish_reason == "cancelled")
          return send_error(res, unavailable("the server is stopping"));
        return send_json(
            res, 200,
            completion_response(state->request, f, state->id, state->created, state->model, b.api));
      }

      res.set_header("Cache-Control", "no-cache");
      res.set_header("X-Accel-Buffering", "no");
      const ApiContext* api = &b.api;
      res.set_chunked_content_provider(
          "text/event-stream",
          [state, api](size_t, httplib::DataSink& sink) {
            auto fail = [&] {
              state->job->cancel();
              return false;
            };
            if (state->request.chat && !state->role_sent) {
              state->role_sent = true;
              if (!sse_write(sink,
                             dump(stream_role_chunk(state->id, state->created, state->model))))
                return fail();
            }
            for (Event& e : state->job->wait(std::chrono::milliseconds(200))) {
              if (!e.text.empty() || !e.logprobs.empty()) {
                if (!sse_write(sink,
                               dump(stream_chunk(state->request, e.text, e.logprobs, nullptr,
                                                 state->id, state->created, state->model, *api))))
                  return fail();
              }
              if (!e.done) continue;
              state->finished = true;
              bool ok = true;
              if (e.finish_reason == "error" || e.finish_reason == "cancelled") {
                ApiError err = e.finish_reason == "error"
                                   ? ApiError{500, e.error, "server_error", ""}
                                   : unavailable("the server is stopping");
                ok = sse_write(sink, dump(error_body(err)));
              } else {
                ok = sse_write(
                    sink, dump(stream_chunk(state->request, "", {}, &e.finish_reason, state->id,
                                            state->created, state->model, *api)));
                if (ok && state->request.include_usage)
                  ok = sse_write(sink, dump(stream_usage_chunk(state->request, e, state->id,
                                                               state->created, state->model)));
              }
              if (ok) ok = sse_write(sink, "[DONE]");
              if (!ok) return fail();
              sink.done();
              return true;
            }
            if (!sink.is_writable()) return fail();
            return true;
          },
          [state](bool) {
            // However the response ended: a request still running has no reader any more.
            if (!state->finished) state->job->cancel();
          });
    };
  };
  for (const char* prefix : {"", "/v1"}) {
    h.Post(std::string(prefix) + "/chat/completions", completion(true));
    h.Post(std::string(prefix) + "/completions", completion(false));
  }
}

}  // namespace bitnet::serve
