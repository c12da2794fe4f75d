// The server in-process on a tiny synthetic model, driven over HTTP with cpp-httplib's client:
// greedy replies equal generate() on the same tokens (alone, streamed, under concurrent load,
// and after a cached prefix), logprobs are the model's, and every bad request gets its status
// code and OpenAI's error object while the server stays healthy.
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "generate/generator.h"
#include "gtest/gtest.h"
#include "serve/engine.h"
#include "serve/server.h"
#include "synth/synth.h"
#include "test_util.h"
#include "tokenizer/chat_template.h"

namespace bitnet::serve {
namespace {

using json = nlohmann::json;

// One model, tokenizer, engine and server for the whole suite (loading is the slow part).
class ServeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { env_ = new Env(); }
  static void TearDownTestSuite() {
    delete env_;
    env_ = nullptr;
  }

  struct Env {
    test::TempDir dir;
    std::string path;
    std::unique_ptr<model::Model> model;
    tokenizer::Tokenizer tok;
    std::unique_ptr<model::Context> solo;  // generate() alone, for the expected replies
    std::unique_ptr<Engine> engine;
    std::unique_ptr<Server> server;
    Backend backend;
    std::thread listener;
    int port = 0;

    Env() {
      synth::SynthOptions o;
      o.config = *synth::preset_config("tiny", model::Arch::kBitnet);
      o.weight_type = gguf::TensorType::TQ2_0;
      o.vocab_path = std::string(BITNET_REFERENCE_DIR) + "/models/ggml-vocab-llama-bpe.gguf";
      path = dir.path("tiny.gguf");
      auto st = synth::write_synthetic_model(o, path);
      EXPECT_TRUE(st.ok()) << st.message();
      auto f = gguf::File::open(path);
      EXPECT_TRUE(f.ok());
      tok = tokenizer::Tokenizer::from_gguf(*f).value();
      model = model::Model::load(path).value();
      solo = model::Context::create(*model, {.n_ctx = 512, .n_threads = 2}).value();
      engine =
          Engine::create(*model, tok,
                         {.n_slots = 4, .n_ctx = 512, .n_queue = 16, .n_batch = 32, .n_threads = 2})
              .value();
      ServerOptions so;
      so.port = 0;
      so.http_threads = 32;
      so.max_body_bytes = 64 << 10;
      so.read_timeout_s = 2;
      server = std::make_unique<Server>(so);
      port = *server->bind();
      listener = std::thread([this] { server->listen(); });
      backend.model = model.get();
      backend.tok = &tok;
      backend.engine = engine.get();
      backend.api = {.tok = &tok, .chat_template = tokenizer::ChatTemplate::kBitnet, .n_ctx = 512};
      backend.model_id = "tiny";
      server->set_ready(backend);
    }
    ~Env() {
      server->stop();
      listener.join();
    }
  };

  static httplib::Client client() {
    httplib::Client c("127.0.0.1", env_->port);
    c.set_read_timeout(60, 0);
    return c;
  }
  static json post(const std::string& path, const json& body, int* status = nullptr) {
    auto c = client();
    auto r = c.Post(path.c_str(), body.dump(), "application/json");
    EXPECT_TRUE(r) << "no response from " << path;
    if (!r) return {};
    if (status) *status = r->status;
    return json::parse(r->body, nullptr, false);
  }

  // generate() on a fresh sequence: what a greedy request must return.
  static generate::GenerateResult expected(const std::vector<int32_t>& prompt, int max_tokens) {
    EXPECT_TRUE(env_->solo->kv_cache().remove(0, 0).ok());
    generate::GenerateOptions go;
    go.max_tokens = max_tokens;
    go.sampler.greedy = true;
    auto r = generate::generate(*env_->solo, env_->tok, prompt, go);
    EXPECT_TRUE(r.ok()) << r.message();
    return *r;
  }
  static std::vector<int32_t> encode(const std::string& text) {
    return env_->tok.encode(text, {.add_special = true, .parse_special = true});
  }
  static std::string chat_text(const std::vector<tokenizer::ChatMessage>& m) {
    return *tokenizer::apply_chat_template(tokenizer::ChatTemplate::kBitnet, m, true);
  }

