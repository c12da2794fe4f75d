#include "cli/model_flags.h"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <thread>

#include "cli/command.h"
#include "kernels/dispatch.h"

namespace bitnet::cli {

void ModelFlags::add_to(CLI::App* app) {
  app->add_option("-m,--model", model, "GGUF model file")->required();
  app->add_option("--tokenizer", tokenizer,
                  "Tokenizer: a Hugging Face tokenizer.json or a GGUF (default: the model)");
  app->add_option("--pre-tokenizer", pre_tokenizer,
                  "Force a byte-level BPE pre-tokenizer (e.g. default, llama-bpe)");
  app->add_option("-t,--threads", threads, "Threads (default: all cores)");
  app->add_option("-c,--ctx", ctx, "Context length (default: the model's)");
  app->add_option("--kv-type", kv_type, "KV cache type: f16 | f32")->capture_default_str();
  app->add_option("--head-type", head_type, kHeadTypeHelp)->capture_default_str();
  app->add_option("--kernels", kernels,
                  "Force a kernel variant: " + kernels::variant_names() + " (also BITNET_KERNELS)");
  app->add_option(
      "--verify-kernels", verify_kernels,
      "Every N tokens, recompute samples of every SIMD kernel's output (product rows, "
      "quantization, RMSNorm, SwiGLU, KV conversion, attention with its softmax) with the scalar "
      "references and stop on any difference (0: off)");
  app->add_flag("-v,--verbose", verbose, "Report the tokenizer, kernels and settings on stderr");
}

void SamplingFlags::add_to(CLI::App* app) {
  app->add_option("-n,--max-tokens", max_tokens, "Tokens to generate at most")
      ->capture_default_str();
  app->add_flag("--greedy", greedy, "Always take the most likely token");
  app->add_option("--temperature", temperature, "Sampling temperature (0: greedy)")
      ->capture_default_str();
  app->add_option("--top-k", top_k, "Keep the k most likely tokens (0: off)")
      ->capture_default_str();
  app->add_option("--top-p", top_p, "Nucleus sampling threshold (1: off)")->capture_default_str();
  app->add_option("--min-p", min_p, "Drop tokens below min-p x the top probability (0: off)")
      ->capture_default_str();
  app->add_option("--repeat-penalty", repeat_penalty, "Penalty for recent tokens (1: off)")
      ->capture_default_str();
  app->add_option("--seed", seed, "Sampling seed (default: from the clock)");
  app->add_flag(
      "--deterministic", deterministic,
      "Fixed seed (BITNET_SEED, default 42) and reproducible results; also BITNET_DETERMINISTIC=1");
  app->add_option("--stop", stop, "Stop when this text is generated (repeatable)");
  app->add_option("--draft", draft,
                  "Speculative decoding: ngram[:N] proposes up to N tokens (default 8) per step "
                  "by looking the last tokens up earlier in the text; same greedy output, same "
                  "sampling distribution, faster where text repeats");
}

Result<generate::DraftOptions> SamplingFlags::resolve_draft() const {
  generate::DraftOptions d;
  if (draft.empty()) return d;
  constexpr std::string_view kNgram = "ngram";
  if (draft.rfind(kNgram, 0) != 0 ||
      (draft.size() > kNgram.size() && draft[kNgram.size()] != ':')) {
    return make_error("--draft '%s' is not ngram or ngram:N", draft.c_str());
  }
  d.max = 8;
  if (draft.size() > kNgram.size()) {
    const std::string n = draft.substr(kNgram.size() + 1);
    char* end = nullptr;
    const long v = std::strtol(n.c_str(), &end, 10);
    if (n.empty() || *end != '\0' || v < 1 || v > 64)
      return make_error("--draft ngram:N needs N in 1..64, not '%s'", n.c_str());
    d.max = static_cast<int>(v);
  }
  return d;
}

Result<generate::SamplerOptions> SamplingFlags::resolve() const {
  // NaN passes every range comparison below, and infinities make no sense for any of these.
  const std::pair<const char*, float> reals[] = {{"--temperature", temperature},
                                                 {"--top-p", top_p},
                                                 {"--min-p", min_p},
                                                 {"--repeat-penalty", repeat_penalty}};
  for (const auto& [name, v] : reals)
    if (!std::isfinite(v)) return make_error("%s must be a finite number", name);
  if (max_tokens < 0) return make_error("--max-tokens must not be negative");
  if (top_p <= 0 || top_p > 1) return make_error("--top-p must be in (0, 1]");
  if (min_p < 0 || min_p >= 1) return make_error("--min-p must be in [0, 1)");
  if (repeat_penalty <= 0) return make_error("--repeat-penalty must be positive");
  generate::SamplerOptions o;
  o.greedy = greedy;
  o.temperature = temperature;
  o.top_k = top_k;
  o.top_p = top_p;
  o.min_p = min_p;
  o.repeat_penalty = repeat_penalty;
  const char* det_env = std::getenv("BITNET_DETERMINISTIC");
  const bool det = deterministic || (det_env != nullptr && std::string(det_env) == "1");
  if (seed >= 0) {
    o.seed = static_cast<uint64_t>(seed);
  } else if (det) {
    o.seed = 42;
    if (const char* s = std::getenv("BITNET_SEED"); s != nullptr && s[0] != '\0') {
      char* end = nullptr;
      const unsigned long long v = std::strtoull(s, &end, 10);
      if (end == s || *end != '\0') return make_error("BITNET_SEED='%s' is not a number", s);
      o.seed = v;
    }
  } else {
    o.seed = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }
  return o;
}

Result<kernels::Kernels> kernels_from_flag_or_env(const std::string& flag) {
  if (!flag.empty()) return kernels::Kernels::named(flag);
  const std::string env = env_var("BITNET_KERNELS");
  if (env.empty()) return kernels::Kernels::best();
  auto k = kernels::Kernels::named(env);
  if (!k.ok()) return make_error("BITNET_KERNELS: %s", k.message().c_str());
  return k;
}

void LoadedModel::set_trace(trace::Sink* sink) {
  trace = sink != nullptr ? std::make_unique<model::TraceObserver>(sink) : nullptr;
  observers = std::make_unique<model::ObserverList>();
  observers->add(verify.get());
  observers->add(trace.get());
  context->set_observer(observers->get());
}

Result<model::LoadOptions> model_load_options(const std::string& kernels_flag,
                                              const std::string& head_type, bool all_logits) {
  model::LoadOptions o;
  BITNET_ASSIGN_OR_RETURN(o.kernels, kernels_from_flag_or_env(kernels_flag));
  BITNET_ASSIGN_OR_RETURN(o.head, model::head_type_from_name(head_type));
  if (o.head == model::HeadType::kAuto && all_logits) o.head = model::HeadType::kFile;
  o.hugepages = env_var("BITNET_HUGEPAGES") == "1";
  return o;
}

bool reads_every_logit(const ModelFlags& model, const TraceFlags& trace,
                       const generate::SamplerOptions& sampler) {
  return !trace.folder().empty() || model.verify_kernels > 0 ||
         generate::Sampler(sampler).logits_needed() == 0;
}

std::string kernels_name(const LoadedModel& lm) { return std::string(lm.model->kernels().name()); }

Result<LoadedModel> load_model(const ModelFlags& f, bool all_logits) {
  BITNET_ASSIGN_OR_RETURN(model::LoadOptions load_options,
                          model_load_options(f.kernels, f.head_type, all_logits));
  if (f.kv_type != "f16" && f.kv_type != "f32") {
    return make_error("--kv-type '%s' is not one of f16, f32", f.kv_type.c_str());
  }
  if (f.threads < 0 || f.ctx < 0) return make_error("--threads and --ctx must not be negative");
  if (f.verify_kernels < 0) return make_error("--verify-kernels must not be negative");
  LoadedModel lm;
  // The tokenizer first, from the file's metadata; the model then keeps no copy of the
  // vocabulary and merges (tens of MB of strings that only the tokenizer reads).
  tokenizer::LoadOptions lo;
  if (!f.pre_tokenizer.empty()) lo.pre_tokenizer = f.pre_tokenizer;
  if (f.tokenizer.empty()) {
    BITNET_ASSIGN_OR_RETURN(gguf::File meta, gguf::File::open(f.model));
    BITNET_ASSIGN_OR_RETURN(lm.tokenizer, tokenizer::Tokenizer::from_gguf(meta, lo));
  } else {
    BITNET_ASSIGN_OR_RETURN(lm.tokenizer, tokenizer::Tokenizer::load(f.tokenizer, lo));
  }
  load_options.keep_metadata_arrays = false;
  BITNET_ASSIGN_OR_RETURN(lm.model, model::Model::load(f.model, load_options));
  if (lm.tokenizer.n_tokens() > lm.model->config().n_vocab) {
    return make_error("the tokenizer has %zu tokens but the model only %u", lm.tokenizer.n_tokens(),
                      lm.model->config().n_vocab);
  }
  model::ContextOptions co;
  co.n_ctx = f.ctx;
  co.kv_f16 = f.kv_type == "f16";
  co.n_threads = f.threads > 0
                     ? f.threads
                     : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  BITNET_ASSIGN_OR_RETURN(lm.context, model::Context::create(*lm.model, co));
  if (f.verify_kernels > 0) {
    if constexpr (!model::kObserverCompiled) {
      return make_error(
          "--verify-kernels: the forward pass's observer hooks are compiled out of "
          "this build (configure with -DBITNET_TRACE=ON)");
    }
    lm.verify = std::make_unique<model::VerifyObserver>(f.verify_kernels, lm.model->kernels());
  }
  lm.set_trace(nullptr);
  return lm;
}

}  // namespace bitnet::cli
