// `bitnet synth`: writes a deterministic synthetic BitNet model (see src/synth/synth.h).
#include <unistd.h>

#include <cinttypes>
#include <cstdio>

#include "cli/command.h"
#include "core/paths.h"
#include "synth/synth.h"

namespace bitnet::cli {
namespace {

struct SynthFlags {
  std::string arch;  // "": the preset's family
  std::string preset = "tiny";
  std::string weights = "i2_s";
  std::string embd = "f16";
  std::string vocab;
  std::string pre;
  std::string output;
  std::string format = "gguf";
  std::string hf_weights = "packed";
  uint64_t shard_mb = 5000;
  uint64_t seed = 1;
  uint32_t n_embd = 0, layers = 0, heads = 0, kv_heads = 0, n_ff = 0, ctx = 0;
  double rope_base = 0, eps = 0;
  bool scale_tensors = false, untied_head = false, tied_head = false, quiet = false;
};

// Progress on stderr for long writes: a self-overwriting line on a terminal, else every 10%.
class Progress {
 public:
  explicit Progress(bool quiet) : quiet_(quiet), tty_(isatty(STDERR_FILENO) == 1) {}
  void operator()(uint64_t done, uint64_t total) {
    if (quiet_ || total < (uint64_t{64} << 20)) return;
    const int pct = static_cast<int>(done * 100 / total);
    if (tty_) {
      if (pct == last_) return;
      std::fprintf(stderr, "\rsynth: %3d%% (%" PRIu64 " / %" PRIu64 " MiB)", pct, done >> 20,
                   total >> 20);
      if (done == total) std::fputc('\n', stderr);
    } else {
      if (pct / 10 == last_ / 10 && done != total) return;
      std::fprintf(stderr, "synth: %3d%% (%" PRIu64 " / %" PRIu64 " MiB)\n", pct, done >> 20,
                   total >> 20);
    }
    last_ = pct;
  }

