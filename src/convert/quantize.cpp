#include "convert/quantize.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <vector>

#include "core/fp16.h"
#include "gguf/reader.h"
#include "gguf/writer.h"
#include "quant/convert.h"
#include "quant/i2s.h"
#include "quant/ternary.h"
#include "quant/tq1_0.h"
#include "quant/tq2_0.h"

namespace bitnet::convert {
namespace {

using gguf::TensorType;

bool is_ternary_type(TensorType t) {
  return t == TensorType::I2_S || t == TensorType::TQ2_0 || t == TensorType::TQ1_0;
}

std::string type_name(TensorType t) { return std::string(gguf::tensor_type_name(t)); }

// The tensor as f32 (F32, F16 or BF16 input).
Result<std::vector<float>> to_f32(const gguf::TensorInfo& t, std::span<const uint8_t> bytes) {
  std::vector<float> x(static_cast<size_t>(t.n_elements));
  if (t.type == TensorType::F32) {
    std::memcpy(x.data(), bytes.data(), x.size() * 4);
  } else if (t.type == TensorType::F16 || t.type == TensorType::BF16) {
    for (size_t i = 0; i < x.size(); ++i) {
      uint16_t h;
      std::memcpy(&h, bytes.data() + 2 * i, 2);
      x[i] = t.type == TensorType::F16 ? fp16_to_fp32(h) : bf16_to_fp32(h);
    }
  } else {
    return make_error("%s: %s projections cannot be read as floats", t.name.c_str(),
                      type_name(t.type).c_str());
  }
  return x;
}

// Ternary values and the one scale of weights that are exactly {-s, 0, s}; nothing otherwise
// (the index of the first weight that is not is put in *bad).
std::optional<quant::TernaryTensor> exact_ternary(const std::vector<float>& w, size_t* bad) {
  float s = 0;
  for (float v : w) s = std::max(s, std::fabs(v));
  quant::TernaryTensor t;
  t.values.resize(w.size());
  t.scale = s;
  for (size_t i = 0; i < w.size(); ++i) {
    const float v = w[i];
    if (v == 0) {
      t.values[i] = 0;
    } else if (v == s) {
      t.values[i] = 1;
    } else if (v == -s) {
      t.values[i] = -1;
    } else {
      *bad = i;
      return std::nullopt;
    }
  }
  return t;
}

// The ternary values and scale of an I2_S tensor.
Result<quant::TernaryTensor> i2s_values(std::span<const uint8_t> bytes, size_t n) {
  quant::TernaryTensor t;
  t.values.resize(n);
  BITNET_TRY(quant::unpack_i2s(bytes.data(), n, t.values.data()));
  BITNET_TRY(quant::validate_ternary(t.values.data(), n));
  t.scale = quant::i2s_scale(bytes.data(), n);
  return t;
}

// Packs ternary values with one scale into a TQ type, each block's scale `scale` (exact in fp16).
Status pack_tq(TensorType to, const quant::TernaryTensor& t, float scale, uint8_t* out) {
  const size_t n = t.values.size();
  std::vector<float> scales(n / quant::kTqBlockElems, scale);
  return to == TensorType::TQ2_0 ? quant::pack_tq2_0(t.values.data(), n, scales.data(), out)
                                 : quant::pack_tq1_0(t.values.data(), n, scales.data(), out);
}

struct Converter {
  const QuantizeOptions& o;
  QuantizeReport& report;

