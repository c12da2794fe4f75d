#include "reference/llama_reference.h"

#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <exception>
#include <filesystem>
#include <mutex>
#include <system_error>

#include "core/fp16.h"
#include "ggml-backend.h"
#include "ggml.h"
#include "llama.h"
#include "reference/llama_api_compat.h"

namespace bitnet::reference {

namespace {

using compat::LogLevel;

// ---------------------------------------------------------------------------------------------
// llama.cpp's log: captured (process-wide), echoed to stderr only when asked, so that failures
// can quote llama.cpp's own error lines.

class LogSink {
 public:
  static LogSink& get() {
    // Never destroyed: llama.cpp may still log while other static objects are torn down.
    static LogSink* sink = new LogSink();
    return *sink;
  }

  static void callback(ggml_log_level level, const char* text, void* user) {
    static_cast<LogSink*>(user)->add(compat::log_level(level), text != nullptr ? text : "");
  }

  void set_echo(bool echo) {
    std::lock_guard<std::mutex> lock(mu_);
    echo_ = echo;
  }

  // Sequence number of the last complete line; lines logged after it have larger numbers.
  uint64_t mark() {
    std::lock_guard<std::mutex> lock(mu_);
    return seq_;
  }

  // llama.cpp's error lines logged after `mark` (warnings if there was no error), joined into
  // one line; "" if it logged neither.
  std::string problems_since(uint64_t mark) {
    std::lock_guard<std::mutex> lock(mu_);
    flush_partial_locked();
    for (LogLevel wanted : {LogLevel::kError, LogLevel::kWarn}) {
      std::string joined;
      std::vector<std::string> seen;
      for (const Line& l : lines_) {
        if (l.seq <= mark || l.level != wanted) continue;
        if (std::find(seen.begin(), seen.end(), l.text) != seen.end()) continue;
        seen.push_back(l.text);
        if (!joined.empty()) joined += " | ";
        joined += l.text;
      }
      if (!joined.empty()) {
        if (joined.size() > kMaxMessage) joined = joined.substr(0, kMaxMessage - 3) + "...";
        return joined;
      }
    }
    return "";
  }

 private:
  struct Line {
    uint64_t seq;
    LogLevel level;
    std::string text;
  };

  void add(LogLevel level, const char* text) {
    std::lock_guard<std::mutex> lock(mu_);
    if (echo_) std::fputs(text, stderr);
    if (level == LogLevel::kCont) {
      level = partial_level_;
    } else if (!partial_.empty()) {
      flush_partial_locked();
    }
    partial_level_ = level;
    for (const char* p = text; *p != '\0'; ++p) {
      if (*p == '\n') {
        flush_partial_locked();
        partial_level_ = level;
      } else {
        partial_ += *p;
      }
    }
  }

  void flush_partial_locked() {
    // Trim trailing blanks; drop empty lines.
    while (!partial_.empty() && (partial_.back() == ' ' || partial_.back() == '\r')) {
      partial_.pop_back();
    }
    if (!partial_.empty()) {
      lines_.push_back({++seq_, partial_level_, std::move(partial_)});
      if (lines_.size() > kMaxLines) lines_.pop_front();
    }
    partial_.clear();
  }