  static Env* env_;
};
ServeTest::Env* ServeTest::env_ = nullptr;

// The last two are longer than a batch (32 rows): their prompts go in chunks beside the
// others' decode rows.
const char* const kPrompts[] = {
    "Hello",
    "The capital of France is",
    "1, 2, 3,",
    "Once upon a time",
    "def main():",
    "Bonjour, je",
    "A B C D E F G H I J K L M N O P Q R S T U V W X Y Z a b c d e f g h i j k l m n o p q r s t u "
    "v w x y z 0 1 2 3 4 5 6 7 8 9",
    "Why is the sky blue? The light of the sun is scattered by the molecules of the air, and the "
    "shorter wavelengths are scattered more than the longer ones, so that the sky looks blue in "
    "every direction away from the sun, while sunsets look red because"};

TEST_F(ServeTest, CompletionGreedyEqualsGenerate) {
  for (const char* p : {kPrompts[0], kPrompts[1]}) {
    const auto want = expected(encode(p), 12);
    int status = 0;
    json r =
        post("/v1/completions", {{"prompt", p}, {"max_tokens", 12}, {"temperature", 0}}, &status);
    ASSERT_EQ(status, 200) << r.dump();
    EXPECT_EQ(r["object"], "text_completion");
    EXPECT_EQ(r["choices"][0]["text"], want.text) << p;
    EXPECT_EQ(r["choices"][0]["finish_reason"], want.stop_reason == "eog" ? "stop" : "length");
    EXPECT_EQ(r["usage"]["prompt_tokens"], encode(p).size());
    EXPECT_EQ(r["usage"]["completion_tokens"], want.generated.size());
  }
}

TEST_F(ServeTest, ChatGreedyEqualsGenerateStreamedOrNot) {
  const std::vector<tokenizer::ChatMessage> m = {{"system", "Be brief."}, {"user", "Hi there"}};
  const auto want = expected(encode(chat_text(m)), 10);
  const json body = {{"messages",
                      {{{"role", "system"}, {"content", "Be brief."}},
                       {{"role", "user"}, {"content", "Hi there"}}}},
                     {"max_tokens", 10},
                     {"temperature", 0}};
  int status = 0;
  json r = post("/v1/chat/completions", body, &status);
  ASSERT_EQ(status, 200) << r.dump();
  EXPECT_EQ(r["object"], "chat.completion");
  EXPECT_EQ(r["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(r["choices"][0]["message"]["content"], want.text);

  // Streamed: the deltas add up to the same text; the stream ends with finish_reason, the usage
  // chunk and [DONE].
  json sb = body;
  sb["stream"] = true;
  sb["stream_options"] = {{"include_usage", true}};
  auto c = client();
  auto res = c.Post("/v1/chat/completions", sb.dump(), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/event-stream");
  std::string text, finish;
  bool usage = false, done = false;
  size_t at = 0;
  while ((at = res->body.find("data: ", at)) != std::string::npos) {
    const size_t end = res->body.find("\n\n", at);
    ASSERT_NE(end, std::string::npos);
    const std::string data = res->body.substr(at + 6, end - at - 6);
    at = end;
    if (data == "[DONE]") {
      done = true;
      continue;
    }
    json chunk = json::parse(data);
    EXPECT_EQ(chunk["object"], "chat.completion.chunk");
    if (chunk["choices"].empty()) {
      usage = true;
      EXPECT_EQ(chunk["usage"]["completion_tokens"], want.generated.size());
      continue;
    }
    const json& ch = chunk["choices"][0];
    if (ch["delta"].contains("content")) text += ch["delta"]["content"].get<std::string>();
    if (!ch["finish_reason"].is_null()) finish = ch["finish_reason"];
  }
  EXPECT_TRUE(done);
  EXPECT_TRUE(usage);
  EXPECT_EQ(text, want.text);
  EXPECT_EQ(finish, "length");
}

TEST_F(ServeTest, ConcurrentGreedyRequestsEqualEachAlone) {
  // 8 requests on 4 slots (half of them queue), prompts of different lengths so that prompt
  // chunks and decode rows of different sequences share batches.
  std::vector<std::string> want;
  for (const char* p : kPrompts) want.push_back(expected(encode(p), 16).text);
  std::vector<std::string> got(8);
  std::vector<int> status(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      json r =
          post("/v1/completions", {{"prompt", kPrompts[i]}, {"max_tokens", 16}, {"temperature", 0}},
               &status[static_cast<size_t>(i)]);
      if (status[static_cast<size_t>(i)] == 200)
        got[static_cast<size_t>(i)] = r["choices"][0]["text"];
    });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < 8; ++i) {
    EXPECT_EQ(status[i], 200);
    EXPECT_EQ(got[i], want[i]) << kPrompts[i];
  }
}

TEST_F(ServeTest, NextChatTurnReusesTheCachedPrefix) {
  const std::vector<tokenizer::ChatMessage> first = {{"user", "Tell me about rivers and seas"}};
  json m = {{{"role", "user"}, {"content", "Tell me about rivers and seas"}}};
  json r1 = post("/v1/chat/completions", {{"messages", m}, {"max_tokens", 8}, {"temperature", 0}});
  const std::string reply = r1["choices"][0]["message"]["content"];
  m.push_back({{"role", "assistant"}, {"content", reply}});
  m.push_back({{"role", "user"}, {"content", "And lakes?"}});
  std::vector<tokenizer::ChatMessage> second = first;
  second.push_back({"assistant", reply});
  second.push_back({"user", "And lakes?"});
  const auto want = expected(encode(chat_text(second)), 8);
  json r2 = post("/v1/chat/completions", {{"messages", m}, {"max_tokens", 8}, {"temperature", 0}});
  EXPECT_EQ(r2["choices"][0]["message"]["content"], want.text);
  // The first turn's prompt is a prefix of the second's rendering.
  EXPECT_GE(r2["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>(),
            static_cast<int>(encode(chat_text(first)).size()));
}

TEST_F(ServeTest, LogprobsAreTheModelsDistribution) {
  json r = post("/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", "Hi"}}}},
                                         {"max_tokens", 4},
                                         {"temperature", 0},
                                         {"logprobs", true},
                                         {"top_logprobs", 3}});
  const json& content = r["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 4u) << r.dump();
  for (const auto& t : content) {
    ASSERT_EQ(t["top_logprobs"].size(), 3u);
    // Greedy: the chosen token is the most likely one.
    EXPECT_EQ(t["token"], t["top_logprobs"][0]["token"]);
    EXPECT_EQ(t["logprob"], t["top_logprobs"][0]["logprob"]);
    EXPECT_LE(t["logprob"].get<double>(), 0.0);
    EXPECT_GE(t["top_logprobs"][0]["logprob"].get<double>(),
              t["top_logprobs"][1]["logprob"].get<double>());
  }
}

