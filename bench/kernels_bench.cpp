// Kernel micro-benchmarks for the BitNet b1.58 2B4T shapes (k x n_out): 2560x2560 (attn_q,
// attn_output), 2560x640 (attn_k, attn_v), 2560x6912 (ffn_gate, ffn_up), 6912x2560 (ffn_down),
// and the tied F16 LM head 2560x128256. Decode = 1 activation row, prompt = 64 rows.
//
// Each matmul reports GB/s (weight bytes read per call / time) and GOPS (2 k n_out rows / time).
// Decode GEMVs run twice: "hot" reuses one weight matrix (it then sits in L2/L3), "cold" cycles
// through copies totalling >= 1 GiB so every call streams from DRAM, as a real decode step does
// (1.18 GB of weights per token); "batch8" is a decode step of 8 sequences (8 rows, hot and cold).
// The Q8_0 head is the screened head's screen. Read bandwidth is measured in the same run with the
// same pool and chunking, for a buffer of the hot GEMV's size, 64 MiB and 1 GiB; the summary at the
// end compares the I2_S 2560x6912 decode GEMV with it.
//
//   build-kern/bin/bench_kernels [--benchmark_filter=...] [--benchmark_repetitions=N]
//   (BITNET_BENCH_THREADS, default 2; BITNET_KERNELS=scalar|avx2|avx512 picks the variant)
#include <benchmark/benchmark.h>
#include <immintrin.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/bandwidth.h"
#include "core/fp16.h"
#include "core/thread_pool.h"
#include "kernels/attention.h"
#include "kernels/dispatch.h"
#include "kernels/elementwise.h"
#include "kernels/matmul.h"
#include "kernels/packed.h"
#include "kernels/q8_0_head.h"
#include "quant/i2s.h"
#include "quant/tq1_0.h"
#include "quant/tq2_0.h"

