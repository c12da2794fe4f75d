// `bitnet serve`'s HTTP side: llama-server's and OpenAI's endpoints over cpp-httplib, in front
// of an Engine. The server listens before the model is loaded (GET /health answers 503 until
// set_ready()), so a supervisor can tell "loading" from "down".
//
//   POST /v1/chat/completions, /v1/completions (also without /v1; `stream: true` over SSE)
//   GET  /v1/models (/models), /health, /props, /metrics (Prometheus text)
//   POST /tokenize, /detokenize, /apply-template
//
// Every request gets an answer with a status code: malformed or unsupported input is a 400 with
// OpenAI's error object, a full queue a 503 with Retry-After, a missing or wrong key a 401. No
// request can stop the server.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "core/result.h"
#include "serve/engine.h"
#include "serve/openai.h"

namespace httplib {
class Server;
}

namespace bitnet::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;      // 0: any free port (bind() returns it)
  std::string api_key;  // empty: no key; else every endpoint but /health wants "Bearer KEY"
  size_t max_body_bytes = 1 << 20;
  int read_timeout_s = 15;
  int write_timeout_s = 15;
  int http_threads = 16;  // connections served at once; more wait for a thread
};

// What the API endpoints need once the model is loaded.
struct Backend {
  const model::Model* model = nullptr;
  const tokenizer::Tokenizer* tok = nullptr;
  Engine* engine = nullptr;
  ApiContext api;
  std::string model_id;  // "model" in responses and /v1/models
  std::string model_path;
  std::string kernels;  // for /props
};

class Server {
 public:
  explicit Server(const ServerOptions& o);
  ~Server();

  // Binds the listening socket; returns the port.
  Result<int> bind();
  // Serves until stop(); call after bind(), typically on its own thread.
  void listen();
  void stop();
  // The model is loaded: the API endpoints start answering (`b` must outlive the server).
  void set_ready(const Backend& b);

 private:
  void routes();
  std::unique_ptr<httplib::Server> http_;
  ServerOptions o_;
  std::atomic<const Backend*> backend_{nullptr};
  Backend backend_storage_;
  std::atomic<int64_t> next_id_{1};
  // Counters for /metrics beyond the engine's.
  std::atomic<int64_t> http_requests_{0}, http_errors_{0};
};

}  // namespace bitnet::serve