  static constexpr size_t kMaxLines = 512;
  static constexpr size_t kMaxMessage = 1000;
  std::mutex mu_;
  std::deque<Line> lines_;
  std::string partial_;
  LogLevel partial_level_ = LogLevel::kInfo;
  uint64_t seq_ = 0;
  bool echo_ = false;
};

// " (llama.cpp: <its error lines>)" or "".
std::string llama_says(uint64_t mark) {
  const std::string p = LogSink::get().problems_since(mark);
  return p.empty() ? "" : " (llama.cpp: " + p + ")";
}

// ---------------------------------------------------------------------------------------------
// Process-wide initialisation.

struct BackendState {
  std::mutex mu;
  bool ready = false;
  BackendInfo info;
};

BackendState& backend_state() {
  static BackendState state;
  return state;
}

std::string library_of(const void* symbol) {
  Dl_info info{};
  if (dladdr(symbol, &info) == 0 || info.dli_fname == nullptr) return "(unknown)";
  return info.dli_fname;
}

Status check_settings(const ReferenceSettings& s) {
  if (s.n_threads < 1) return make_error("reference: n_threads must be >= 1 (got %d)", s.n_threads);
  if (s.n_ctx < 0) return make_error("reference: n_ctx must be >= 0 (got %d)", s.n_ctx);
  if (s.n_batch < 0) return make_error("reference: n_batch must be >= 0 (got %d)", s.n_batch);
  return {};
}

// ---------------------------------------------------------------------------------------------
// Tensor copies for the observer.

// Copies a computed tensor into dense f32 (ne0 fastest). False for types it cannot convert or
// tensors without host-readable data.
bool tensor_to_f32(const ggml_tensor* t, std::vector<int64_t>* shape, std::vector<float>* out) {
  size_t elem = 0;
  switch (t->type) {
    case GGML_TYPE_F32:
    case GGML_TYPE_I32:
      elem = 4;
      break;
    case GGML_TYPE_F16:
    case GGML_TYPE_BF16:
      elem = 2;
      break;
    default:
      return false;
  }
  const ggml_backend_buffer* buf = t->view_src != nullptr ? t->view_src->buffer : t->buffer;
  if (buf == nullptr || t->data == nullptr) return false;
  int64_t n = 1;
  for (int i = 0; i < GGML_MAX_DIMS; ++i) {
    if (t->ne[i] <= 0) return false;
    n *= t->ne[i];
  }
  // Byte span covered by the (possibly strided) tensor: what ggml_nbytes reports.
  size_t span = elem;
  for (int i = 0; i < GGML_MAX_DIMS; ++i) span += static_cast<size_t>(t->ne[i] - 1) * t->nb[i];
  std::vector<uint8_t> raw(span);
  ggml_backend_tensor_get(t, raw.data(), 0, span);

  int dims = GGML_MAX_DIMS;
  while (dims > 1 && t->ne[dims - 1] == 1) --dims;
  shape->assign(t->ne, t->ne + dims);
  out->resize(static_cast<size_t>(n));
  size_t k = 0;
  for (int64_t i3 = 0; i3 < t->ne[3]; ++i3) {
    for (int64_t i2 = 0; i2 < t->ne[2]; ++i2) {
      for (int64_t i1 = 0; i1 < t->ne[1]; ++i1) {
        const uint8_t* row = raw.data() + i1 * t->nb[1] + i2 * t->nb[2] + i3 * t->nb[3];
        for (int64_t i0 = 0; i0 < t->ne[0]; ++i0) {
          const uint8_t* p = row + i0 * t->nb[0];
          float v = 0.0f;
          if (t->type == GGML_TYPE_F32) {
            std::memcpy(&v, p, 4);
          } else if (t->type == GGML_TYPE_I32) {
            int32_t x;
            std::memcpy(&x, p, 4);
            v = static_cast<float>(x);
          } else {
            uint16_t h;
            std::memcpy(&h, p, 2);
            v = t->type == GGML_TYPE_F16 ? fp16_to_fp32(h) : bf16_to_fp32(h);
          }
          (*out)[k++] = v;
        }
      }
    }
  }
  return true;
}

int32_t argmax(const float* row, int32_t n) {
  int32_t best = 0;
  for (int32_t i = 1; i < n; ++i) {
    if (row[i] > row[best]) best = i;
  }
  return best;
}

// llama_batch with RAII.
class Batch {
 public:
  explicit Batch(int32_t capacity) : b_(llama_batch_init(capacity, 0, 1)) {}
  ~Batch() { llama_batch_free(b_); }
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;
  llama_batch& get() { return b_; }

