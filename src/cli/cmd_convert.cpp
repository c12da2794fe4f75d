// `bitnet convert HF_DIR -o OUT.gguf`: a Hugging Face BitNet checkpoint to GGUF
// (src/convert/hf_convert.h).
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "cli/command.h"
#include "convert/hf_convert.h"

namespace bitnet::cli {
namespace {

struct ConvertFlags {
  std::string dir, out, type = "i2_s", embd = "f16", pre, vocab, name;
};

int convert(const ConvertFlags& f) {
  convert::ConvertOptions o;
  auto t = gguf::tensor_type_from_name(f.type);
  if (!t) return fail("--type '" + f.type + "' is not one of i2_s, tq2_0, tq1_0, f16, f32");
  o.type = *t;
  auto e = gguf::tensor_type_from_name(f.embd);
  if (!e) return fail("--embd '" + f.embd + "' is not one of f16, f32");
  o.embd = *e;
  if (!f.pre.empty()) o.pre = f.pre;
  o.vocab_gguf = f.vocab;
  o.name = f.name;
  const auto t0 = std::chrono::steady_clock::now();
  if (isatty(STDERR_FILENO) == 1) {  // quiet when piped
    o.on_progress = [t0](size_t done, size_t total, uint64_t bytes, uint64_t all) {
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double eta = bytes > 0 ? secs * static_cast<double>(all - bytes) / bytes : 0.0;
      std::fprintf(stderr, "\rconvert: %zu/%zu tensors, %.1f / %.1f MB, ETA %.0f s   ", done, total,
                   static_cast<double>(bytes) / 1e6, static_cast<double>(all) / 1e6, eta);
      if (done == total) std::fputc('\n', stderr);
    };
  }
  auto r = convert::convert_hf(f.dir, f.out, o);
  if (!r) {
    std::remove(f.out.c_str());  // never leave a half-written model behind
    return fail(r.error());
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::fprintf(stderr,
               "convert: wrote %s: %s, %d tensors, %d projections as %s (%s) in %.1f s, peak "
               "RSS %.2f GB\n",
               f.out.c_str(), r->arch.c_str(), r->tensors, r->projections, f.type.c_str(),
               r->packed ? "from packed weights" : "absmean-ternarized from the masters", secs,
               static_cast<double>(ru.ru_maxrss) * 1024.0 / 1e9);
  return kExitOk;
}

}  // namespace

std::vector<Command> register_convert(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "convert",
      "Convert a Hugging Face BitNet checkpoint folder (BitNetForCausalLM, ternary "
      "LlamaForCausalLM, 1bitLLM BitnetForCausalLM) to GGUF");
  auto f = std::make_shared<ConvertFlags>();
  sub->add_option("dir", f->dir, "Checkpoint folder (config.json, *.safetensors, tokenizer.json)")
      ->required();
  sub->add_option("-o,--output", f->out, "Output GGUF")->required();
  sub->add_option("--type", f->type, "Projections: i2_s | tq2_0 | tq1_0 | f16 | f32")
      ->capture_default_str();
  sub->add_option("--embd", f->embd, "token_embd and output: f16 | f32")->capture_default_str();
  sub->add_option("--pre", f->pre,
                  "tokenizer.ggml.pre to write (default: the name of the tokenizer.json regex; "
                  "none for BitNetForCausalLM, as in the official 2B4T file)");
  sub->add_option("--vocab", f->vocab, "Take the tokenizer.* keys from this GGUF instead");
  sub->add_option("--name", f->name, "general.name (default: config.json _name_or_path)");
  return {Command{sub, [f] { return convert(*f); }}};
}

}  // namespace bitnet::cli