 private:
  bool quiet_, tty_;
  int last_ = -1;
};

int run_synth(const SynthFlags& f) {
  const synth::Preset* preset = synth::find_preset(f.preset);
  if (preset == nullptr) {
    return fail("unknown preset '" + f.preset + "' (known: " + synth::preset_names() + ")");
  }
  const std::string arch_name =
      f.arch.empty() ? std::string(model::arch_name(preset->arch)) : f.arch;
  auto arch = model::arch_from_name(arch_name);
  if (!arch) {
    return fail("--arch '" + arch_name + "' is not one of " +
                std::string(model::supported_arch_names()));
  }
  auto config = synth::preset_config(f.preset, *arch);
  if (!config) return fail(config.error());
  synth::SynthOptions o;
  o.config = *config;
  auto& c = o.config;
  if (f.n_embd) c.n_embd = f.n_embd;
  if (f.layers) c.n_layers = f.layers;
  if (f.heads) c.n_heads = f.heads;
  if (f.kv_heads) c.n_kv_heads = f.kv_heads;
  if (f.n_ff) c.n_ff = f.n_ff;
  if (f.ctx) c.n_ctx_train = f.ctx;
  if (f.rope_base > 0) c.rope_freq_base = static_cast<float>(f.rope_base);
  if (f.eps > 0) c.rms_eps = static_cast<float>(f.eps);
  c.rope_dims = c.head_dim();

  auto wt = gguf::tensor_type_from_name(f.weights);
  using gguf::TensorType;
  if (!wt || (*wt != TensorType::I2_S && *wt != TensorType::TQ2_0 && *wt != TensorType::TQ1_0 &&
              *wt != TensorType::F16 && *wt != TensorType::F32)) {
    return fail("--weights '" + f.weights + "' is not one of i2_s, tq2_0, tq1_0, f16, f32");
  }
  auto et = gguf::tensor_type_from_name(f.embd);
  if (!et || (*et != TensorType::F16 && *et != TensorType::F32)) {
    return fail("--embd '" + f.embd + "' is not one of f16, f32");
  }
  o.weight_type = *wt;
  o.embd_type = *et;
  // The preset's vocabulary (and the pre-tokenizer name that goes with it) unless --vocab says
  // otherwise; either way the token list is padded up to the preset's published n_vocab.
  o.vocab_path = f.vocab.empty() ? reference_vocab_path(std::string(preset->vocab_file),
                                                        env_var("BITNET_REFERENCE_DIR"))
                                 : f.vocab;
  o.pad_vocab_to = preset->n_vocab;
  // The official bitnet-b1.58 file has no tokenizer.ggml.pre; mirror it unless asked otherwise.
  const bool b158 = *arch == model::Arch::kBitnetB158 || *arch == model::Arch::kBitnet25;
  o.pre_tokenizer = !f.pre.empty()    ? f.pre
                    : b158            ? "none"
                    : f.vocab.empty() ? std::string(preset->pre)
                                      : "";
  o.seed = f.seed;
  o.scale_tensors = f.scale_tensors;
  if (f.untied_head && f.tied_head) return fail("--untied-head and --tied-head exclude each other");
  if (f.untied_head || f.tied_head) {
    o.untied_head = f.untied_head;
  } else {
    o.untied_head = preset->untied_head;  // the published model's; unset: the family's default
  }
  o.name = "synthetic-" + f.preset;
  Progress progress(f.quiet);
  o.progress = [&](uint64_t done, uint64_t total) { progress(done, total); };

  if (f.format == "hf") {
    if (f.hf_weights != "packed" && f.hf_weights != "masters") {
      return fail("--hf-weights '" + f.hf_weights + "' is not one of packed, masters");
    }
    if (f.shard_mb == 0) return fail("--shard-size must be positive");
    auto wrote =
        synth::write_synthetic_hf(o, f.hf_weights == "packed", f.output, f.shard_mb * 1'000'000);
    if (!wrote) return fail(wrote.error());
    if (!f.quiet) {
      std::fprintf(stderr,
                   "synth: wrote Hugging Face checkpoint %s (%s, %s weights, d=%u, %u layers, "
                   "seed %" PRIu64 ")%s\n",
                   f.output.c_str(), arch_name.c_str(), f.hf_weights.c_str(), c.n_embd, c.n_layers,
                   f.seed,
                   *wrote ? ""
                          : "; no tokenizer.json (SentencePiece vocabularies are not written: "
                            "convert it with --vocab)");
    }
    return kExitOk;
  }
  if (f.format != "gguf") return fail("--format '" + f.format + "' is not one of gguf, hf");
  auto st = synth::write_synthetic_model(o, f.output);
  if (!st) {
    std::remove(f.output.c_str());  // never leave a half-written model behind
    return fail(st.error());
  }
  if (!f.quiet) {
    std::fprintf(stderr, "synth: wrote %s (%s, %s weights, d=%u, %u layers, seed %" PRIu64 ")\n",
                 f.output.c_str(), arch_name.c_str(), f.weights.c_str(), c.n_embd, c.n_layers,
                 f.seed);
  }
  return kExitOk;
}

}  // namespace

std::vector<Command> register_synth(CLI::App& app) {
  auto* sub = app.add_subcommand("synth", "Write a deterministic synthetic BitNet model");
  auto f = std::make_shared<SynthFlags>();
  sub->add_option("-o,--output", f->output, "Output GGUF file (--format hf: folder)")->required();
  sub->add_option("--format", f->format,
                  "gguf | hf: a Hugging Face checkpoint folder (config.json, model.safetensors, "
                  "tokenizer.json) that `bitnet convert` turns into the same GGUF")
      ->capture_default_str();
  sub->add_option("--hf-weights", f->hf_weights,
                  "--format hf: packed (uint8 codes + weight_scale, as 2B4T, Falcon3) | masters "
                  "(bf16 / fp16 weights that absmean ternarizes, as 2B4T-bf16, 1bitLLM)")
      ->capture_default_str();
  sub->add_option("--shard-size", f->shard_mb,
                  "--format hf: at most this many MB of tensors per safetensors file (more files "
                  "come with model.safetensors.index.json)")
      ->capture_default_str();
  sub->add_option("--arch", f->arch,
                  "bitnet (SiLU, llama.cpp) | bitnet-b1.58 (ReLU^2, 2B4T) | bitnet-25 | llama "
                  "(no sub-norms, NORM RoPE, output.weight head) (default: the preset's family)");
  sub->add_option("--preset", f->preset,
                  "tiny (d=256, 2 blocks) or a published model's shape: " + synth::preset_names())
      ->capture_default_str();
  sub->add_option("--weights", f->weights, "Projection format: i2_s | tq2_0 | tq1_0 | f16 | f32")
      ->capture_default_str();
  sub->add_option("--embd", f->embd, "token_embd format: f16 | f32")->capture_default_str();
  sub->add_option("--vocab", f->vocab,
                  "GGUF whose tokenizer.* keys are copied (default: the "
                  "reference's ggml-vocab-llama-bpe.gguf, in BITNET_REFERENCE_DIR if set)");
  sub->add_option("--pre", f->pre,
                  "tokenizer.ggml.pre to write, or 'none' (default: keep the "
                  "vocabulary's for bitnet and llama, none for bitnet-b1.58 as in 2B4T)");
  sub->add_option("--seed", f->seed, "Seed of the weights")->capture_default_str();
  sub->add_option("--n-embd", f->n_embd, "Override d (embedding length)");
  sub->add_option("--layers", f->layers, "Override the number of blocks");
  sub->add_option("--heads", f->heads, "Override the number of attention heads");
  sub->add_option("--kv-heads", f->kv_heads, "Override the number of KV heads");
  sub->add_option("--n-ff", f->n_ff, "Override the FFN width f");
  sub->add_option("--ctx", f->ctx, "Override the context length");
  sub->add_option("--rope-base", f->rope_base, "Override the RoPE frequency base");
  sub->add_option("--eps", f->eps, "Override the RMSNorm epsilon");
  sub->add_flag("--scale-tensors", f->scale_tensors,
                "Write blk.N.<proj>.scale tensors (bitnet arch)");
  sub->add_flag("--untied-head", f->untied_head,
                "Write output.weight besides token_embd (the default for llama)");
  sub->add_flag("--tied-head", f->tied_head, "Write no output.weight (the default for BitNet)");
  sub->add_flag("-q,--quiet", f->quiet, "No progress or summary on stderr");
  return {Command{sub, [f] { return run_synth(*f); }}};
}

}  // namespace bitnet::cli
