#include "crossval/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

#include "crossval/multi.h"

namespace bitnet::crossval {

using nlohmann::json;

namespace {

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), f, v);
  return buf;
}

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&':
        o += "&amp;";
        break;
      case '<':
        o += "&lt;";
        break;
      case '>':
        o += "&gt;";
        break;
      case '"':
        o += "&quot;";
        break;
      default:
        o += c;
    }
  }
  return o;
}

std::string md_cell(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '|')
      o += "\\|";
    else if (c == '\n')
      o += ' ';
    else
      o += c;
  }
  return o;
}

// One cell of the references table: a case's verdict against one reference.
std::string reference_cell(const json& c) {
  if (c.at("passed").get<bool>()) return "pass";
  const json& d = c["first_divergence"];
  if (!d.is_object()) return "FAIL";
  return "FAIL: " + divergence_place(d);
}

// Several references: one column per reference, a row per case, then each case's attribution.
std::string multi_reference_markdown(const json& m) {
  std::ostringstream s;
  const json& refs = m["references"];
  s << "\n## References: " << (m.value("passed", false) ? "all pass" : "**not all pass**")
    << "\n\n| case |";
  for (const json& ref : refs) s << " " << md_cell(ref.value("label", std::string())) << " |";
  s << "\n|---|";
  for (size_t i = 0; i < refs.size(); ++i) s << "---|";
  s << "\n";
  const json& attribution = m["attribution"];
  for (size_t j = 0; j < attribution.size(); ++j) {
    s << "| " << md_cell(attribution[j].value("case", std::string())) << " |";
    for (const json& ref : refs) {
      const json& cases = ref["cases"];
      s << " " << (j < cases.size() ? md_cell(reference_cell(cases[j])) : "") << " |";
    }
    s << "\n";
  }
  s << "\n";
  for (const json& a : attribution)
    s << "- " << md_cell(a.value("case", std::string())) << ": "
      << md_cell(a.value("verdict", std::string())) << "\n";
  for (const json& ref : refs)
    s << "- " << md_cell(ref.value("label", std::string())) << ": "
      << ref.value("regime", std::string()) << " ("
      << md_cell(ref.value("regime_reason", std::string())) << ")\n";
  return s.str();
}

std::string multi_reference_html(const json& m) {
  std::ostringstream s;
  const json& refs = m["references"];
  s << "<h2>References: "
    << (m.value("passed", false) ? "<span class=\"pass\">all pass</span>"
                                 : "<span class=\"fail\">not all pass</span>")
    << "</h2>\n<table><tr><th>case</th>";
  for (const json& ref : refs) s << "<th>" << esc(ref.value("label", std::string())) << "</th>";
  s << "<th>attribution</th></tr>\n";
  const json& attribution = m["attribution"];
  for (size_t j = 0; j < attribution.size(); ++j) {
    s << "<tr><td class=\"l\">" << esc(attribution[j].value("case", std::string())) << "</td>";
    for (const json& ref : refs) {
      const json& cases = ref["cases"];
      const std::string cell = j < cases.size() ? reference_cell(cases[j]) : "";
      s << "<td class=\"l " << (cell == "pass" ? "pass" : "fail") << "\">" << esc(cell) << "</td>";
    }
    s << "<td class=\"l\">" << esc(attribution[j].value("verdict", std::string()))
      << "</td></tr>\n";
  }
  s << "</table>\n";
  return s.str();
}

std::string divergence_text(const json& d) {
  if (d.is_null()) return "none";
  std::string s = "position " + d.value("position", json(0)).dump();
  const int layer = d.value("layer", -1);
  if (layer >= 0) s += ", layer " + std::to_string(layer);
  s += ", op " + d.value("op", std::string("?"));
  s += " (" + d.value("classification", std::string()) + ")";
  return s;
}

// Colour for a relative difference: green when exactly 0, then a log scale to red.
std::string heat_colour(double rel, double tol) {
  if (rel <= 0) return "#1b7f3b";
  if (rel > tol) {
    const double t = std::clamp((std::log10(rel) - std::log10(tol)) / 4.0, 0.0, 1.0);
    const int r = 200 + static_cast<int>(55 * t), g = static_cast<int>(80 * (1 - t));
    char buf[16];
    std::snprintf(buf, sizeof(buf), "#%02x%02x20", r, g);
    return buf;
  }
  // Within tolerance: light green (tiny) to amber (at the tolerance).
  const double t = std::clamp((std::log10(rel) + 10.0) / (10.0 + std::log10(tol)), 0.0, 1.0);
  const int r = static_cast<int>(120 + 130 * t), g = static_cast<int>(200 - 40 * t), b = 90;
  char buf[16];
  std::snprintf(buf, sizeof(buf), "#%02x%02x%02x", r, g, b);
  return buf;
}

