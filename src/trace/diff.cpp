#include "trace/diff.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <tuple>

namespace bitnet::trace {
namespace {

using Key = std::tuple<int, int, int, int>;  // position, layer, op, kind
Key key_of(const Record& r) {
  return {r.position, r.layer, static_cast<int>(r.op), static_cast<int>(r.kind)};
}

std::string layer_label(const Record& r) {
  if (r.op == Op::kEmbeddings) return "embd";
  if (is_block_op(r.op)) return "blk" + std::to_string(r.layer);
  return "head";
}

std::string shape_text(const std::vector<int64_t>& s) {
  std::string t = "[";
  for (size_t i = 0; i < s.size(); ++i) t += (i ? "," : "") + std::to_string(s[i]);
  return t + "]";
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// Cosine and max |diff| over the pairs where both values are finite (NaN/Inf are judged by
// their counts).
void value_metrics(const std::vector<float>& a, const std::vector<float>& b, Comparison* c) {
  double dot = 0, na = 0, nb = 0, mx = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) continue;
    const double x = a[i], y = b[i];
    dot += x * y, na += x * x, nb += y * y;
    mx = std::max(mx, std::fabs(x - y));
  }
  c->cosine = na == 0 && nb == 0 ? 1.0 : (na == 0 || nb == 0) ? 0.0 : dot / std::sqrt(na * nb);
  c->max_abs_diff = mx;
  const double scale = std::max(c->a.stats.absmax, c->b.stats.absmax);
  c->rel_max_diff = scale > 0 ? mx / scale : (mx > 0 ? INFINITY : 0.0);
}

}  // namespace

Result<DiffReport> diff_traces(const Trace& ta, const Trace& tb, const Tolerance& tol,
                               bool use_values) {
  DiffReport rep;
  rep.dir_a = ta.dir, rep.dir_b = tb.dir;
  rep.tol = tol;
  // The last record of a key wins (a re-evaluated position replaces the earlier one).
  std::map<Key, const Record*> in_b;
  for (const auto& r : tb.records) in_b[key_of(r)] = &r;
  std::map<Key, const Record*> in_a;
  for (const auto& r : ta.records) in_a[key_of(r)] = &r;
  std::vector<std::pair<const Record*, const Record*>> pairs;
  for (const auto& [k, ra] : in_a) {
    const auto it = in_b.find(k);
    if (it == in_b.end()) {
      ++rep.only_a;
    } else {
      pairs.emplace_back(ra, it->second);
    }
  }
  rep.only_b = static_cast<int>(in_b.size()) - static_cast<int>(pairs.size());
  std::sort(pairs.begin(), pairs.end(),
            [](const auto& x, const auto& y) { return forward_order_less(*x.first, *y.first); });

  if (ta.meta.contains("token_ids") && tb.meta.contains("token_ids") &&
      ta.meta["token_ids"].is_array() && tb.meta["token_ids"].is_array()) {
    const auto &ia = ta.meta["token_ids"], &ib = tb.meta["token_ids"];
    for (size_t i = 0; i < std::max(ia.size(), ib.size()); ++i) {
      if (i >= ia.size() || i >= ib.size() || ia[i] != ib[i]) {
        rep.token_mismatch = static_cast<int>(i);
        break;
      }
    }
  }
  ValueStore va(ta.dir), vb(tb.dir);
  std::map<std::string, size_t> layer_index;
  for (const auto& [ra, rb] : pairs) {
    Comparison c;
    c.a = *ra, c.b = *rb;
    const bool same_shape = ra->shape == rb->shape && ra->num_elements == rb->num_elements;
    c.identical = same_shape && !ra->blake3.empty() && ra->blake3 == rb->blake3 &&
                  ra->scales_blake3 == rb->scales_blake3;
    const double ma = std::max(ra->stats.rms, rb->stats.rms);
    c.rel_rms = ma > 0 ? std::fabs(ra->stats.rms - rb->stats.rms) / ma : 0.0;
    if (!same_shape) {
      c.beyond = true;
      c.reason = "shape " + shape_text(ra->shape) + " vs " + shape_text(rb->shape);
    } else if (ra->stats.nan_count != rb->stats.nan_count ||
               ra->stats.inf_count != rb->stats.inf_count) {
      c.beyond = true;
      c.reason = "NaN/Inf counts " + std::to_string(ra->stats.nan_count) + "/" +
                 std::to_string(ra->stats.inf_count) + " vs " +
                 std::to_string(rb->stats.nan_count) + "/" + std::to_string(rb->stats.inf_count);
    } else if (c.identical) {
      c.cosine = 1,
      c.with_values = use_values && !ra->values_file.empty() && !rb->values_file.empty();
    } else {
      if (use_values && !ra->values_file.empty() && !rb->values_file.empty()) {
        BITNET_ASSIGN_OR_RETURN(auto xa, va.load(*ra));
        BITNET_ASSIGN_OR_RETURN(auto xb, vb.load(*rb));
        c.with_values = true;
        value_metrics(xa, xb, &c);
        if (c.cosine < tol.min_cosine) {
          c.beyond = true;
          c.reason = "cosine " + fmt("%.6f", c.cosine) + " < " + fmt("%g", tol.min_cosine);
        } else if (c.rel_max_diff > tol.max_rel_diff) {
          c.beyond = true;
          c.reason = "max|diff| " + fmt("%.4g", c.max_abs_diff) + " is " +
                     fmt("%.4g", c.rel_max_diff) + " of absmax > " + fmt("%g", tol.max_rel_diff);
        }
      } else if (c.rel_rms > tol.max_rel_rms) {
        c.beyond = true;
        c.reason = "rms " + fmt("%.6g", ra->stats.rms) + " vs " + fmt("%.6g", rb->stats.rms) +
                   " (relative " + fmt("%.4g", c.rel_rms) + " > " + fmt("%g", tol.max_rel_rms) +
                   ")";
      }
    }
    const size_t idx = rep.comparisons.size();
    if (!c.identical && !rep.first_differing) rep.first_differing = idx;
    if (!c.identical && c.a.kind == Kind::kF32 && !rep.first_differing_f32)
      rep.first_differing_f32 = idx;
    if (c.beyond && !rep.first_beyond) rep.first_beyond = idx;

    const std::string label = layer_label(*ra);
    auto [it, fresh] = layer_index.emplace(label, rep.layers.size());
    if (fresh) rep.layers.push_back({.label = label});
    LayerSummary& L = rep.layers[it->second];
    ++L.compared;
    L.identical += c.identical;
    L.beyond += c.beyond;
    if (c.with_values) {
      L.any_values = true;
      L.min_cosine = std::min(L.min_cosine, c.cosine);
      L.max_rel_diff = std::max(L.max_rel_diff, c.rel_max_diff);
    }
    L.max_rel_rms = std::max(L.max_rel_rms, c.rel_rms);
    if (!c.identical && L.first_differing.empty()) L.first_differing = ra->name();
    if (c.beyond && L.first_beyond.empty()) L.first_beyond = ra->name();
    rep.comparisons.push_back(std::move(c));
  }
  if (rep.comparisons.empty()) {
    return make_error("%s and %s have no trace point in common (%zu and %zu records)",
                      ta.dir.c_str(), tb.dir.c_str(), ta.records.size(), tb.records.size());
  }
  return rep;
}