namespace {

using bitnet::ThreadPool;
using bitnet::gguf::TensorType;
using namespace bitnet::kernels;

constexpr size_t kColdBytes = size_t{1} << 30;

int bench_threads() {
  const char* e = std::getenv("BITNET_BENCH_THREADS");
  const int n = e ? std::atoi(e) : 2;
  return n > 0 ? n : 2;
}

ThreadPool& pool() {
  static ThreadPool p(bench_threads());
  return p;
}

// The variant every benchmark runs: BITNET_KERNELS, else the best this CPU runs.
const Kernels& bench_kernels() {
  static const Kernels k = [] {
    const char* e = std::getenv("BITNET_KERNELS");
    if (e == nullptr || e[0] == '\0') return Kernels::best();
    auto named = Kernels::named(e);
    if (!named.ok()) {
      std::fprintf(stderr, "BITNET_KERNELS: %s\n", named.message().c_str());
      std::exit(2);
    }
    return *named;
  }();
  return k;
}

struct Shape {
  const char* name;
  int64_t k, n_out;
};
constexpr Shape kShapes[] = {{"2560x2560", 2560, 2560},
                             {"2560x640", 2560, 640},
                             {"2560x6912", 2560, 6912},
                             {"6912x2560", 6912, 2560}};
constexpr Shape kHead = {"2560x128256", 2560, 128256};

const char* type_name(TensorType t) {
  switch (t) {
    case TensorType::I2_S:
      return "I2_S";
    case TensorType::TQ2_0:
      return "TQ2_0";
    case TensorType::TQ1_0:
      return "TQ1_0";
    case TensorType::F16:
      return "F16";
    default:
      return "F32";
  }
}

// ------------------------------------------------------------------ weights

int64_t row_bytes(TensorType t, int64_t k) {
  WeightMatrix w;
  w.type = t;
  w.k = k;
  return w.row_bytes();
}

// One weight matrix in file format, random valid ternary values or random F16.
std::vector<uint8_t> make_weights(TensorType t, int64_t k, int64_t n_out, float* scale) {
  std::mt19937 rng(1234);
  const size_t n = static_cast<size_t>(k * n_out);
  const size_t codes = static_cast<size_t>(row_bytes(t, k) * n_out);
  std::vector<uint8_t> bytes(codes + (t == TensorType::I2_S ? bitnet::quant::kI2sTailBytes : 0));
  *scale = 1.0f;
  if (t == TensorType::F16) {
    std::normal_distribution<float> d(0.0f, 0.05f);
    for (size_t i = 0; i < n; ++i) {
      const uint16_t h = bitnet::fp32_to_fp16(d(rng));
      std::memcpy(bytes.data() + 2 * i, &h, 2);
    }
    return bytes;
  }
  std::vector<int8_t> tern(n);
  for (auto& v : tern) v = static_cast<int8_t>(static_cast<int>(rng() % 3) - 1);
  std::vector<float> block_scales(n / 256, 0.03125f);
  bool ok = true;
  if (t == TensorType::I2_S) {
    *scale = 0.75f;
    ok = bitnet::quant::pack_i2s(tern.data(), n, *scale, bytes.data()).ok();
  } else if (t == TensorType::TQ2_0) {
    ok = bitnet::quant::pack_tq2_0(tern.data(), n, block_scales.data(), bytes.data()).ok();
  } else {
    ok = bitnet::quant::pack_tq1_0(tern.data(), n, block_scales.data(), bytes.data()).ok();
  }
  if (!ok) std::abort();
  return bytes;
}

// `copies` copies of one matrix in one allocation (cold runs cycle through them). Only the most
// recently used set is kept, to bound memory.
struct MatrixSet {
  std::string key;
  std::unique_ptr<uint8_t[]> storage;
  size_t stride = 0;
  std::vector<WeightMatrix> mats;
  int64_t weight_bytes = 0;  // codes read per call (without the I2_S tail)
  std::unique_ptr<uint8_t, decltype(&std::free)> packed{nullptr, &std::free};  // packed.h copies
};

// With `packed`, every copy also gets the packed layout the AVX-512 kernels read (packed.h), as
// a model load makes it.
const MatrixSet& matrices(TensorType t, const Shape& s, bool cold, bool packed = false) {
  static MatrixSet set;
  const std::string key =
      std::string(type_name(t)) + s.name + (cold ? "c" : "h") + (packed ? "p" : "");
  if (set.key == key) return set;
  set = MatrixSet();
  float scale;
  const std::vector<uint8_t> one = make_weights(t, s.k, s.n_out, &scale);
  set.weight_bytes = row_bytes(t, s.k) * s.n_out;
  set.stride = (one.size() + 4095) / 4096 * 4096;
  const size_t copies = cold ? std::max<size_t>(1, (kColdBytes + one.size() - 1) / one.size()) : 1;
  set.storage.reset(new uint8_t[set.stride * copies]);
  for (size_t c = 0; c < copies; ++c) {
    std::memcpy(set.storage.get() + c * set.stride, one.data(), one.size());
    WeightMatrix w;
    w.type = t;
    w.data = set.storage.get() + c * set.stride;
    w.k = s.k;
    w.n_out = s.n_out;
    w.tensor_scale = scale;
    set.mats.push_back(w);
  }
  if (packed && packable(set.mats[0])) {
    const size_t pstride = (packed_size(set.mats[0]) + 4095) / 4096 * 4096;
    set.packed.reset(static_cast<uint8_t*>(std::aligned_alloc(4096, pstride * copies)));
    pack_tiles(set.mats[0], set.packed.get(), 0, packed_tiles(set.mats[0]));
    for (size_t c = 0; c < copies; ++c) {
      if (c > 0) std::memcpy(set.packed.get() + c * pstride, set.packed.get(), pstride);
      set.mats[c].packed = set.packed.get() + c * pstride;
    }
  }
  set.key = key;
  return set;
}

std::vector<float> activations(int64_t rows, int64_t k) {
  std::mt19937 rng(99);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(rows * k));
  for (auto& v : x) v = d(rng);
  return x;
}

void set_counters(benchmark::State& state, int64_t bytes, int64_t ops) {
  state.counters["GB/s"] = benchmark::Counter(static_cast<double>(bytes) * state.iterations() / 1e9,
                                              benchmark::Counter::kIsRate);
  state.counters["GOPS"] = benchmark::Counter(static_cast<double>(ops) * state.iterations() / 1e9,
                                              benchmark::Counter::kIsRate);
}

// ------------------------------------------------------------------ benchmarks

void bm_ternary(benchmark::State& state, TensorType t, Shape s, int64_t rows, bool cold,
                bool packed) {
  const MatrixSet& m = matrices(t, s, cold, packed);
  const std::vector<float> x = activations(rows, s.k);
  QuantizedActivations a;
  quantize_activations(bench_kernels(), act_quant_for(t), x.data(), rows, s.k, &a);
  std::vector<float> y(static_cast<size_t>(rows * s.n_out));
  size_t i = 0;
  for (auto _ : state) {
    matmul_ternary(bench_kernels(), m.mats[i], a, y.data(), &pool());
    if (++i == m.mats.size()) i = 0;
    benchmark::DoNotOptimize(y.data());
  }
  set_counters(state, m.weight_bytes, 2 * rows * s.k * s.n_out);
}