std::string svg_chart(const json& c, int n_layers, double tol) {
  const json& rows = c["positions"];
  const int n_pos = static_cast<int>(rows.size());
  std::map<std::pair<int, int>, double> heat;
  for (const json& h : c["op_heat"])
    heat[{h["position"].get<int>(), h["layer"].get<int>()}] = h["max_rel"].get<double>();
  const int cw = std::max(14, std::min(40, 900 / std::max(1, n_pos))), ch = 18, left = 90, top = 24;
  const int n_rows = n_layers + 2;  // blocks, head, logits
  const int width = std::max(left + cw * n_pos + 20, left + 6 * 90 + 20),
            height = top + ch * n_rows + 60;
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
    << "\" font-family=\"sans-serif\" font-size=\"11\" role=\"img\" aria-label=\"divergence "
       "chart\">\n";
  s << "<text x=\"" << left
    << "\" y=\"14\">position &#8594; (max relative op difference per layer)</text>\n";
  const json& fd = c["first_divergence"];
  for (int row = 0; row < n_rows; ++row) {
    const int layer = row < n_layers ? row : -1;
    const std::string label =
        row < n_layers ? "blk" + std::to_string(row) : (row == n_layers ? "head" : "logits top-1");
    const int y = top + row * ch;
    s << "<text x=\"4\" y=\"" << y + 13 << "\">" << label << "</text>\n";
    for (int p = 0; p < n_pos; ++p) {
      const int x = left + p * cw;
      std::string colour, title;
      if (row == n_layers + 1) {
        const bool ok = rows[p]["top1_match"].get<bool>();
        colour = ok ? (rows[p]["max_abs"].get<double>() == 0 ? "#1b7f3b" : "#8bc34a") : "#d32f2f";
        title = "position " + std::to_string(p) + ": cosine " +
                fmt("%.9f", rows[p]["cosine"].get<double>()) + ", max|diff| " +
                fmt("%.3g", rows[p]["max_abs"].get<double>()) + ", top-1 " +
                (ok ? "agrees" : "differs");
      } else {
        auto it = heat.find({p, layer});
        if (it == heat.end()) {
          colour = "#e0e0e0";
          title = label + " position " + std::to_string(p) + ": not traced";
        } else {
          colour = heat_colour(it->second, tol);
          title = label + " position " + std::to_string(p) + ": max rel " + fmt("%.3g", it->second);
        }
      }
      s << "<rect x=\"" << x << "\" y=\"" << y << "\" width=\"" << cw - 1 << "\" height=\""
        << ch - 1 << "\" fill=\"" << colour << "\"><title>" << esc(title) << "</title></rect>\n";
    }
  }
  if (!fd.is_null() && fd.value("kind", std::string()) == "op") {
    const int p = fd["position"].get<int>(), layer = fd["layer"].get<int>();
    const int row = layer >= 0 ? layer : n_layers;
    s << "<rect x=\"" << left + p * cw - 1 << "\" y=\"" << top + row * ch - 1 << "\" width=\""
      << cw + 1 << "\" height=\"" << ch + 1
      << "\" fill=\"none\" stroke=\"#000\" stroke-width=\"2\"/>\n";
  }
  for (int p = 0; p < n_pos; p += std::max(1, n_pos / 16)) {
    s << "<text x=\"" << left + p * cw + 2 << "\" y=\"" << top + n_rows * ch + 12 << "\">" << p
      << "</text>\n";
  }
  // Legend.
  const int ly = top + n_rows * ch + 26;
  const std::pair<const char*, std::string> legend[] = {{"identical", "#1b7f3b"},
                                                        {"1e-9", heat_colour(1e-9, tol)},
                                                        {"1e-6", heat_colour(1e-6, tol)},
                                                        {"tolerance", heat_colour(tol, tol)},
                                                        {"beyond", heat_colour(tol * 100, tol)},
                                                        {"not traced", "#e0e0e0"}};
  int lx = left;
  for (const auto& [name, colour] : legend) {
    s << "<rect x=\"" << lx << "\" y=\"" << ly << "\" width=\"12\" height=\"12\" fill=\"" << colour
      << "\"/>"
      << "<text x=\"" << lx + 16 << "\" y=\"" << ly + 10 << "\">" << name << "</text>\n";
    lx += 90;
  }
  s << "</svg>\n";
  return s.str();
}

