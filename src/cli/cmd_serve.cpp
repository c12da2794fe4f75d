// `bitnet serve`: an OpenAI-compatible HTTP server (src/serve/). It listens first, loads the
// model (GET /health answers 503 meanwhile), then serves until SIGINT or SIGTERM.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <thread>

#include "cli/command.h"
#include "cli/model_flags.h"
#include "serve/engine.h"
#include "serve/server.h"
#include "tokenizer/chat_template.h"

namespace bitnet::cli {
namespace {

struct ServeFlags {
  ModelFlags model;
  std::string host = "127.0.0.1";
  int port = 8080;
  int parallel = 4;
  int queue = 64;
  int batch = 256;
  std::string api_key;
  std::string alias;
  std::string chat_template;
  size_t max_body = 1 << 20;
  int timeout = 15;
  int http_threads = 0;
  float temperature = 0.8f;
  int top_k = 40;
  float top_p = 0.95f;
  float min_p = 0.05f;
  float repeat_penalty = 1.0f;
};

int serve(ServeFlags f) {
  if (f.port < 0 || f.port > 65535) return fail("--port must be in 0..65535");
  if (f.parallel < 1 || f.parallel > 256) return fail("--parallel must be in 1..256");
  if (f.queue < 0 || f.batch < 1 || f.timeout < 1)
    return fail("--queue must not be negative, --batch and --timeout must be at least 1");
  if (f.http_threads < 0) return fail("--http-threads must not be negative");
  if (f.api_key.empty()) f.api_key = env_var("BITNET_API_KEY");
  tokenizer::ChatTemplate tmpl = tokenizer::ChatTemplate::kRaw;
  if (!f.chat_template.empty()) {
    auto t = tokenizer::chat_template_from_name(f.chat_template);
    if (!t) return fail(t.error());
    tmpl = *t;
  }

  // SIGINT / SIGTERM are taken by sigwait() below: block them before any thread starts.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  // A client that goes away mid-response must not kill the server.
  signal(SIGPIPE, SIG_IGN);

  serve::ServerOptions so;
  so.host = f.host;
  so.port = f.port;
  so.api_key = f.api_key;
  so.max_body_bytes = f.max_body;
  so.read_timeout_s = so.write_timeout_s = f.timeout;
  // One thread per connection being served: every slot and queued request may hold one (a
  // streaming response keeps its thread), plus a few for /health and /metrics.
  so.http_threads = f.http_threads > 0 ? f.http_threads : f.parallel + f.queue + 4;
  serve::Server server(so);
  auto port = server.bind();
  if (!port) return fail(port.error());
  std::thread listener([&] { server.listen(); });
  std::fprintf(stderr, "bitnet serve: listening on http://%s:%d (loading %s)\n", f.host.c_str(),
               *port, f.model.model.c_str());

  auto shut = [&](int code) {
    server.stop();
    listener.join();
    return code;
  };
  auto lm = load_model(f.model);
  if (!lm) {
    fail(lm.error());
    return shut(kExitFailure);
  }
  if (f.chat_template.empty()) {
    const gguf::Value* v = lm->model->file().find("tokenizer.chat_template");
    tmpl = tokenizer::detect_chat_template(v && v->as_string() ? *v->as_string() : "");
  }
  serve::EngineOptions eo;
  eo.n_slots = f.parallel;
  eo.n_ctx = f.model.ctx;
  eo.n_queue = f.queue;
  eo.n_batch = f.batch;
  eo.n_threads = lm->context->n_threads();
  eo.kv_f16 = f.model.kv_type == "f16";
  lm->context.reset();  // the engine has its own context, with a sequence per slot
  auto engine = serve::Engine::create(*lm->model, lm->tokenizer, eo);
  if (!engine) {
    fail(engine.error());
    return shut(kExitFailure);
  }
  serve::Backend b;
  b.model = lm->model.get();
  b.tok = &lm->tokenizer;
  b.engine = engine->get();
  b.api.tok = &lm->tokenizer;
  b.api.chat_template = tmpl;
  b.api.n_ctx = (*engine)->n_ctx();
  b.api.defaults.temperature = f.temperature;
  b.api.defaults.top_k = f.top_k;
  b.api.defaults.top_p = f.top_p;
  b.api.defaults.min_p = f.min_p;
  b.api.defaults.repeat_penalty = f.repeat_penalty;
  b.model_id = f.alias.empty() ? std::filesystem::path(f.model.model).filename().string() : f.alias;
  b.model_path = f.model.model;
  b.kernels = kernels_name(*lm);
  server.set_ready(b);
  std::fprintf(stderr,
               "bitnet serve: ready: %s, %d slots of %d tokens, template %s, kernels %s%s\n",
               b.model_id.c_str(), f.parallel, b.api.n_ctx,
               std::string(tokenizer::chat_template_name(tmpl)).c_str(), b.kernels.c_str(),
               f.api_key.empty() ? "" : ", API key required");

  int sig = 0;
  sigwait(&stop_signals, &sig);
  std::fprintf(stderr, "bitnet serve: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
  server.stop();
  listener.join();
  engine->reset();
  return kExitOk;
}

}  // namespace

std::vector<Command> register_serve(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "serve",
      "OpenAI-compatible HTTP server (chat and text completions, streaming) with "
      "continuous batching");
  auto f = std::make_shared<ServeFlags>();
  f->model.add_to(sub);
  sub->add_option("--host", f->host, "Address to listen on (0.0.0.0: every interface)")
      ->capture_default_str();
  sub->add_option("--port", f->port, "Port (0: any free port)")->capture_default_str();
  sub->add_option("--parallel", f->parallel,
                  "Slots: requests decoded together in one batch per step")
      ->capture_default_str();
  sub->add_option("--queue", f->queue,
                  "Requests waiting for a slot at most; more get 503 with Retry-After")
      ->capture_default_str();
  sub->add_option("--batch", f->batch,
                  "Rows per forward pass at most (prompt chunks fill what decoding leaves)")
      ->capture_default_str();
  sub->add_option("--api-key", f->api_key,
                  "Require 'Authorization: Bearer KEY' on every endpoint but /health (also "
                  "BITNET_API_KEY)");
  sub->add_option("--alias", f->alias, "Model name in responses (default: the file name)");
  sub->add_option(
      "--chat-template", f->chat_template,
      "Template: " + tokenizer::chat_template_names() + " (default: from the model, else bitnet)");
  sub->add_option("--max-body", f->max_body, "Largest request body in bytes")
      ->capture_default_str();
  sub->add_option("--timeout", f->timeout, "Read and write timeout per connection, seconds")
      ->capture_default_str();
  sub->add_option("--http-threads", f->http_threads,
                  "Connections served at once (default: parallel + queue + 4)");
  sub->add_option("--temperature", f->temperature, "Default temperature of requests")
      ->capture_default_str();
  sub->add_option("--top-k", f->top_k, "Default top-k of requests")->capture_default_str();
  sub->add_option("--top-p", f->top_p, "Default top-p of requests")->capture_default_str();
  sub->add_option("--min-p", f->min_p, "Default min-p of requests")->capture_default_str();
  sub->add_option("--repeat-penalty", f->repeat_penalty, "Default repeat penalty of requests")
      ->capture_default_str();
  return {Command{sub, [f] { return serve(*f); }}};
}

}  // namespace bitnet::cli
