// `bitnet chat`: an interactive REPL. Each turn re-renders the conversation with the chat
// template and evaluates only the tokens past what the KV cache already holds.
//
// Tracing (--trace-dir DIR): a turn may re-evaluate positions an earlier turn already traced
// (the cache is cut back to the prefix the new rendering shares with it), so every turn gets its
// own trace folder, DIR/turn-001, DIR/turn-002, ...: the positions that turn evaluated, with
// meta.json's first_position saying where they start and token_ids holding the whole sequence
// from position 0.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "cli/command.h"
#include "cli/model_flags.h"
#include "generate/generator.h"
#include "tokenizer/chat_template.h"

namespace bitnet::cli {
namespace {

struct ChatFlags {
  ModelFlags model;
  SamplingFlags sampling;
  TraceFlags trace;
  std::string system;
  std::string chat_template;
};

int chat(ChatFlags f) {
  auto sampler = f.sampling.resolve();
  if (!sampler) return fail(sampler.error());
  auto draft = f.sampling.resolve_draft();
  if (!draft) return fail(draft.error());
  auto lm = load_model(f.model, reads_every_logit(f.model, f.trace, *sampler));
  if (!lm) return fail(lm.error());
  tokenizer::ChatTemplate tmpl;
  if (!f.chat_template.empty()) {
    auto t = tokenizer::chat_template_from_name(f.chat_template);
    if (!t) return fail(t.error());
    tmpl = *t;
  } else {
    const gguf::Value* v = lm->model->file().find("tokenizer.chat_template");
    tmpl = tokenizer::detect_chat_template(v && v->as_string() ? *v->as_string() : "");
  }
  // Tracing: the base folder of the per-turn traces (--trace-dir, else BITNET_TRACE_DIR).
  std::string trace_base = f.trace.folder();
  if (trace_base.empty() || !trace::kTraceCompiled) {
    // No per-turn folders. start() still checks the options: trace options without a folder,
    // or --trace-dir in a build without tracing, are errors (BITNET_TRACE_DIR only warns).
    auto none = f.trace.start(*lm);
    if (!none) return fail(none.error());
    trace_base.clear();
  }
  int turn = 0;
  const bool tty = isatty(STDIN_FILENO) == 1;
  std::fprintf(stderr,
               "bitnet chat: %s, template %s, kernels %s. /reset clears, /exit or EOF quits.\n",
               f.model.model.c_str(), std::string(tokenizer::chat_template_name(tmpl)).c_str(),
               kernels_name(*lm).c_str());

  std::vector<tokenizer::ChatMessage> messages;
  if (!f.system.empty()) messages.push_back({"system", f.system});
  std::vector<int32_t> cached;  // tokens whose K/V are in the context, in order
  std::string line;
  for (;;) {
    if (tty) {
      std::fputs("> ", stdout);
      std::fflush(stdout);
    }
    if (!std::getline(std::cin, line)) break;
    if (line == "/exit" || line == "/quit") break;
    if (line == "/reset") {
      messages.resize(f.system.empty() ? 0 : 1);
      cached.clear();
      lm->context->kv_cache().clear();
      continue;
    }
    if (line.empty()) continue;
    messages.push_back({"user", line});
    auto text = tokenizer::apply_chat_template(tmpl, messages, true);
    if (!text) return fail(text.error());
    std::vector<int32_t> ids =
        lm->tokenizer.encode(*text, {.add_special = true, .parse_special = true});
    // Reuse the cached prefix; at least one token must be evaluated for fresh logits.
    size_t common = 0;
    while (common < cached.size() && common < ids.size() && cached[common] == ids[common]) ++common;
    if (common == ids.size()) --common;
    if (static_cast<int>(ids.size()) + f.sampling.max_tokens > lm->context->n_ctx()) {
      return fail("the conversation no longer fits the context (" +
                  std::to_string(lm->context->n_ctx()) + " tokens); /reset or raise --ctx");
    }
    // The cache keeps the shared prefix; the rest of the previous turn goes.
    if (auto st = lm->context->kv_cache().remove(0, static_cast<int>(common)); !st)
      return fail(st.error());
    ++turn;
    std::unique_ptr<trace::Writer> tracer;
    if (!trace_base.empty()) {
      TraceFlags t = f.trace;
      char name[32];
      std::snprintf(name, sizeof name, "/turn-%03d", turn);
      t.dir = trace_base + name;
      auto w = t.start(*lm);
      if (!w) return fail(w.error());
      tracer = std::move(*w);
    }
    generate::GenerateOptions go;
    go.max_tokens = f.sampling.max_tokens;
    go.sampler = *sampler;
    go.stop = f.sampling.stop;
    go.draft = *draft;
    go.on_text = [](std::string_view s) {
      std::fwrite(s.data(), 1, s.size(), stdout);
      std::fflush(stdout);
    };
    auto r = generate::generate(*lm->context, lm->tokenizer, std::span(ids).subspan(common), go);
    if (!r) return fail(r.error());
    std::fputc('\n', stdout);
    cached = ids;
    // Every generated token but the last was evaluated and sits in the cache.
    if (!r->generated.empty())
      cached.insert(cached.end(), r->generated.begin(), r->generated.end() - 1);
    if (tracer) {
      auto st = f.trace.finish(tracer.get(), *lm, f.model, cached, static_cast<int>(ids.size()),
                               static_cast<int>(common));
      if (!st) return fail(st.error());
    }
    messages.push_back({"assistant", r->text});
    if (f.model.verbose) {
      std::fprintf(stderr,
                   "[%d prompt tokens (%zu reused), %zu generated, %.1f tok/s decode, stop: %s]\n",
                   r->timings.n_prompt, common, r->generated.size(), r->timings.decode_tok_s(),
                   r->stop_reason.c_str());
    }
  }
  return kExitOk;
}

}  // namespace

std::vector<Command> register_chat(CLI::App& app) {
  auto* sub = app.add_subcommand("chat", "Interactive chat with the model's chat template");
  auto f = std::make_shared<ChatFlags>();
  f->model.add_to(sub);
  f->sampling.max_tokens = 256;  // chat replies run longer than run's default
  f->sampling.add_to(sub);
  f->trace.add_to(sub);
  sub->add_option("--system", f->system, "System prompt");
  sub->add_option(
      "--chat-template", f->chat_template,
      "Template: " + tokenizer::chat_template_names() + " (default: from the model, else bitnet)");
  return {Command{sub, [f] { return chat(*f); }}};
}

}  // namespace bitnet::cli