// "exact (why)" or "tolerance (why): the thresholds" for a receipt's thresholds.
std::string regime_text(const json& r) {
  const json t = r.value("thresholds", json::object());
  const std::string why = t.value("regime_reason", std::string());
  if (t.value("regime", std::string("tolerance")) == "exact") {
    return "exact, any differing bit fails" + (why.empty() ? "" : " (" + why + ")");
  }
  std::string s = "tolerance";
  if (!why.empty()) s += " (" + why + ")";
  try {
    s += ": op max_rel " + fmt("%g", t["op"]["proj"]["max_rel"].get<double>()) +
         " (projections), logits cosine >= " + fmt("%g", t["logits"]["min_cosine"].get<double>()) +
         ", KL <= " + fmt("%g", t["logits"]["max_kl"].get<double>()) +
         (t["logits"]["top1"].get<bool>() ? ", top-1 agreeing" : "") +
         (t["flip"]["allow"].get<bool>() ? ", activation rounding flips allowed" : "");
  } catch (...) {
  }
  return s;
}

}  // namespace

std::string markdown_report(const json& r) {
  std::ostringstream s;
  const json& sum = r["summary"];
  s << "# bitnet " << r.value("kind", std::string("crossval")) << ": "
    << (sum.value("passed", false) ? "PASS" : "FAIL") << "\n\n";
  s << "- model: `" << r["model"].value("path", std::string()) << "` ("
    << r["model"].value("arch", std::string()) << ", "
    << r["model"].value("weight_type", std::string()) << ", sha256 "
    << r["model"].value("sha256", std::string()).substr(0, 16) << "...)\n";
  s << "- reference: " << r["reference"].value("version", std::string()) << ", "
    << r["reference"].value("api", std::string()) << " C API, CPU variant **"
    << r["reference"].value("cpu_variant", std::string()) << "** (`"
    << r["reference"].value("library", std::string()) << "`)\n";
  s << "- ours: kernels " << r["host"].value("kernel_variant", std::string()) << " on "
    << r["host"].value("cpu", std::string()) << "\n";
  // Receipts from before --head-type have no such setting: the file's head.
  const json ours =
      r.contains("settings") ? r["settings"].value("ours", json::object()) : json::object();
  if (const std::string head =
          ours.is_object() ? ours.value("head_type", std::string("file")) : "file";
      head != "file") {
    s << "- ours: **" << head << " LM head** (not exact, `--head-type " << head
      << "`): the logits metrics below are its accuracy cost against the reference's F16 head; the "
         "logits op itself is not held to the op tolerance\n";
  }
  s << "- positions: " << sum.value("positions", 0) << ", min cosine "
    << fmt("%.9f", sum.value("min_cosine", 0.0)) << ", max |diff| "
    << fmt("%.3g", sum.value("max_abs", 0.0)) << ", max KL "
    << fmt("%.3g", sum.value("max_kl", 0.0)) << ", top-1 agreement "
    << fmt("%.1f%%", 100 * sum.value("top1_agreement", 0.0)) << "\n";
  s << "- verdict regime: " << regime_text(r) << "\n";
  s << "- first divergence: " << divergence_text(sum["first_divergence"]) << "\n";
  s << "- replay: `" << r.value("replay", std::string()) << "`\n\n";
  s << "| case | prompt | tokens | positions | min cosine | max abs | top-1 | greedy | ops "
       "identical | result |\n";
  s << "|---|---|---|---|---|---|---|---|---|---|\n";
  for (const json& c : r["cases"]) {
    double mc = 1, ma = 0;
    int t1 = 0;
    for (const json& p : c["positions"]) {
      mc = std::min(mc, p["cosine"].get<double>());
      ma = std::max(ma, p["max_abs"].get<double>());
      t1 += p["top1_match"].get<bool>();
    }
    const json& g = c["generated"];
    s << "| " << c["id"].get<std::string>() << " | `" << md_cell(c["prompt"].get<std::string>())
      << "` | " << (c["token_ids"]["match"].get<bool>() ? "match" : "DIFFER") << " | "
      << c["positions"].size() << " | " << fmt("%.9f", mc) << " | " << fmt("%.3g", ma) << " | "
      << t1 << "/" << c["positions"].size() << " | "
      << (g["parts_at"].is_null() ? "identical" : "parts at " + g["parts_at"].dump()) << " | "
      << c["ops"]["identical"].get<int>() << "/" << c["ops"]["compared"].get<int>() << " | "
      << (c["passed"].get<bool>() ? "pass" : "**FAIL**") << " |\n";
  }
  s << "\n";
  for (const json& c : r["cases"]) {
    // A passing case whose ops differ says how replay explained them (its verdict counts them).
    const bool ops_differ = c["ops"].value("identical", 0) < c["ops"].value("compared", 0);
    if (!c["passed"].get<bool>() || !c["first_divergence"].is_null() || ops_differ) {
      s << "- " << c["id"].get<std::string>() << ": " << md_cell(c.value("verdict", std::string()))
        << "\n";
      if (c["first_divergence"].is_object() && c["first_divergence"].contains("detail")) {
        s << "  - " << md_cell(c["first_divergence"]["detail"].get<std::string>()) << "\n";
      }
    }
  }
  if (r.contains("multi_reference")) s << multi_reference_markdown(r["multi_reference"]);
  return s.str();
}