TEST_F(ServeTest, SeededSamplingIsReproducible) {
  const json body = {{"prompt", "Once"}, {"max_tokens", 12}, {"temperature", 1.0}, {"seed", 7}};
  json a = post("/v1/completions", body);
  json b = post("/v1/completions", body);
  EXPECT_EQ(a["choices"][0]["text"], b["choices"][0]["text"]);
}

TEST_F(ServeTest, InfoEndpoints) {
  auto c = client();
  auto h = c.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  json models = json::parse(c.Get("/v1/models")->body);
  EXPECT_EQ(models["data"][0]["id"], "tiny");
  json props = json::parse(c.Get("/props")->body);
  EXPECT_EQ(props["total_slots"], 4);
  EXPECT_EQ(props["chat_template"], "bitnet");
  const std::string metrics = c.Get("/metrics")->body;
  EXPECT_NE(metrics.find("bitnet_generated_tokens_total "), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("# TYPE bitnet_queue_depth gauge"), std::string::npos);

  json t = post("/tokenize", {{"content", "Hello world"}, {"add_special", true}});
  std::vector<int32_t> ids = t["tokens"];
  EXPECT_EQ(ids, encode("Hello world"));
  json d = post("/detokenize", {{"tokens", encode("Hello world")}});
  EXPECT_EQ(d["content"], env_->tok.decode(encode("Hello world")));
  json a = post("/apply-template", {{"messages", {{{"role", "user"}, {"content", "Hi"}}}}});
  EXPECT_EQ(a["prompt"], chat_text({{"user", "Hi"}}));
}