  // A projection in o.type's bytes.
  Result<std::vector<uint8_t>> projection(const gguf::TensorInfo& t, std::span<const uint8_t> in) {
    const size_t n = static_cast<size_t>(t.n_elements);
    const TensorType to = o.type;
    auto size = gguf::tensor_nbytes(to, t.n_elements, t.row_length());
    if (!size || (to == TensorType::I2_S && t.row_length() % quant::kI2sBlockElems != 0)) {
      return make_error("%s: rows of %llu elements cannot be stored as %s", t.name.c_str(),
                        static_cast<unsigned long long>(t.row_length()), type_name(to).c_str());
    }
    std::vector<uint8_t> out(static_cast<size_t>(*size));
    auto fail = [&](const Status& st) {
      return make_error("%s (%s -> %s): %s", t.name.c_str(), type_name(t.type).c_str(),
                        type_name(to).c_str(), st.message().c_str());
    };

    if (is_ternary_type(t.type)) {
      Status st;
      if (t.type == TensorType::I2_S && to != TensorType::F16 && to != TensorType::F32) {
        st = to == TensorType::TQ2_0 ? quant::i2s_to_tq2_0(in.data(), n, out.data())
                                     : quant::i2s_to_tq1_0(in.data(), n, out.data());
        if (!st && o.round_scale_fp16) {
          // The scale has no exact fp16 form: store its nearest fp16 in every block.
          BITNET_ASSIGN_OR_RETURN(quant::TernaryTensor v, i2s_values(in, n));
          const float r = fp16_to_fp32(fp32_to_fp16(v.scale));
          report.max_scale_rounding = std::max(
              report.max_scale_rounding,
              v.scale != 0 ? std::fabs(static_cast<double>(r) - v.scale) / std::fabs(v.scale)
                           : 0.0);
          st = pack_tq(to, v, r, out.data());
        } else if (!st) {
          return make_error(
              "%s (I2_S -> %s): its scale %.9g has no exact fp16 form, which %s blocks hold; "
              "--scale-rounding fp16 stores the nearest one (a relative change below 2^-11)",
              t.name.c_str(), type_name(to).c_str(), static_cast<double>(v_scale(in, n)),
              type_name(to).c_str());
        }
      } else if (to == TensorType::I2_S) {
        st = t.type == TensorType::TQ2_0 ? quant::tq2_0_to_i2s(in.data(), n, out.data())
                                         : quant::tq1_0_to_i2s(in.data(), n, out.data());
      } else if (t.type == TensorType::TQ2_0 && to == TensorType::TQ1_0) {
        st = quant::tq2_0_to_tq1_0(in.data(), n, out.data());
      } else if (t.type == TensorType::TQ1_0 && to == TensorType::TQ2_0) {
        st = quant::tq1_0_to_tq2_0(in.data(), n, out.data());
      } else {
        // Ternary to F16 / F32: the dequantized weights.
        std::vector<float> w(n);
        st = t.type == TensorType::I2_S    ? quant::dequantize_i2s(in.data(), n, w.data())
             : t.type == TensorType::TQ2_0 ? quant::dequantize_tq2_0(in.data(), n, w.data())
                                           : quant::dequantize_tq1_0(in.data(), n, w.data());
        if (st) write_floats(w, out);
      }
      if (!st) return fail(st);
      ++report.converted;
      return out;
    }

    // From floats.
    BITNET_ASSIGN_OR_RETURN(std::vector<float> w, to_f32(t, in));
    BITNET_TRY(quant::validate_finite(w.data(), n, t.name.c_str()));
    if (to == TensorType::F16 || to == TensorType::F32) {
      write_floats(w, out);
      ++report.converted;
      return out;
    }
    size_t bad = 0;
    std::optional<quant::TernaryTensor> tern = exact_ternary(w, &bad);
    if (!tern) {
      if (!o.ternarize_absmean) {
        return make_error(
            "%s: not ternary (weight %zu is %.9g, the largest magnitude %.9g); --ternarize "
            "absmean quantizes it as BitNet b1.58 is trained",
            t.name.c_str(), bad, static_cast<double>(w[bad]),
            static_cast<double>(*std::max_element(
                w.begin(), w.end(), [](float a, float b) { return std::fabs(a) < std::fabs(b); })));
      }
      BITNET_ASSIGN_OR_RETURN(quant::TernaryTensor a, quant::ternarize_absmean(w.data(), n));
      tern = std::move(a);
      ++report.ternarized;
      for (size_t i = 0; i < n; ++i) w[i] = tern->values[i] * tern->scale;
    }
    Status st = to == TensorType::I2_S
                    ? quant::pack_i2s(tern->values.data(), n, tern->scale, out.data())
                : to == TensorType::TQ2_0 ? quant::quantize_tq2_0(w.data(), n, out.data())
                                          : quant::quantize_tq1_0(w.data(), n, out.data());
    if (!st) return fail(st);
    ++report.converted;
    return out;
  }