void bm_float(benchmark::State& state, TensorType t, Shape s, int64_t rows, bool packed) {
  const MatrixSet& m = matrices(t, s, false, packed);  // 657 MB: larger than any cache already
  const std::vector<float> x = activations(rows, s.k);
  std::vector<float> y(static_cast<size_t>(rows * s.n_out));
  for (auto _ : state) {
    matmul_float(bench_kernels(), m.mats[0], x.data(), rows, y.data(), &pool());
    benchmark::DoNotOptimize(y.data());
  }
  set_counters(state, m.weight_bytes, 2 * rows * s.k * s.n_out);
}

// The Q8_0 copy of the F16 head (q8_0_head.h; the screened head's screen), 349 MB.
void bm_q8_0_head(benchmark::State& state, int64_t rows) {
  const MatrixSet& m = matrices(TensorType::F16, kHead, false);
  const WeightMatrix& f16 = m.mats[0];
  static std::unique_ptr<uint8_t, decltype(&std::free)> buf{nullptr, &std::free};
  const size_t size = q8_0_head_size(f16.k, f16.n_out);
  if (!buf) {
    buf.reset(static_cast<uint8_t*>(std::aligned_alloc(4096, (size + 4095) / 4096 * 4096)));
    q8_0_head_pack_tiles(f16, buf.get(), 0, (f16.n_out + 15) / 16);
  }
  const WeightMatrix w = q8_0_head_view(buf.get(), f16.k, f16.n_out);
  const std::vector<float> x = activations(rows, kHead.k);
  std::vector<float> y(static_cast<size_t>(rows * kHead.n_out));
  QuantizedActivations qa;
  for (auto _ : state) {
    matmul_q8_0_head(bench_kernels(), w, x.data(), rows, y.data(), &pool(), &qa);
    benchmark::DoNotOptimize(y.data());
  }
  set_counters(state, static_cast<int64_t>(size), 2 * rows * kHead.k * kHead.n_out);
}

void bm_quantize(benchmark::State& state, ActQuant kind, int64_t k, int64_t rows) {
  const std::vector<float> x = activations(rows, k);
  QuantizedActivations a;
  for (auto _ : state) {
    quantize_activations(bench_kernels(), kind, x.data(), rows, k, &a);
    benchmark::DoNotOptimize(a.q.data());
  }
  set_counters(state, rows * k * 4, rows * k);
}

// Reads of `bytes`, split over the pool in 64 KiB chunks (as the kernels split rows), with the
// same reader as `bitnet bench`'s roofline (core/bandwidth.h); with `prefetch`, also touching the
// lines ahead as the kernels do, so that the reference bandwidth is the better of the two.
void bm_read(benchmark::State& state, size_t bytes, bool prefetch) {
  constexpr size_t kChunk = 64 * 1024;
  bytes = (bytes + kChunk - 1) / kChunk * kChunk;
  std::unique_ptr<uint8_t[], decltype(&std::free)> buf(
      static_cast<uint8_t*>(std::aligned_alloc(4096, bytes)), &std::free);
  std::memset(buf.get(), 1, bytes);
  const int64_t n_chunks = static_cast<int64_t>(bytes / kChunk);
  std::vector<uint64_t> sink(static_cast<size_t>(n_chunks));
  for (auto _ : state) {
    pool().run(n_chunks, [&](int64_t c) {
      sink[static_cast<size_t>(c)] = bitnet::read_bytes(buf.get() + c * kChunk, kChunk, prefetch);
    });
    benchmark::DoNotOptimize(sink.data());
  }
  set_counters(state, static_cast<int64_t>(bytes), 0);
}