// Every bad request: its status, an OpenAI error object, and the server still answering.
TEST_F(ServeTest, BadRequestsGetErrorsAndTheServerStaysUp) {
  struct Case {
    const char* path;
    std::string body;
    int status;
  };
  const std::string big(70 << 10, 'x');
  std::string many_words;  // more tokens than a slot's context
  for (int i = 0; i < 600; ++i) many_words += " a";
  const std::vector<Case> cases = {
      {"/v1/completions", "{not json", 400},
      {"/v1/completions", "[1,2]", 400},
      {"/v1/completions", R"({"max_tokens": 3})", 400},
      {"/v1/completions", R"({"prompt": 5})", 400},
      {"/v1/completions", R"({"prompt": "x", "max_tokens": "ten"})", 400},
      {"/v1/completions", R"({"prompt": "x", "max_tokens": 100000})", 400},
      {"/v1/completions", R"({"prompt": "x", "temperature": -1})", 400},
      {"/v1/completions", R"({"prompt": "x", "n": 2})", 400},
      {"/v1/completions", R"({"prompt": "x", "frobnicate": true})", 400},
      {"/v1/completions", R"({"prompt": [1, -5]})", 400},
      {"/v1/completions", R"({"prompt": [99999999]})", 400},
      {"/v1/completions", R"({"prompt": "x", "seed": 1.5})", 400},
      {"/v1/completions", R"({"prompt": "x", "stop": [1]})", 400},
      {"/v1/completions", R"({"prompt": "x", "max_tokens": 18446744073709551615})", 400},
      {"/v1/completions", "{\"prompt\": \"\xff\xfe\"}", 400},
      {"/v1/completions", "{\"prompt\": \"" + many_words + "\"}", 400},
      {"/v1/completions", "{\"prompt\": \"" + big + "\"}", 413},
      {"/v1/chat/completions", R"({"messages": []})", 400},
      {"/v1/chat/completions", R"({"messages": [{"role": "tool", "content": "x"}]})", 400},
      {"/v1/chat/completions", R"({"messages": [{"role": "user"}]})", 400},
      {"/v1/chat/completions",
       R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", 400},
      {"/v1/chat/completions",
       R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]})", 400},
      {"/v1/chat/completions",
       R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 50, "logprobs": true})",
       400},
      {"/v1/chat/completions", R"({"messages": "hello"})", 400},
      {"/tokenize", R"({"content": 3})", 400},
      {"/detokenize", R"({"tokens": ["a"]})", 400},
      {"/nowhere", "{}", 404},
  };
  for (const auto& c : cases) {
    auto cl = client();
    auto r = cl.Post(c.path, c.body, "application/json");
    ASSERT_TRUE(r) << c.path << " " << c.body.substr(0, 80);
    EXPECT_EQ(r->status, c.status) << c.path << " " << c.body.substr(0, 80) << " -> " << r->body;
    json e = json::parse(r->body, nullptr, false);
    ASSERT_TRUE(e.is_object()) << r->body;
    EXPECT_TRUE(e["error"]["message"].is_string()) << r->body;
  }
  auto h = client().Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
}

// 200 hostile bodies made from a valid one: every truncation point, values of the wrong type
// in every field, random bytes, deep nesting, huge numbers. Each gets 200 or a 400 with an
// error object; the server answers /health after all of them.
TEST_F(ServeTest, HostileBodiesNeverBreakTheServer) {
  const json valid = {{"messages", {{{"role", "user"}, {"content", "Hi"}}}},
                      {"max_tokens", 2},
                      {"temperature", 0.5},
                      {"top_k", 5},
                      {"stop", {"x"}},
                      {"seed", 3}};
  const std::string text = valid.dump();
  std::vector<std::string> bodies;
  for (size_t cut = 0; cut < text.size() && bodies.size() < 60; cut += 2)
    bodies.push_back(text.substr(0, cut));
  const std::vector<json> wrong = {nullptr,
                                   true,
                                   -1,
                                   1e300,
                                   "s",
                                   json::array(),
                                   json::object(),
                                   json::array({1, "a"}),
                                   18446744073709551615ull};
  for (const auto& [k, v] : valid.items()) {
    for (const auto& w : wrong) {
      json b = valid;
      b[k] = w;
      bodies.push_back(b.dump());
    }
  }
  uint64_t x = 12345;
  auto next = [&] { return x = x * 6364136223846793005ull + 1442695040888963407ull; };
  while (bodies.size() < 190) {
    std::string junk(static_cast<size_t>(next() % 200), '\0');
    for (char& c : junk) c = static_cast<char>(next() >> 56);
    bodies.push_back(junk);
  }
  bodies.push_back(std::string(5000, '[') + std::string(5000, ']'));
  bodies.push_back(R"({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1e999})");
  bodies.push_back(R"({"messages": [{"role": "user", "content": "Hi"}], "top_k": -7})");
  bodies.push_back(
      R"({"messages": [{"role": "user", "content": "Hi"}], "stream_options": {"x": 1}})");
  bodies.push_back(
      R"({"messages": [{"role": "user", "content": "\u0000\ud800"}], "max_tokens": 1})");
  bodies.push_back(R"({"messages": [{"role": "user", "content": [{"type": "text"}]}]})");
  bodies.push_back(R"({"messages": [{"role": "assistant", "content": null}], "max_tokens": 1})");
  bodies.push_back(R"({"messages": [{"role": 7, "content": "x"}]})");
  bodies.push_back(R"({"messages": [{"role": "user", "content": "x"}], "stop": ["", "", ""]})");
  bodies.push_back(R"({"messages": [{"role": "user", "content": "x"}], "n": 1, "user": "u"})");
  ASSERT_GE(bodies.size(), 200u);
  auto c = client();
  for (const auto& b : bodies) {
    auto r = c.Post("/v1/chat/completions", b, "application/json");
    ASSERT_TRUE(r) << b.substr(0, 100);
    ASSERT_TRUE(r->status == 200 || r->status == 400) << r->status << " " << b.substr(0, 100);
    json j = json::parse(r->body, nullptr, false);
    ASSERT_TRUE(j.is_object()) << r->body;
    if (r->status == 400) {
      EXPECT_TRUE(j["error"]["message"].is_string()) << r->body;
    } else {
      EXPECT_TRUE(j["choices"].is_array()) << r->body;
    }
  }
  auto h = client().Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
}