 private:
  llama_batch b_;
};

}  // namespace

Result<BackendInfo> init_backends(const ReferenceSettings& settings) {
  BackendState& st = backend_state();
  std::lock_guard<std::mutex> lock(st.mu);
  LogSink::get().set_echo(settings.verbose);
  if (!st.ready) {
    static std::once_flag once;
    std::call_once(once, [] {
      llama_log_set(&LogSink::callback, &LogSink::get());
      llama_backend_init();
    });
    const uint64_t mark = LogSink::get().mark();
    compat::CpuBackend cpu;
    std::string err;
    if (!compat::load_cpu_backend(settings.backend_dir, settings.cpu_variant, &cpu, &err)) {
      return make_error("reference: %s%s", err.c_str(), llama_says(mark).c_str());
    }
    BackendInfo& info = st.info;
    info.llama_library = library_of(reinterpret_cast<const void*>(&llama_decode));
    info.api = compat::api_flavour();
    info.version = compat::version();
    info.backend_dir = cpu.search_dir;
    info.cpu_plugin = cpu.plugin_path;
    info.cpu_variant = cpu.variant;
    info.cpu_device = cpu.device;
    info.cpu_features = cpu.features;
    info.devices = cpu.devices;
    st.ready = true;
  }
  // Later callers cannot change what the process already loaded.
  if (!settings.cpu_variant.empty() && settings.cpu_variant != st.info.cpu_variant) {
    return make_error(
        "reference: CPU backend '%s' is already loaded in this process; "
        "cpu_variant '%s' must be chosen by the first load",
        st.info.cpu_variant.c_str(), settings.cpu_variant.c_str());
  }
  if (!settings.backend_dir.empty()) {
    std::error_code ec;
    if (!std::filesystem::equivalent(settings.backend_dir, st.info.backend_dir, ec)) {
      return make_error(
          "reference: CPU backend already loaded from '%s'; backend_dir '%s' must "
          "be chosen by the first load",
          st.info.backend_dir.c_str(), settings.backend_dir.c_str());
    }
  }
  return st.info;
}

// ---------------------------------------------------------------------------------------------

struct LlamaReference::Impl {
  std::string path;
  ReferenceSettings settings;
  BackendInfo backend;
  llama_model* model = nullptr;
  llama_context* ctx = nullptr;
  uint32_t ctx_positions = 0;  // n_ctx the current context was created with
  bool ctx_stale = false;      // re-create before the next evaluation (observer changed)
  int32_t n_vocab = 0;
  TensorWant want;
  NodeGot got;
  BatchStart on_batch;
  std::string observer_error;  // an exception thrown by the observer, reported after decode

  ~Impl() {
    if (ctx != nullptr) llama_free(ctx);
    compat::free_model(model);
  }

  static bool eval_callback(ggml_tensor* t, bool ask, void* user) {
    auto* self = static_cast<Impl*>(user);
    try {
      if (ask) return self->want && self->want(t->name);
      if (!self->got) return true;
      ObservedTensor o;
      if (tensor_to_f32(t, &o.shape, &o.data)) {
        o.name = t->name;
        o.op = ggml_op_name(t->op);
        self->got(o);
      }
      return true;
    } catch (const std::exception& e) {
      self->observer_error = e.what();
    } catch (...) {
      self->observer_error = "unknown exception";
    }
    return false;  // aborts the graph computation; decode() reports observer_error
  }

