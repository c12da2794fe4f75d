#include "trace/record.h"

#include <blake3.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <tuple>

#include "core/mapped_file.h"

namespace bitnet::trace {

// Hashes and .npy/.safetensors values are defined on little-endian f32 bytes; the engine only
// targets x86-64, where memory already has that layout.
static_assert(std::endian::native == std::endian::little, "trace hashes assume little endian");

Stats compute_stats(std::span<const float> values) {
  Stats s;
  double sum = 0, sum_sq = 0;
  int64_t n = 0;
  float mn = INFINITY, mx = -INFINITY;
  for (float v : values) {
    if (std::isnan(v)) {
      ++s.nan_count;
    } else if (std::isinf(v)) {
      ++s.inf_count;
    } else {
      sum += v;
      sum_sq += static_cast<double>(v) * v;
      mn = std::min(mn, v);
      mx = std::max(mx, v);
      ++n;
    }
  }
  if (n > 0) {
    s.mean = sum / static_cast<double>(n);
    s.rms = std::sqrt(sum_sq / static_cast<double>(n));
    s.min = mn;
    s.max = mx;
    s.absmax = std::max(std::fabs(static_cast<double>(mn)), std::fabs(static_cast<double>(mx)));
  }
  return s;
}

std::string point_name(int position, int layer, Op op, Kind kind) {
  std::string s = "t" + std::to_string(position) + "/";
  if (layer >= 0) s += "blk" + std::to_string(layer) + "/";
  s += op_name(op);
  if (kind == Kind::kQ8) s += "/q8";
  return s;
}

std::string flat_name(int position, int layer, Op op, Kind kind) {
  std::string s = point_name(position, layer, op, kind);
  std::replace(s.begin(), s.end(), '/', '_');
  return s;
}

std::string Record::name() const { return point_name(position, layer, op, kind); }

namespace {

bool parse_int(std::string_view s, int* out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size() && *out >= 0;
}

}  // namespace

std::optional<ParsedName> parse_point_name(std::string_view name) {
  ParsedName p{0, -1, Op::kEmbeddings, Kind::kF32};
  // Accept both "t0/blk1/q_proj" and the flat "t0_blk1_q_proj" (op names contain '_', so the
  // flat form is split on the known prefixes only).
  const char sep = name.find('/') != std::string_view::npos ? '/' : '_';
  if (name.size() < 3 || name[0] != 't') return std::nullopt;
  size_t at = name.find(sep);
  if (at == std::string_view::npos || !parse_int(name.substr(1, at - 1), &p.position))
    return std::nullopt;
  std::string_view rest = name.substr(at + 1);
  if (rest.starts_with("blk")) {
    at = rest.find(sep);
    if (at == std::string_view::npos || !parse_int(rest.substr(3, at - 3), &p.layer))
      return std::nullopt;
    rest = rest.substr(at + 1);
  }
  for (std::string_view suffix : {std::string_view("/q8"), std::string_view("_q8")}) {
    if (rest.ends_with(suffix)) {
      p.kind = Kind::kQ8;
      rest.remove_suffix(suffix.size());
    }
  }
  const auto op = op_from_name(rest);
  if (!op || is_block_op(*op) != (p.layer >= 0)) return std::nullopt;
  if (p.kind == Kind::kQ8 && !feeds_bitlinear(*op)) return std::nullopt;
  p.op = *op;
  return p;
}

Record make_record(int position, int layer, Op op, std::span<const int64_t> shape,
                   std::span<const float> values) {
  Record r;
  r.position = position;
  r.layer = layer;
  r.op = op;
  r.shape.assign(shape.begin(), shape.end());
  r.num_elements = static_cast<int64_t>(values.size());
  r.blake3 = blake3_hex(values.data(), values.size_bytes());
  r.stats = compute_stats(values);
  return r;
}

Record make_quantized_record(int position, int layer, Op op, QuantGrouping grouping,
                             std::span<const int8_t> codes, std::span<const float> scales) {
  Record r;
  r.position = position;
  r.layer = layer;
  r.op = op;
  r.kind = Kind::kQ8;
  r.grouping = grouping;
  r.shape = {static_cast<int64_t>(codes.size())};
  r.num_elements = static_cast<int64_t>(codes.size());
  r.blake3 = blake3_hex(codes.data(), codes.size_bytes());
  r.scales.assign(scales.begin(), scales.end());
  r.scales_blake3 = blake3_hex(scales.data(), scales.size_bytes());
  // Statistics of what the codes stand for, so they compare across groupings.
  std::vector<float> deq(codes.size());
  const size_t group = scales.empty() ? 0 : codes.size() / scales.size();
  for (size_t i = 0; i < codes.size() && group > 0; ++i) {
    const float s = scales[std::min(i / group, scales.size() - 1)];
    deq[i] = grouping == QuantGrouping::kPerToken ? static_cast<float>(codes[i]) / s
                                                  : static_cast<float>(codes[i]) * s;
  }
  r.stats = compute_stats(deq);
  return r;
}

nlohmann::ordered_json to_json(const Record& r) {
  nlohmann::ordered_json j;
  j["name"] = r.name();
  j["position"] = r.position;
  j["layer"] = r.layer;
  j["op"] = op_name(r.op);
  j["kind"] = r.kind == Kind::kF32 ? "f32" : "q8";
  j["shape"] = r.shape;
  j["dtype"] = r.dtype();
  j["num_elements"] = r.num_elements;
  j["blake3"] = r.blake3;
  j["rms"] = r.stats.rms;
  j["mean"] = r.stats.mean;
  j["min"] = r.stats.min;
  j["max"] = r.stats.max;
  j["absmax"] = r.stats.absmax;
  j["nan_count"] = r.stats.nan_count;
  j["inf_count"] = r.stats.inf_count;
  if (r.kind == Kind::kQ8) {
    j["grouping"] = r.grouping == QuantGrouping::kPerToken ? "per_token" : "q8_k";
    j["scales"] = r.scales;
    j["scales_blake3"] = r.scales_blake3;
  }
  if (!r.values_file.empty()) {
    j["values"] = {{"file", r.values_file}};
    if (!r.values_key.empty()) j["values"]["key"] = r.values_key;
  }
  return j;
}

nlohmann::ordered_json to_seed_json(const Record& r) {
  nlohmann::ordered_json j;
  j["name"] = r.name();
  j["shape"] = r.shape;
  j["dtype"] = r.dtype();
  j["blake3"] = r.blake3;
  j["rms"] = r.stats.rms;
  j["num_elements"] = r.num_elements;
  return j;
}

Result<Record> record_from_json(const nlohmann::json& j) {
  if (!j.is_object()) return make_error("a record is not a JSON object");
  Record r;
  try {
    // Position/layer/op fields win; a record carrying only a name (seed layout) is parsed.
    if (j.contains("op")) {
      const auto op = op_from_name(j.at("op").get<std::string>());
      if (!op) return make_error("unknown op '%s'", j.at("op").get<std::string>().c_str());
      r.op = *op;
      r.position = j.at("position").get<int>();
      r.layer = j.value("layer", -1);
      r.kind = j.value("kind", std::string("f32")) == "q8" ? Kind::kQ8 : Kind::kF32;
    } else {
      const auto name = j.at("name").get<std::string>();
      const auto p = parse_point_name(name);
      if (!p) return make_error("'%s' is not a trace point name", name.c_str());
      r.position = p->position, r.layer = p->layer, r.op = p->op, r.kind = p->kind;
    }
    if (r.position < 0) return make_error("negative position %d", r.position);
    r.shape = j.at("shape").get<std::vector<int64_t>>();
    r.num_elements = j.value("num_elements", int64_t{0});
    if (r.num_elements == 0 && !r.shape.empty()) {
      r.num_elements = 1;
      for (int64_t d : r.shape) r.num_elements *= d;
    }
    r.blake3 = j.value("blake3", std::string());
    // A NaN statistic is written by nlohmann as null.
    auto num = [&](const char* key) {
      const auto it = j.find(key);
      return it != j.end() && it->is_number() ? it->get<double>() : 0.0;
    };
    r.stats.rms = num("rms");
    r.stats.mean = num("mean");
    r.stats.min = num("min");
    r.stats.max = num("max");
    r.stats.absmax = num("absmax");
    r.stats.nan_count = j.value("nan_count", int64_t{0});
    r.stats.inf_count = j.value("inf_count", int64_t{0});
    if (r.kind == Kind::kQ8) {
      r.grouping = j.value("grouping", std::string("per_token")) == "q8_k"
                       ? QuantGrouping::kQ8K
                       : QuantGrouping::kPerToken;
      r.scales = j.value("scales", std::vector<float>{});
      r.scales_blake3 = j.value("scales_blake3", std::string());
    }
    if (const auto it = j.find("values"); it != j.end() && it->is_object()) {
      r.values_file = it->value("file", std::string());
      r.values_key = it->value("key", std::string());
    }
  } catch (const nlohmann::json::exception& e) {
    return make_error("bad record: %s", e.what());
  }
  return r;
}

bool forward_order_less(const Record& a, const Record& b) {
  auto key = [](const Record& r) {
    const int stage = r.op == Op::kEmbeddings ? 0 : is_block_op(r.op) ? 1 : 2;
    return std::make_tuple(r.position, stage, r.layer, static_cast<int>(r.op),
                           static_cast<int>(r.kind));
  };
  return key(a) < key(b);
}

std::string blake3_hex(const void* data, size_t size) {
  blake3_hasher h;
  blake3_hasher_init(&h);
  blake3_hasher_update(&h, data, size);
  uint8_t out[BLAKE3_OUT_LEN];
  blake3_hasher_finalize(&h, out, BLAKE3_OUT_LEN);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s(2 * BLAKE3_OUT_LEN, '0');
  for (size_t i = 0; i < BLAKE3_OUT_LEN; ++i) {
    s[2 * i] = kHex[out[i] >> 4];
    s[2 * i + 1] = kHex[out[i] & 15];
  }
  return s;
}

Result<std::string> blake3_file_hex(const std::string& path) {
  BITNET_ASSIGN_OR_RETURN(auto file, MappedFile::open(path));
  return blake3_hex(file->data(), file->size());
}

}  // namespace bitnet::trace