// A client that sends half a request and stalls is dropped after the read timeout (2 s here);
// meanwhile others are served.
TEST_F(ServeTest, StalledClientIsDroppedAndDoesNotBlockOthers) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(env_->port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string half =
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"prompt\":";
  ASSERT_EQ(send(fd, half.data(), half.size(), MSG_NOSIGNAL), static_cast<ssize_t>(half.size()));
  const auto t0 = std::chrono::steady_clock::now();
  json r = post("/v1/completions", {{"prompt", "Hello"}, {"max_tokens", 2}, {"temperature", 0}});
  EXPECT_TRUE(r["choices"].is_array()) << r.dump();
  // The server gives up on the stalled request: the connection ends (with or without a reply).
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof buf, 0)) > 0) {
  }
  EXPECT_EQ(n, 0) << "the stalled connection was not closed";
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(waited, 9.0);
  close(fd);
  auto h = client().Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
}

TEST_F(ServeTest, ClientLeavingMidStreamFreesItsSlot) {
  auto busy = [] {
    const std::string m = client().Get("/metrics")->body;
    const size_t at = m.find("\nbitnet_slots_busy ");
    return std::stoi(m.substr(at + 19));
  };
  {
    httplib::Client c("127.0.0.1", env_->port);
    int chunks = 0;
    const json body = {
        {"prompt", "Count"}, {"max_tokens", 400}, {"temperature", 0}, {"stream", true}};
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.body = body.dump();
    req.set_header("Content-Type", "application/json");
    req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 3; };
    auto r = c.send(req);  // the receiver returning false closes the connection
    EXPECT_GE(chunks, 3);
  }
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (busy() != 0 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(busy(), 0);
}

// Engine-level: a full queue refuses at once (HTTP 503), and is free again afterwards.
TEST(ServeEngine, FullQueueRefuses) {
  test::TempDir dir;
  synth::SynthOptions o;
  o.config = *synth::preset_config("tiny", model::Arch::kBitnet);
  o.weight_type = gguf::TensorType::TQ2_0;
  o.vocab_path = std::string(BITNET_REFERENCE_DIR) + "/models/ggml-vocab-llama-bpe.gguf";
  ASSERT_TRUE(synth::write_synthetic_model(o, dir.path("m.gguf")).ok());
  auto f = gguf::File::open(dir.path("m.gguf"));
  auto tok = tokenizer::Tokenizer::from_gguf(*f).value();
  auto m = model::Model::load(dir.path("m.gguf")).value();
  auto e =
      Engine::create(*m, tok, {.n_slots = 1, .n_ctx = 4096, .n_queue = 0, .n_threads = 1}).value();
  Request r;
  r.prompt = tok.encode("Hello", {});
  r.options.max_tokens = 3000;
  r.options.sampler.greedy = true;
  r.options.stop_at_eog = false;
  bool full = false;
  auto first = e->submit(r, &full);
  ASSERT_TRUE(first.ok());
  auto second = e->submit(r, &full);
  EXPECT_FALSE(second.ok());
  EXPECT_TRUE(full);
  (*first)->cancel();
  for (bool done = false; !done;) {
    for (auto& ev : (*first)->wait(std::chrono::seconds(5))) done = done || ev.done;
  }
  // Free again (the slot may take a step to be released).
  std::shared_ptr<Job> third;
  for (int i = 0; i < 100 && !third; ++i) {
    r.options.max_tokens = 2;
    auto t = e->submit(r, &full);
    if (t)
      third = *t;
    else
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(third);
}

}  // namespace
}  // namespace bitnet::serve