namespace {

nlohmann::ordered_json point_json(const Comparison& c) {
  nlohmann::ordered_json j;
  j["name"] = c.a.name();
  j["position"] = c.a.position;
  j["layer"] = c.a.layer;
  j["op"] = op_name(c.a.op);
  j["kind"] = c.a.kind == Kind::kF32 ? "f32" : "q8";
  j["identical"] = c.identical;
  j["beyond_tolerance"] = c.beyond;
  if (!c.reason.empty()) j["reason"] = c.reason;
  if (c.with_values) {
    j["cosine"] = c.cosine;
    j["max_abs_diff"] = c.max_abs_diff;
    j["rel_max_diff"] = c.rel_max_diff;
  }
  j["rms_a"] = c.a.stats.rms;
  j["rms_b"] = c.b.stats.rms;
  j["rel_rms_diff"] = c.rel_rms;
  return j;
}

std::string describe(const Comparison& c) {
  std::string s = c.a.name() + " (position " + std::to_string(c.a.position) + ", " +
                  (c.a.layer >= 0 ? "layer " + std::to_string(c.a.layer) + ", " : "") + "op " +
                  std::string(op_name(c.a.op)) +
                  (c.a.kind == Kind::kQ8 ? ", int8 codes of the BitLinear input" : "") + ")";
  if (c.a.kind == Kind::kQ8 && !c.identical) {
    s += c.a.blake3 != c.b.blake3 ? ": codes differ" : ": same codes, scales differ";
    if (c.a.grouping != c.b.grouping) s += " (grouping per_token vs q8_k)";
    s += ", dequantized rms " + fmt("%.9g", c.a.stats.rms) + " vs " + fmt("%.9g", c.b.stats.rms);
  } else if (c.with_values) {
    s += ": cosine " + fmt("%.6f", c.cosine) + ", max|diff| " + fmt("%.4g", c.max_abs_diff);
  } else {
    s += ": rms " + fmt("%.9g", c.a.stats.rms) + " vs " + fmt("%.9g", c.b.stats.rms);
  }
  return s;
}

}  // namespace

