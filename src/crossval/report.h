// Human-readable reports, built from a receipt (receipt.h) so they can be regenerated later:
//  - Markdown: verdict, reference identity, per-case table and first divergence;
//  - HTML: the same plus, per case, a per-layer x per-position divergence chart (inline SVG:
//    colour = log10 of the largest relative op difference in that layer at that position, green
//    when bit-identical, red beyond tolerance; the first divergence is outlined) and a logits
//    row (top-1 agreement). Self-contained: no scripts, fonts or other network assets.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace bitnet::crossval {

std::string markdown_report(const nlohmann::json& receipt);
std::string html_report(const nlohmann::json& receipt);

}  // namespace bitnet::crossval
