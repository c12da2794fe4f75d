// Flags shared by the commands that load a model and generate (run, chat): declared once here,
// added to each subcommand, and turned into a loaded model + tokenizer + context.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"
#include "generate/generator.h"
#include "generate/sampler.h"
#include "kernels/dispatch.h"
#include "model/context.h"
#include "model/observe/trace_observer.h"
#include "model/observe/verify_observer.h"
#include "model/weights.h"
#include "tokenizer/tokenizer.h"
#include "trace/writer.h"

namespace bitnet::cli {

// --head-type's help, the same on every command that loads a model for generation.
inline constexpr const char* kHeadTypeHelp =
    "LM head: auto (the default: screened where the head and kernels allow it, else file) | "
    "file (the weights as stored, sums in double: exact, bit-identical with ggml's portable "
    "path) | screened (file's exact logits where sampling looks, the argmax when greedy and the "
    "k largest with top-k, found with a Q8_0 screen of the head and a proven error bound: about "
    "half the bytes per token; every logit in full where all are needed) | fast (float sums "
    "per 64 elements as ggml's SIMD paths do: a third of the arithmetic, logits differ in the "
    "last bits) | q8_0 (quantized at load: reads half the bytes, logits change). crossval "
    "--head-type reports what fast or q8_0 cost";

struct ModelFlags {
  std::string model;
  std::string tokenizer;  // tokenizer.json or GGUF; default: the model file
  std::string pre_tokenizer;
  int threads = 0;  // 0: all cores
  int ctx = 0;      // 0: the model's
  std::string kv_type = "f16";
  std::string head_type = "auto";  // LM head precision (model::HeadType)
  std::string kernels;             // force a kernel variant (else BITNET_KERNELS)
  int verify_kernels = 0;          // check sampled rows against the scalar reference every N tokens
  bool verbose = false;

  void add_to(CLI::App* app);
};

struct SamplingFlags {
  int max_tokens = 32;
  bool greedy = false;
  float temperature = 0.8f;
  int top_k = 40;
  float top_p = 0.95f;
  float min_p = 0.05f;
  float repeat_penalty = 1.0f;
  int64_t seed = -1;  // -1: from the clock (or BITNET_SEED in deterministic mode)
  bool deterministic = false;
  std::vector<std::string> stop;
  std::string draft;  // --draft ngram[:N]

  void add_to(CLI::App* app);
  // Resolves deterministic mode (flag or BITNET_DETERMINISTIC=1) and the seed.
  Result<generate::SamplerOptions> resolve() const;
  // --draft: speculative decoding's options (max 0: off).
  Result<generate::DraftOptions> resolve_draft() const;
};

struct LoadedModel {
  std::unique_ptr<model::Model> model;
  tokenizer::Tokenizer tokenizer;
  std::unique_ptr<model::Context> context;
  // What observes the context's forward passes: --verify-kernels and a trace sink.
  std::unique_ptr<model::VerifyObserver> verify;
  std::unique_ptr<model::TraceObserver> trace;
  std::unique_ptr<model::ObserverList> observers;

  // Traces sequence 0 into `sink` (null: stops tracing), beside any kernel verification.
  void set_trace(trace::Sink* sink);
};

Result<LoadedModel> load_model(const ModelFlags& flags, bool all_logits = false);

// Layer-by-layer tracing of a run: --trace-dir (or BITNET_TRACE_DIR) and its options. Defined
// in cmd_trace.cpp with the trace-diff / trace-show commands.
struct TraceFlags {
  std::string dir;
  std::string filter;
  std::string positions;
  bool values = false;
  std::string values_format = "npy";
  bool seed_layout = false;

  void add_to(CLI::App* app);
  // The trace folder asked for: --trace-dir, else BITNET_TRACE_DIR, else "" (tracing off).
  std::string folder() const;
  // Opens the trace folder and attaches it to lm's context; null when tracing is off.
  Result<std::unique_ptr<trace::Writer>> start(LoadedModel& lm) const;
  // Detaches the trace, writes meta.json (model and its BLAKE3, the token ids at positions 0..,
  // n_prompt, first_position: the first position this trace evaluated, settings) and closes the
  // trace.
  Status finish(trace::Writer* writer, LoadedModel& lm, const ModelFlags& model_flags,
                std::span<const int32_t> evaluated_ids, int n_prompt, int first_position = 0) const;
};

// The kernel variant to run: --kernels (`flag`), else BITNET_KERNELS, else the best this CPU
// runs. An unknown name, or a variant this CPU cannot run, is an error.
Result<kernels::Kernels> kernels_from_flag_or_env(const std::string& flag);

// model::LoadOptions from what every command that loads a model shares: the kernels
// (kernels_from_flag_or_env), --head-type, and BITNET_HUGEPAGES=1 (huge pages for the packed
// weights). `all_logits`: the command needs every logit of the rows it asks for (e.g. run
// --dump-logits), so "auto" means "file" (whose full head is packed for that).
Result<model::LoadOptions> model_load_options(const std::string& kernels_flag,
                                              const std::string& head_type,
                                              bool all_logits = false);

// Whether a generating command reads every logit of its rows (so `--head-type auto` should mean
// the full exact head): a trace, --verify-kernels, or sampling that depends on all of them.
bool reads_every_logit(const ModelFlags& model, const TraceFlags& trace,
                       const generate::SamplerOptions& sampler);

// The kernel variant the loaded model runs, e.g. "avx512".
std::string kernels_name(const LoadedModel& lm);

}  // namespace bitnet::cli