std::string html_report(const json& r) {
  std::ostringstream s;
  const json& sum = r["summary"];
  const bool passed = sum.value("passed", false);
  const int n_layers = r["model"].value("n_layers", 0);
  double tol = 1e-4;
  try {
    tol = r["thresholds"]["op"]["proj"]["max_rel"].get<double>();
  } catch (...) {
  }
  s << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>bitnet "
    << esc(r.value("kind", std::string("crossval"))) << " report</title>\n<style>"
    << "body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:"
       "8px 0}"
    << "td,th{border:1px solid #ccc;padding:3px "
       "8px;font-size:13px;text-align:right}th{background:#f3f3f3}"
    << "td.l{text-align:left}.pass{color:#1b7f3b;font-weight:bold}.fail{color:#c62828;font-weight:"
       "bold}"
    << "code{background:#f5f5f5;padding:1px 4px}</style></head><body>\n";
  s << "<h1>bitnet " << esc(r.value("kind", std::string())) << ": <span class=\""
    << (passed ? "pass\">PASS" : "fail\">FAIL") << "</span></h1>\n<ul>\n";
  s << "<li>model: <code>" << esc(r["model"].value("path", std::string())) << "</code> ("
    << esc(r["model"].value("arch", std::string())) << ", "
    << esc(r["model"].value("weight_type", std::string())) << ", " << n_layers << " layers)</li>\n";
  s << "<li>reference: " << esc(r["reference"].value("version", std::string()))
    << ", CPU variant <b>" << esc(r["reference"].value("cpu_variant", std::string()))
    << "</b></li>\n";
  s << "<li>verdict regime: " << esc(regime_text(r)) << "</li>\n";
  s << "<li>first divergence: " << esc(divergence_text(sum["first_divergence"])) << "</li>\n";
  s << "<li>positions " << sum.value("positions", 0) << ", min cosine "
    << fmt("%.9f", sum.value("min_cosine", 0.0)) << ", max |diff| "
    << fmt("%.3g", sum.value("max_abs", 0.0)) << "</li>\n";
  s << "<li>replay: <code>" << esc(r.value("replay", std::string())) << "</code></li>\n</ul>\n";
  for (const json& c : r["cases"]) {
    s << "<h2>" << esc(c["id"].get<std::string>()) << ": <code>"
      << esc(c["prompt"].get<std::string>()) << "</code> "
      << (c["passed"].get<bool>() ? "<span class=\"pass\">pass</span>"
                                  : "<span class=\"fail\">FAIL</span>")
      << "</h2>\n";
    s << "<p>" << esc(c.value("verdict", std::string())) << "</p>\n";
    if (c["token_ids"]["match"].get<bool>()) s << svg_chart(c, n_layers, tol);
    s << "<table><tr><th>pos</th><th>token</th><th>cosine</th><th>L2</th><th>max "
         "|diff|</th><th>MSE</th>"
      << "<th>KL</th><th>top-1</th><th>top-5</th></tr>\n";
    for (const json& p : c["positions"]) {
      s << "<tr><td>" << p["position"].get<int>() << (p["decode"].get<bool>() ? " (decode)" : "")
        << "</td><td>" << p["token"].get<int>() << "</td><td>"
        << fmt("%.9f", p["cosine"].get<double>()) << "</td><td>"
        << fmt("%.3g", p["l2"].get<double>()) << "</td><td>"
        << fmt("%.3g", p["max_abs"].get<double>()) << "</td><td>"
        << fmt("%.3g", p["mse"].get<double>()) << "</td><td>" << fmt("%.3g", p["kl"].get<double>())
        << "</td><td>" << (p["top1_match"].get<bool>() ? "agree" : "<b>differ</b>") << "</td><td>"
        << p["top5_overlap"].get<int>() << "/5</td></tr>\n";
    }
    s << "</table>\n";
  }
  if (r.contains("multi_reference")) s << multi_reference_html(r["multi_reference"]);
  s << "</body></html>\n";
  return s.str();
}

}  // namespace bitnet::crossval