// Decode attention of one token over n_kv cached positions, 2B4T's heads (20 query heads, 5 KV
// heads of 128, F16 cache), split over the pool as the model's decode step splits it (each KV
// head's 4 query heads in two tasks of 2). "cold" cycles through 30 layers' caches (30 x 5 MB at
// 1024 positions: larger than the caches, as in a real token), "hot" reuses one layer's.
void bm_attention(benchmark::State& state, int n_kv, bool cold) {
  constexpr int kKvHeads = 5, kGroup = 4, kHd = 128, kPart = 2, kLayers = 30;
  const int capacity = (n_kv + n_kv / 2 + 63) / 64 * 64;
  const int64_t dkv = kKvHeads * kHd;
  const int n_layers = cold ? kLayers : 1;
  struct Layer {
    std::vector<uint16_t> k, v;
  };
  std::vector<Layer> layers(static_cast<size_t>(n_layers));
  std::mt19937 rng(7);
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (Layer& L : layers) {
    L.k.resize(static_cast<size_t>(dkv * capacity));
    L.v.resize(static_cast<size_t>(dkv * capacity));
    for (auto& e : L.k) e = bitnet::fp32_to_fp16(d(rng));
    for (auto& e : L.v) e = bitnet::fp32_to_fp16(d(rng));
  }
  std::vector<float> q(static_cast<size_t>(kKvHeads * kGroup * kHd));
  for (auto& e : q) e = bitnet::fp16_to_fp32(bitnet::fp32_to_fp16(d(rng)));
  std::vector<float> probs(static_cast<size_t>(kKvHeads * kGroup * n_kv));
  std::vector<float> out(q.size());
  const Kernels& k = bench_kernels();
  size_t li = 0;
  for (auto _ : state) {
    const Layer& L = layers[li];
    pool().run(kKvHeads * kGroup / kPart, [&](int64_t task) {
      const int g = static_cast<int>(task) / (kGroup / kPart);
      const int h0 = static_cast<int>(task) * kPart;
      AttentionHead a;
      a.k = L.k.data() + static_cast<size_t>(g) * kHd * capacity;
      a.v = L.v.data() + static_cast<size_t>(g) * kHd;
      a.k_stride = capacity;
      a.v_stride = dkv;
      a.head_dim = kHd;
      a.n_kv = n_kv;
      a.scale = 0.088f;
      const float* qs[kPart];
      float* s[kPart];
      float* o[kPart];
      for (int i = 0; i < kPart; ++i) {
        qs[i] = q.data() + static_cast<size_t>(h0 + i) * kHd;
        s[i] = probs.data() + static_cast<size_t>(h0 + i) * n_kv;
        o[i] = out.data() + static_cast<size_t>(h0 + i) * kHd;
      }
      attention_scores_group(k, a, qs, kPart, s);
      for (int i = 0; i < kPart; ++i) softmax_probs(k, s[i], n_kv, true);
      attention_values_group(k, a, kPart, s, o);
    });
    if (++li == layers.size()) li = 0;
    benchmark::DoNotOptimize(out.data());
  }
  set_counters(state, 2 * dkv * n_kv * 2, 2 * int64_t{2} * kKvHeads * kGroup * kHd * n_kv);
}