  static float v_scale(std::span<const uint8_t> in, size_t n) {
    return quant::i2s_scale(in.data(), n);
  }

  void write_floats(const std::vector<float>& w, std::vector<uint8_t>& out) const {
    if (o.type == TensorType::F32) {
      std::memcpy(out.data(), w.data(), w.size() * 4);
    } else {
      for (size_t i = 0; i < w.size(); ++i) {
        const uint16_t h = fp32_to_fp16(w[i]);
        std::memcpy(out.data() + 2 * i, &h, 2);
      }
    }
  }
};

}  // namespace

bool is_projection_name(const std::string& name) {
  // blk.<digits>.<one of the seven>.weight
  constexpr std::string_view kPrefix = "blk.";
  if (name.rfind(kPrefix, 0) != 0) return false;
  size_t i = kPrefix.size();
  const size_t digits = i;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9') ++i;
  if (i == digits || i >= name.size() || name[i] != '.') return false;
  const std::string_view rest = std::string_view(name).substr(i + 1);
  for (std::string_view p :
       {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}) {
    if (rest.size() == p.size() + 7 && rest.substr(0, p.size()) == p &&
        rest.substr(p.size()) == ".weight")
      return true;
  }
  return false;
}

namespace {

Result<QuantizeReport> quantize_into(const gguf::File& in, const std::string& out_path,
                                     const QuantizeOptions& o);

}  // namespace

Result<QuantizeReport> quantize_file(const std::string& in_path, const std::string& out_path,
                                     const QuantizeOptions& o) {
  const TensorType to = o.type;
  if (!is_ternary_type(to) && to != TensorType::F16 && to != TensorType::F32) {
    return make_error("cannot quantize to %s: the types are I2_S, TQ2_0, TQ1_0, F16, F32",
                      type_name(to).c_str());
  }
  BITNET_ASSIGN_OR_RETURN(gguf::File in, gguf::File::open(in_path));
  std::error_code ec;
  if (std::filesystem::equivalent(in_path, out_path, ec)) {
    return make_error("the output %s is the input file; write to another path", out_path.c_str());
  }
  int n_projections = 0;
  for (const auto& t : in.tensors()) n_projections += is_projection_name(t.name) ? 1 : 0;
  if (n_projections == 0) {
    return make_error("%s has no BitLinear projections (blk.N.attn_q.weight, ...) to quantize",
                      in_path.c_str());
  }

  auto r = quantize_into(in, out_path, o);
  // A failed conversion leaves no half-written file behind.
  if (!r) std::filesystem::remove(out_path, ec);
  return r;
}

namespace {

Result<QuantizeReport> quantize_into(const gguf::File& in, const std::string& out_path,
                                     const QuantizeOptions& o) {
  const TensorType to = o.type;
  gguf::Writer w(in.version());
  for (const auto& kv : in.metadata()) w.set(kv.key, kv.value);
  w.set("general.file_type", gguf::Value(gguf::llama_ftype_for(to)));
  for (const auto& t : in.tensors()) {
    BITNET_TRY(w.add_tensor(t.name, is_projection_name(t.name) ? to : t.type, t.dims));
  }
  BITNET_TRY(w.begin(out_path));
  QuantizeReport report;
  Converter c{o, report};
  uint64_t written = 0;
  size_t done = 0;
  for (const auto& t : in.tensors()) {
    const std::span<const uint8_t> bytes = in.tensor_data(t);
    if (!is_projection_name(t.name)) {
      BITNET_TRY(w.write(bytes));
      written += bytes.size();
      ++report.copied;
    } else if (t.type == to) {
      BITNET_TRY(w.write(bytes));
      written += bytes.size();
      ++report.unchanged;
    } else {
      BITNET_ASSIGN_OR_RETURN(std::vector<uint8_t> out, c.projection(t, bytes));
      BITNET_TRY(w.write(out));
      written += out.size();
    }
    if (o.on_progress) o.on_progress(++done, in.tensors().size(), written);
  }
  BITNET_TRY(w.finish());
  return report;
}

}  // namespace

}  // namespace bitnet::convert
