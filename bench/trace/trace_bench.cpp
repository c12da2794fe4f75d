// What tracing costs inside one build (tracing compiled in). The compiled-out comparison needs
// two builds: see trace_overhead.sh next to this file.
//
//  - BM_DecodeStep/<mode>: one decode step of a synthetic model (tiny by default; set
//    BITNET_BENCH_PRESET=2b4t and BITNET_BENCH_LAYERS=N for the official shape), with the sink
//    off (null: the shipping default), on but selecting nothing, and on recording every point
//    (hash + statistics, no values) into a folder under $TMPDIR.
//  - BM_Record/<n>: hashing + statistics of one point of n floats (a 2560 row, a 6912 row, the
//    128256 logits): the cost per selected point.
//
//   build/bin/bench_trace [--benchmark_filter=...]   (BITNET_BENCH_THREADS, default 2)
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>

#include "core/paths.h"
#include "model/context.h"
#include "model/observe/trace_observer.h"
#include "synth/synth.h"
#include "trace/record.h"
#include "trace/writer.h"

namespace {

using namespace bitnet;

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && v[0] != '\0' ? std::atoi(v) : fallback;
}

struct Fixture {
  std::filesystem::path dir;
  std::unique_ptr<model::Model> model;
  std::unique_ptr<model::Context> session;

  Fixture() {
    dir =
        std::filesystem::temp_directory_path() / ("bitnet-bench-trace-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir);
    const char* preset = std::getenv("BITNET_BENCH_PRESET");
    synth::SynthOptions o;
    o.config = *synth::preset_config(preset != nullptr ? preset : "tiny", model::Arch::kBitnetB158);
    if (const int layers = env_int("BITNET_BENCH_LAYERS", 0); layers > 0)
      o.config.n_layers = layers;
    o.config.n_ctx_train = 512;
    const char* ref_dir = std::getenv("BITNET_REFERENCE_DIR");
    o.vocab_path =
        reference_vocab_path("ggml-vocab-llama-bpe.gguf", ref_dir != nullptr ? ref_dir : "");
    const std::string path = (dir / "model.gguf").string();
    if (!synth::write_synthetic_model(o, path).ok()) std::abort();
    model::LoadOptions lo;
    if (const char* k = std::getenv("BITNET_KERNELS"); k != nullptr && k[0] != '\0')
      lo.kernels = kernels::Kernels::named(k).value();
    model = model::Model::load(path, lo).value();
    session = model::Context::create(
                  *model, {.n_ctx = 512, .n_threads = env_int("BITNET_BENCH_THREADS", 2)})
                  .value();
  }
  ~Fixture() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

// mode 0: sink off; 1: sink on, nothing selected; 2: every point recorded (no values).
void BM_DecodeStep(benchmark::State& state) {
  Fixture& f = fixture();
  std::unique_ptr<trace::Writer> w;
  if (state.range(0) > 0) {
    trace::WriterOptions o;
    o.dir = (f.dir / "trace").string();
    if (state.range(0) == 1) o.selection = *trace::Selection::parse("none", "");
    w = trace::Writer::open(o).value();
  }
  model::TraceObserver tracer(w.get());
  f.session->set_observer(w ? &tracer : nullptr);
  f.session->kv_cache().clear();
  std::vector<float> logits;
  int32_t token = 128000;
  for (auto _ : state) {
    if (f.session->n_past() + 1 >= f.session->n_ctx()) f.session->kv_cache().clear();
    if (!f.session->eval(std::span(&token, 1), false, &logits).ok()) std::abort();
    token = 1000 + f.session->n_past();
  }
  f.session->set_observer(nullptr);
  if (w)
    state.counters["records/step"] =
        static_cast<double>(w->n_records()) / static_cast<double>(state.iterations());
  state.counters["tok/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_DecodeStep)
    ->Arg(0)
    ->Arg(1)
    ->Arg(2)
    ->ArgName("mode")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_Record(benchmark::State& state) {
  std::vector<float> v(state.range(0));
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  for (float& x : v) x = nd(rng);
  const int64_t shape[1] = {state.range(0)};
  for (auto _ : state)
    benchmark::DoNotOptimize(trace::make_record(0, -1, trace::Op::kLogits, shape, v));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0) * 4);
}
BENCHMARK(BM_Record)->Arg(2560)->Arg(6912)->Arg(128256)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