  Status ensure_context(size_t positions) {
    if (positions > static_cast<size_t>(INT32_MAX)) {
      return make_error("reference: %zu positions is more than llama.cpp can address", positions);
    }
    uint32_t n_ctx;
    if (settings.n_ctx > 0) {
      if (positions > static_cast<size_t>(settings.n_ctx)) {
        return make_error("reference: context too small: %zu positions needed, n_ctx is %d",
                          positions, settings.n_ctx);
      }
      n_ctx = static_cast<uint32_t>(settings.n_ctx);
    } else {
      // Auto-size: multiples of 256 (llama.cpp pads to that anyway), never shrinking.
      n_ctx = static_cast<uint32_t>((std::max<size_t>(positions, 1) + 255) / 256 * 256);
      n_ctx = std::max(n_ctx, ctx_positions);
    }
    if (ctx != nullptr && !ctx_stale && n_ctx <= ctx_positions) return {};
    if (ctx != nullptr) {
      llama_free(ctx);
      ctx = nullptr;
      ctx_positions = 0;
    }
    llama_context_params p = llama_context_default_params();
    p.n_ctx = n_ctx;
    p.n_batch = settings.n_batch > 0 ? static_cast<uint32_t>(settings.n_batch) : n_ctx;
    p.n_ubatch = p.n_batch;
    p.n_seq_max = 1;
    p.n_threads = settings.n_threads;
    p.n_threads_batch = settings.n_threads;
    p.type_k = settings.kv_f16 ? GGML_TYPE_F16 : GGML_TYPE_F32;
    p.type_v = settings.kv_f16 ? GGML_TYPE_F16 : GGML_TYPE_F32;
    compat::set_flash_attn(p, settings.flash_attn);
    p.cb_eval = want ? &Impl::eval_callback : nullptr;
    p.cb_eval_user_data = want ? this : nullptr;
    const uint64_t mark = LogSink::get().mark();
    ctx = compat::new_context(model, p);
    if (ctx == nullptr) {
      return make_error(
          "reference: llama.cpp could not create a context (n_ctx %u, n_batch %u) "
          "for %s%s",
          n_ctx, p.n_batch, path.c_str(), llama_says(mark).c_str());
    }
    ctx_positions = n_ctx;
    ctx_stale = false;
    return {};
  }

  Status check_tokens(const std::vector<int32_t>& tokens) const {
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (tokens[i] < 0 || tokens[i] >= n_vocab) {
        return make_error(
            "reference: token %d at position %zu is outside the vocabulary "
            "(n_vocab %d)",
            tokens[i], i, n_vocab);
      }
    }
    return {};
  }

  // eval_logits / eval_last_logits: tokens from an empty KV cache; `who` names the caller in
  // errors.
  Result<std::vector<float>> evaluate(const std::vector<int32_t>& tokens, bool last_only,
                                      const char* who) {
    if (tokens.empty()) return make_error("reference: %s needs at least one token", who);
    BITNET_TRY(check_tokens(tokens));
    BITNET_TRY(start(tokens.size()));
    std::vector<float> logits;
    logits.reserve((last_only ? 1 : tokens.size()) * static_cast<size_t>(n_vocab));
    BITNET_TRY(decode(tokens.data(), tokens.size(), 0, &logits, last_only));
    return logits;
  }

  // Decodes tokens[0..n) at positions pos0.. (continuing the KV cache), in batches of at most
  // n_batch tokens, appending the logits of every token to *logits, or with last_only those of
  // the last one (llama.cpp then skips the head for the rows not asking for logits).
  Status decode(const int32_t* tokens, size_t n, int32_t pos0, std::vector<float>* logits,
                bool last_only = false) {
    const size_t step = settings.n_batch > 0 ? static_cast<size_t>(settings.n_batch) : n;
    Batch batch(static_cast<int32_t>(std::min(step, n)));
    for (size_t start = 0; start < n; start += step) {
      const size_t count = std::min(step, n - start);
      llama_batch& b = batch.get();
      b.n_tokens = static_cast<int32_t>(count);
      for (size_t i = 0; i < count; ++i) {
        b.token[i] = tokens[start + i];
        b.pos[i] = pos0 + static_cast<int32_t>(start + i);
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = 0;
        b.logits[i] = !last_only || start + i + 1 == n ? 1 : 0;
      }
      const uint64_t mark = LogSink::get().mark();
      observer_error.clear();
      if (on_batch) on_batch(pos0 + static_cast<int32_t>(start), static_cast<int32_t>(count));
      const int32_t rc = llama_decode(ctx, b);
      if (!observer_error.empty()) {
        return make_error("reference: tensor observer failed: %s", observer_error.c_str());
      }
      if (rc != 0) {
        return make_error("reference: llama_decode failed (code %d) at positions %zu..%zu%s", rc,
                          static_cast<size_t>(pos0) + start,
                          static_cast<size_t>(pos0) + start + count - 1, llama_says(mark).c_str());
      }
      const size_t first = last_only ? count - (start + count == n ? 1 : 0) : 0;
      const size_t old = logits->size();
      logits->resize(old + (count - first) * static_cast<size_t>(n_vocab));
      for (size_t i = first; i < count; ++i) {
        const float* row = llama_get_logits_ith(ctx, static_cast<int32_t>(i));
        if (row == nullptr) {
          return make_error("reference: llama.cpp returned no logits for batch position %zu%s", i,
                            llama_says(mark).c_str());
        }
        std::memcpy(logits->data() + old + (i - first) * static_cast<size_t>(n_vocab), row,
                    static_cast<size_t>(n_vocab) * sizeof(float));
      }
    }
    return {};
  }