// Keeps each benchmark's best GB/s over its repetitions for the summary, and prints as usual.
class Reporter : public benchmark::ConsoleReporter {
 public:
  std::map<std::string, double> gbps;
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) {
      auto it = r.counters.find("GB/s");
      if (it != r.counters.end() && r.run_type == Run::RT_Iteration) {
        double& best = gbps[r.benchmark_name()];  // best repetition (the machine may be shared)
        best = std::max(best, static_cast<double>(it->second.value));
      }
    }
    ConsoleReporter::ReportRuns(runs);
  }
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const std::string variant(bench_kernels().name());
  std::printf("kernels: %s, threads: %d\n", variant.c_str(), pool().size());

  auto reg = [](const std::string& name, auto fn) {
    return benchmark::RegisterBenchmark(name.c_str(), fn)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  };
  const size_t target_bytes = static_cast<size_t>(row_bytes(TensorType::I2_S, 2560) * 6912);
  for (bool pf : {false, true}) {
    const std::string sfx = pf ? "/prefetch" : "/plain";
    reg("read/hot_4.4MB" + sfx, [=](benchmark::State& s) { bm_read(s, target_bytes, pf); });
    reg("read/64MiB" + sfx, [=](benchmark::State& s) { bm_read(s, size_t{64} << 20, pf); });
    reg("read/1GiB" + sfx, [=](benchmark::State& s) { bm_read(s, kColdBytes, pf); })->MinTime(1.0);
  }

  // Each matmul in the file layout and, where one exists, the packed layout a model load makes.
  for (bool pk : {false, true}) {
    const std::string p = pk ? "/packed" : "";
    for (const Shape& s : kShapes) {
      for (bool cold : {false, true}) {
        reg(std::string("I2_S/") + s.name + "/decode/" + (cold ? "cold" : "hot") + p,
            [=](benchmark::State& st) { bm_ternary(st, TensorType::I2_S, s, 1, cold, pk); });
      }
    }
    for (const Shape& s : kShapes) {
      reg(std::string("I2_S/") + s.name + "/prompt64" + p,
          [=](benchmark::State& st) { bm_ternary(st, TensorType::I2_S, s, 64, false, pk); });
    }
    // A decode step of 8 sequences: 8 rows, weights streaming from DRAM (cold) or in cache (hot:
    // what the arithmetic alone costs).
    for (bool cold : {false, true}) {
      reg(std::string("I2_S/") + kShapes[2].name + "/batch8/" + (cold ? "cold" : "hot") + p,
          [=](benchmark::State& st) { bm_ternary(st, TensorType::I2_S, kShapes[2], 8, cold, pk); });
    }
    for (TensorType t : {TensorType::TQ2_0, TensorType::TQ1_0}) {
      if (pk && t == TensorType::TQ1_0) continue;  // not packed
      const Shape s = kShapes[2];
      for (bool cold : {false, true}) {
        reg(std::string(type_name(t)) + "/" + s.name + "/decode/" + (cold ? "cold" : "hot") + p,
            [=](benchmark::State& st) { bm_ternary(st, t, s, 1, cold, pk); });
      }
      reg(std::string(type_name(t)) + "/" + s.name + "/prompt64" + p,
          [=](benchmark::State& st) { bm_ternary(st, t, s, 64, false, pk); });
    }
    reg("F16_head/2560x128256/decode" + p,
        [=](benchmark::State& st) { bm_float(st, TensorType::F16, kHead, 1, pk); });
    reg("F16_head/2560x128256/prompt64" + p,
        [=](benchmark::State& st) { bm_float(st, TensorType::F16, kHead, 64, pk); });
  }
  for (int64_t rows : {1, 8}) {
    reg("Q8_0_head/2560x128256/" + std::string(rows == 1 ? "decode" : "batch8"),
        [=](benchmark::State& st) { bm_q8_0_head(st, rows); });
  }
  for (int n_kv : {256, 1024, 4096}) {
    for (bool cold : {false, true}) {
      reg("attention/decode/n_kv:" + std::to_string(n_kv) + (cold ? "/cold" : "/hot"),
          [=](benchmark::State& st) { bm_attention(st, n_kv, cold); });
    }
  }
  for (int64_t rows : {1, 64}) {
    reg("quantize/per_token/2560/rows:" + std::to_string(rows),
        [=](benchmark::State& st) { bm_quantize(st, ActQuant::kPerTokenInt8, 2560, rows); });
    reg("quantize/q8k/2560/rows:" + std::to_string(rows),
        [=](benchmark::State& st) { bm_quantize(st, ActQuant::kQ8K, 2560, rows); });
  }

  Reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);

  auto get = [&](const std::string& prefix) {  // names carry suffixes such as /real_time
    auto it = reporter.gbps.lower_bound(prefix);
    return it != reporter.gbps.end() && it->first.compare(0, prefix.size(), prefix) == 0
               ? it->second
               : 0.0;
  };
  auto best_read = [&](const std::string& name) {
    return std::max(get("read/" + name + "/plain/"), get("read/" + name + "/prefetch/"));
  };
  const double hot_read = best_read("hot_4.4MB"), mid_read = best_read("64MiB"),
               dram_read = best_read("1GiB");
  const double hot = get("I2_S/2560x6912/decode/hot/");
  const double cold = get("I2_S/2560x6912/decode/cold/");
  std::printf("\nSummary (%s, %d threads; best repetition of each)\n", variant.c_str(),
              pool().size());
  std::printf(
      "  read bandwidth (better of plain / prefetched reads): %.1f GB/s (4.4 MB, cache-resident), "
      "%.1f GB/s (64 MiB), %.1f GB/s (1 GiB, DRAM)\n",
      hot_read, mid_read, dram_read);
  if (hot > 0 && hot_read > 0) {
    std::printf(
        "  I2_S 2560x6912 decode GEMV, hot:  %.1f GB/s = %.0f%% of the 4.4 MB read bandwidth\n",
        hot, 100 * hot / hot_read);
  }
  if (cold > 0 && dram_read > 0) {
    std::printf(
        "  I2_S 2560x6912 decode GEMV, cold: %.1f GB/s = %.0f%% of the DRAM read bandwidth\n", cold,
        100 * cold / dram_read);
  }
  benchmark::Shutdown();
  return 0;
}
