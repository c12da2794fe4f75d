// `bitnet run`: generate text from a prompt, print it (streaming), then a one-line summary.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/model_flags.h"
#include "core/npy.h"
#include "generate/generator.h"

namespace bitnet::cli {
namespace {

struct RunFlags {
  ModelFlags model;
  SamplingFlags sampling;
  std::string prompt;
  bool no_bos = false;
  bool special = false;
  bool json = false;
  std::string dump_logits;
  TraceFlags trace;
};

int run(const RunFlags& f) {
  auto sampler = f.sampling.resolve();
  if (!sampler) return fail(sampler.error());
  auto draft = f.sampling.resolve_draft();
  if (!draft) return fail(draft.error());
  // A logits dump reads every logit too.
  auto lm =
      load_model(f.model, !f.dump_logits.empty() || reads_every_logit(f.model, f.trace, *sampler));
  if (!lm) return fail(lm.error());
  if (f.model.verbose) {
    std::fprintf(stderr, "tokenizer: %s\nkernels: %s, threads %d, kv %s, context %d, head %s\n",
                 lm->tokenizer.describe().c_str(), kernels_name(*lm).c_str(),
                 lm->context->n_threads(), f.model.kv_type.c_str(), lm->context->n_ctx(),
                 std::string(model::head_type_name(lm->model->head_type())).c_str());
  }
  const std::vector<int32_t> prompt =
      lm->tokenizer.encode(f.prompt, {.add_special = !f.no_bos, .parse_special = f.special});
  if (prompt.empty()) return fail("the prompt gives no tokens (empty prompt with --no-bos?)");
  if (static_cast<int>(prompt.size()) > lm->context->n_ctx()) {
    return fail("the prompt has " + std::to_string(prompt.size()) +
                " tokens, more than the context length " + std::to_string(lm->context->n_ctx()) +
                " (see --ctx)");
  }
  generate::GenerateOptions go;
  go.max_tokens = f.sampling.max_tokens;
  go.sampler = *sampler;
  go.stop = f.sampling.stop;
  go.draft = *draft;
  go.collect_logits = !f.dump_logits.empty();
  auto tracer = f.trace.start(*lm);
  if (!tracer) return fail(tracer.error());
  if (!f.json) {
    go.on_text = [](std::string_view s) {
      std::fwrite(s.data(), 1, s.size(), stdout);
      std::fflush(stdout);
    };
  }
  auto r = generate::generate(*lm->context, lm->tokenizer, prompt, go);
  if (!r) return fail(r.error());
  if (*tracer) {
    // Evaluated ids: the prompt, then every generated id but the last (never fed back).
    std::vector<int32_t> ids = prompt;
    ids.insert(ids.end(), r->generated.begin(), r->generated.begin() + r->timings.n_decode);
    auto st = f.trace.finish(tracer->get(), *lm, f.model, ids, static_cast<int>(prompt.size()));
    if (!st) return fail(st.error());
  }
  if (!f.dump_logits.empty()) {
    const int64_t shape[2] = {r->logits_rows, static_cast<int64_t>(lm->model->config().n_vocab)};
    auto st = write_npy_f32(f.dump_logits, r->logits, shape);
    if (!st) return fail(st.error());
  }
  const auto& t = r->timings;
  if (f.json) {
    nlohmann::ordered_json j;
    j["prompt"] = f.prompt;
    j["prompt_ids"] = prompt;
    j["generated_ids"] = r->generated;
    j["text"] = r->text;
    j["stop_reason"] = r->stop_reason;
    j["timings"] = {{"prompt_tokens", t.n_prompt},      {"prompt_ms", t.prompt_ms},
                    {"prompt_tok_s", t.prompt_tok_s()}, {"decode_tokens", t.n_decode},
                    {"decode_ms", t.decode_ms},         {"decode_tok_s", t.decode_tok_s()},
                    {"decode_steps", t.n_steps}};
    if (draft->max > 0)
      j["draft"] = {{"max", draft->max}, {"drafted", t.n_drafted}, {"accepted", t.n_accepted}};
    j["kernels"] = kernels_name(*lm);
    j["threads"] = lm->context->n_threads();
    j["model"] = f.model.model;
    j["weight_type"] = gguf::tensor_type_name(lm->model->weight_type());
    j["tokenizer"] = lm->tokenizer.describe();
    j["seed"] = sampler->seed;
    j["greedy"] = sampler->greedy || sampler->temperature <= 0;
    std::puts(j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace).c_str());
  } else {
    std::printf("\n");
    std::fflush(stdout);  // the text's newline before the summary on stderr
    std::fprintf(stderr,
                 "prompt: %d tokens, %.1f tok/s | decode: %zu tokens, %.1f tok/s | stop: %s | "
                 "kernels: %s, %d threads\n",
                 t.n_prompt, t.prompt_tok_s(), r->generated.size(), t.decode_tok_s(),
                 r->stop_reason.c_str(), kernels_name(*lm).c_str(), lm->context->n_threads());
    if (draft->max > 0) {
      std::fprintf(
          stderr, "draft ngram:%d: %d proposed, %d accepted (%.0f%%), %d tokens in %d steps\n",
          draft->max, t.n_drafted, t.n_accepted,
          t.n_drafted > 0 ? 100.0 * t.n_accepted / t.n_drafted : 0.0, t.n_decode, t.n_steps);
    }
  }
  return kExitOk;
}

}  // namespace

std::vector<Command> register_run(CLI::App& app) {
  auto* sub = app.add_subcommand("run", "Generate text from a prompt");
  auto f = std::make_shared<RunFlags>();
  f->model.add_to(sub);
  f->sampling.add_to(sub);
  sub->add_option("-p,--prompt", f->prompt, "Prompt text")->required();
  sub->add_flag("--no-bos", f->no_bos, "Do not add the BOS token");
  sub->add_flag("--special", f->special,
                "Parse special-token text (e.g. <|eot_id|>) in the prompt");
  sub->add_flag("--json", f->json, "Print one JSON object instead of streaming text");
  sub->add_option(
      "--dump-logits", f->dump_logits,
      "Write the logits of every evaluated position to a NumPy .npy file [rows, n_vocab]");
  f->trace.add_to(sub);
  return {Command{sub, [f] { return run(*f); }}};
}

}  // namespace bitnet::cli
