// `bitnet quantize IN.gguf OUT.gguf TYPE`: the BitLinear projections to another weight type
// (src/convert/quantize.h says what is lossless and what is refused).
#include <unistd.h>

#include <cstdio>

#include "cli/command.h"
#include "convert/quantize.h"

namespace bitnet::cli {
namespace {

struct QuantizeFlags {
  std::string in, out, type;
  std::string ternarize;
  std::string scale_rounding;
};

int quantize(const QuantizeFlags& f) {
  convert::QuantizeOptions o;
  auto t = gguf::tensor_type_from_name(f.type);
  if (!t) return fail("unknown type '" + f.type + "' (I2_S, TQ2_0, TQ1_0, F16, F32)");
  o.type = *t;
  if (!f.ternarize.empty() && f.ternarize != "absmean")
    return fail("--ternarize: the only method is absmean");
  o.ternarize_absmean = f.ternarize == "absmean";
  if (!f.scale_rounding.empty() && f.scale_rounding != "fp16")
    return fail("--scale-rounding: the only choice is fp16");
  o.round_scale_fp16 = f.scale_rounding == "fp16";
  if (isatty(STDERR_FILENO) == 1) {
    o.on_progress = [](size_t done, size_t total, uint64_t bytes) {
      std::fprintf(stderr, "\rquantize: %zu/%zu tensors, %.1f MB written", done, total,
                   static_cast<double>(bytes) / 1e6);
      if (done == total) std::fputc('\n', stderr);
    };
  }
  auto r = convert::quantize_file(f.in, f.out, o);
  if (!r) return fail(r.error());
  std::fprintf(stderr,
               "quantize: wrote %s: %d projections to %s (%d absmean-ternarized), %d already %s, "
               "%d other tensors copied",
               f.out.c_str(), r->converted, f.type.c_str(), r->ternarized, r->unchanged,
               f.type.c_str(), r->copied);
  if (r->max_scale_rounding > 0)
    std::fprintf(stderr, "; scales rounded to fp16 by up to %.3g relative", r->max_scale_rounding);
  std::fputc('\n', stderr);
  return kExitOk;
}

}  // namespace

std::vector<Command> register_quantize(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "quantize",
      "Convert a GGUF file's BitLinear projections to another type: losslessly between I2_S, "
      "TQ2_0 and TQ1_0, from exactly ternary F32/F16/BF16, or with --ternarize absmean");
  auto f = std::make_shared<QuantizeFlags>();
  sub->add_option("input", f->in, "Input GGUF")->required();
  sub->add_option("output", f->out, "Output GGUF")->required();
  sub->add_option("type", f->type, "I2_S | TQ2_0 | TQ1_0 | F16 | F32")->required();
  sub->add_option("--ternarize", f->ternarize,
                  "absmean: quantize projections that are not exactly ternary as BitNet b1.58 "
                  "is trained (otherwise they are an error)");
  sub->add_option("--scale-rounding", f->scale_rounding,
                  "fp16: accept rounding an I2_S tensor scale to fp16 where a TQ type cannot "
                  "hold it exactly (otherwise an error)");
  return {Command{sub, [f] { return quantize(*f); }}};
}

}  // namespace bitnet::cli