  // Empty KV cache and a context holding `positions`.
  Status start(size_t positions) {
    BITNET_TRY(ensure_context(positions));
    compat::clear_kv(ctx);
    return {};
  }
};

LlamaReference::LlamaReference(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LlamaReference::~LlamaReference() = default;

Result<std::unique_ptr<LlamaReference>> LlamaReference::load(const std::string& model_path,
                                                             const ReferenceSettings& settings) {
  BITNET_TRY(check_settings(settings));
  BITNET_ASSIGN_OR_RETURN(BackendInfo backend, init_backends(settings));
  std::error_code ec;
  if (!std::filesystem::is_regular_file(model_path, ec)) {
    return make_error("reference: %s: no such model file", model_path.c_str());
  }
  auto impl = std::make_unique<Impl>();
  impl->path = model_path;
  impl->settings = settings;
  impl->backend = std::move(backend);

  llama_model_params mp = llama_model_default_params();
  mp.n_gpu_layers = 0;
  const uint64_t mark = LogSink::get().mark();
  impl->model = compat::load_model(model_path, mp);
  if (impl->model == nullptr) {
    std::string why = LogSink::get().problems_since(mark);
    return make_error("reference: llama.cpp refused %s: %s", model_path.c_str(),
                      why.empty() ? "no reason logged" : why.c_str());
  }
  impl->n_vocab = compat::n_vocab(impl->model);
  if (impl->n_vocab <= 0) {
    return make_error("reference: %s: llama.cpp reports an empty vocabulary", model_path.c_str());
  }
  return std::unique_ptr<LlamaReference>(new LlamaReference(std::move(impl)));
}

Result<std::vector<int32_t>> LlamaReference::tokenize(const std::string& text, bool add_special,
                                                      bool parse_special) const {
  if (text.size() > static_cast<size_t>(INT32_MAX / 2)) {
    return make_error("reference: text of %zu bytes is too long to tokenize", text.size());
  }
  std::vector<int32_t> tokens(text.size() + 4);
  const uint64_t mark = LogSink::get().mark();
  int32_t n = compat::tokenize(impl_->model, text, tokens.data(),
                               static_cast<int32_t>(tokens.size()), add_special, parse_special);
  if (n < 0 && n != INT32_MIN) {
    tokens.resize(static_cast<size_t>(-static_cast<int64_t>(n)));
    n = compat::tokenize(impl_->model, text, tokens.data(), static_cast<int32_t>(tokens.size()),
                         add_special, parse_special);
  }
  if (n < 0) {
    return make_error("reference: llama_tokenize failed (%d)%s", n, llama_says(mark).c_str());
  }
  tokens.resize(static_cast<size_t>(n));
  return tokens;
}

Result<std::vector<float>> LlamaReference::eval_logits(const std::vector<int32_t>& tokens) {
  return impl_->evaluate(tokens, false, "eval_logits");
}

Result<std::vector<float>> LlamaReference::eval_last_logits(const std::vector<int32_t>& tokens) {
  return impl_->evaluate(tokens, true, "eval_last_logits");
}

Result<std::vector<int32_t>> LlamaReference::greedy(const std::vector<int32_t>& prompt, int n_new,
                                                    std::vector<float>* logits_out) {
  if (prompt.empty()) return make_error("reference: greedy needs a prompt of at least one token");
  if (n_new < 0) return make_error("reference: greedy: n_new must be >= 0 (got %d)", n_new);
  BITNET_TRY(impl_->check_tokens(prompt));
  const size_t evaluated = prompt.size() + static_cast<size_t>(std::max(n_new - 1, 0));
  BITNET_TRY(impl_->start(evaluated));
  const size_t nv = static_cast<size_t>(impl_->n_vocab);

  // The prompt always gets logits at every position, with or without logits_out, so the
  // generated ids never depend on whether the caller collects logits.
  std::vector<float> logits;
  logits.reserve((logits_out != nullptr ? evaluated : prompt.size()) * nv);
  BITNET_TRY(impl_->decode(prompt.data(), prompt.size(), 0, &logits));
  std::vector<int32_t> out;
  out.reserve(static_cast<size_t>(n_new));
  for (int k = 0; k < n_new; ++k) {
    const float* last = logits.data() + logits.size() - nv;
    out.push_back(argmax(last, impl_->n_vocab));
    if (k + 1 == n_new) break;
    if (logits_out == nullptr) logits.clear();
    const int32_t pos = static_cast<int32_t>(prompt.size()) + k;
    BITNET_TRY(impl_->decode(&out.back(), 1, pos, &logits));
  }
  if (logits_out != nullptr) *logits_out = std::move(logits);
  return out;
}

int LlamaReference::n_vocab() const { return impl_->n_vocab; }
const BackendInfo& LlamaReference::backend() const { return impl_->backend; }
const ReferenceSettings& LlamaReference::settings() const { return impl_->settings; }

std::string LlamaReference::description() const {
  const ReferenceSettings& s = impl_->settings;
  const BackendInfo& b = impl_->backend;
  char buf[256];
  std::snprintf(buf, sizeof(buf), "n_threads=%d n_ctx=%s n_batch=%s kv=%s flash_attn=%s",
                s.n_threads, s.n_ctx > 0 ? std::to_string(s.n_ctx).c_str() : "auto",
                s.n_batch > 0 ? std::to_string(s.n_batch).c_str() : "whole",
                s.kv_f16 ? "f16" : "f32", s.flash_attn ? "on" : "off");
  std::string d = b.version + " [" + b.api + " C API] from " + b.llama_library + "; CPU backend " +
                  b.cpu_variant;
  if (!b.cpu_plugin.empty()) d += " (" + b.cpu_plugin + ")";
  d += " on " + b.cpu_device;
  if (!b.cpu_features.empty()) d += " [" + b.cpu_features + "]";
  d += "; model " + impl_->path + " (n_vocab " + std::to_string(impl_->n_vocab) + "); " + buf;
  return d;
}

void LlamaReference::set_tensor_observer(TensorWant want, TensorGot got) {
  NodeGot node_got;
  if (got) {
    node_got = [got = std::move(got)](const ObservedTensor& t) { got(t.name, t.shape, t.data); };
  }
  set_node_observer(std::move(want), std::move(node_got));
}

void LlamaReference::set_node_observer(TensorWant want, NodeGot got) {
  const bool had = static_cast<bool>(impl_->want);
  impl_->want = std::move(want);
  impl_->got = std::move(got);
  if (had != static_cast<bool>(impl_->want)) impl_->ctx_stale = true;
}

void LlamaReference::set_batch_observer(BatchStart on_batch) {
  impl_->on_batch = std::move(on_batch);
}

}  // namespace bitnet::reference