nlohmann::ordered_json to_json(const DiffReport& r) {
  nlohmann::ordered_json j;
  j["a"] = r.dir_a;
  j["b"] = r.dir_b;
  j["tolerance"] = {{"min_cosine", r.tol.min_cosine},
                    {"max_rel_diff", r.tol.max_rel_diff},
                    {"max_rel_rms", r.tol.max_rel_rms}};
  j["compared"] = r.comparisons.size();
  j["only_in_a"] = r.only_a;
  j["only_in_b"] = r.only_b;
  auto first = [&](const std::optional<size_t>& i) {
    return i ? point_json(r.comparisons[*i]) : nlohmann::ordered_json(nullptr);
  };
  j["token_ids_differ_from"] = r.token_mismatch ? nlohmann::ordered_json(*r.token_mismatch)
                                                : nlohmann::ordered_json(nullptr);
  j["identical"] = !r.first_differing.has_value();
  j["differs_beyond_tolerance"] = r.differs();
  j["first_difference"] = first(r.first_differing);
  j["first_f32_difference"] = first(r.first_differing_f32);
  j["first_beyond_tolerance"] = first(r.first_beyond);
  auto& layers = j["layers"] = nlohmann::ordered_json::array();
  for (const auto& L : r.layers) {
    nlohmann::ordered_json l;
    l["layer"] = L.label;
    l["compared"] = L.compared;
    l["identical"] = L.identical;
    l["beyond_tolerance"] = L.beyond;
    if (L.any_values) {
      l["min_cosine"] = L.min_cosine;
      l["max_rel_diff"] = L.max_rel_diff;
    }
    l["max_rel_rms_diff"] = L.max_rel_rms;
    l["first_difference"] = L.first_differing.empty() ? nlohmann::ordered_json(nullptr)
                                                      : nlohmann::ordered_json(L.first_differing);
    l["first_beyond_tolerance"] = L.first_beyond.empty() ? nlohmann::ordered_json(nullptr)
                                                         : nlohmann::ordered_json(L.first_beyond);
    layers.push_back(l);
  }
  return j;
}

std::string to_text(const DiffReport& r) {
  std::string s = "A: " + r.dir_a + "\nB: " + r.dir_b + "\n" +
                  std::to_string(r.comparisons.size()) + " points aligned by (position, layer, op)";
  if (r.only_a || r.only_b) {
    s += "; only in A: " + std::to_string(r.only_a) + ", only in B: " + std::to_string(r.only_b);
  }
  s += "\ntolerance: cosine >= " + fmt("%g", r.tol.min_cosine) +
       " and max|diff| <= " + fmt("%g", r.tol.max_rel_diff) +
       " x absmax (with values), relative rms difference <= " + fmt("%g", r.tol.max_rel_rms) +
       " (without)\n";
  if (r.token_mismatch) {
    s += "note: the token ids differ from position " + std::to_string(*r.token_mismatch) +
         " on: points from there on have different inputs\n";
  }
  s += "\n";
  if (!r.first_differing) {
    s += "no difference: every aligned point is bit-identical\n";
  } else {
    s += "first difference:        " + describe(r.comparisons[*r.first_differing]) + "\n";
    if (r.first_differing_f32 && r.first_differing_f32 != r.first_differing) {
      s += "first op output differs: " + describe(r.comparisons[*r.first_differing_f32]) + "\n";
    }
    if (r.first_beyond) {
      const auto& c = r.comparisons[*r.first_beyond];
      s += "first beyond tolerance:  " + describe(c) + " [" + c.reason + "]\n";
    } else {
      s += "no point differs beyond tolerance\n";
    }
  }
  s += "\n";
  char line[256];
  std::snprintf(line, sizeof line, "%-6s %8s %9s %6s %10s %12s %11s  %s\n", "layer", "compared",
                "identical", "beyond", "min_cos", "max_rel_diff", "max_rel_rms",
                "first difference");
  s += line;
  for (const auto& L : r.layers) {
    const std::string cos = L.any_values ? fmt("%.6f", L.min_cosine) : "-";
    const std::string rd = L.any_values ? fmt("%.3g", L.max_rel_diff) : "-";
    std::snprintf(line, sizeof line, "%-6s %8d %9d %6d %10s %12s %11.3g  %s\n", L.label.c_str(),
                  L.compared, L.identical, L.beyond, cos.c_str(), rd.c_str(), L.max_rel_rms,
                  L.first_differing.empty() ? "-" : L.first_differing.c_str());
    s += line;
  }
  s += r.differs() ? "\nresult: differs beyond tolerance\n"
                   : (r.first_differing ? "\nresult: within tolerance\n" : "\nresult: identical\n");
  return s;
}

}  // namespace bitnet::trace
