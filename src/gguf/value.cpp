#include "gguf/value.h"

#include <array>
#include <cstdio>
#include <limits>

namespace bitnet::gguf {

std::string_view value_type_name(ValueType t) {
  static constexpr std::array<std::string_view, kValueTypeCount> kNames = {
      "u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
      "bool", "string", "array", "u64", "i64", "f64"};
  auto i = static_cast<uint32_t>(t);
  return i < kValueTypeCount ? kNames[i] : std::string_view("?");
}

std::optional<int64_t> Value::as_int() const {
  return std::visit(
      [](const auto& x) -> std::optional<int64_t> {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, bool> || !std::is_integral_v<T>) {
          return std::nullopt;
        } else if constexpr (std::is_same_v<T, uint64_t>) {
          if (x > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
          return static_cast<int64_t>(x);
        } else {
          return static_cast<int64_t>(x);
        }
      },
      v_);
}

std::optional<uint64_t> Value::as_uint() const {
  auto i = as_int();
  if (i) return *i < 0 ? std::nullopt : std::optional<uint64_t>(static_cast<uint64_t>(*i));
  if (const auto* u = get_if<uint64_t>()) return *u;
  return std::nullopt;
}

std::optional<double> Value::as_number() const {
  if (const auto* f = get_if<float>()) return *f;
  if (const auto* d = get_if<double>()) return *d;
  if (auto i = as_int()) return static_cast<double>(*i);
  if (auto u = as_uint()) return static_cast<double>(*u);
  return std::nullopt;
}

std::optional<bool> Value::as_bool() const {
  if (const auto* b = get_if<bool>()) return *b;
  return std::nullopt;
}

namespace {

std::string quote(const std::string& s, size_t max_len) {
  std::string out = "\"";
  size_t n = 0;
  for (unsigned char c : s) {
    if (n++ >= max_len) {
      out += "...";
      break;
    }
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

}  // namespace

std::string Value::to_display(size_t max_items) const {
  return std::visit(
      [&](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::string>) {
          return quote(x, 120);
        } else if constexpr (std::is_same_v<T, Array>) {
          std::string out = "[" + std::string(value_type_name(x.element_type)) + " x " +
                            std::to_string(x.size()) + "]";
          if (x.elided > 0) return out + " (not loaded)";
          if (x.items.empty()) return out;
          out += " [";
          for (size_t i = 0; i < x.items.size() && i < max_items; ++i) {
            if (i) out += ", ";
            out += x.items[i].to_display(max_items);
          }
          if (x.items.size() > max_items) out += ", ...";
          return out + "]";
        } else if constexpr (std::is_same_v<T, bool>) {
          return x ? "true" : "false";
        } else if constexpr (std::is_floating_point_v<T>) {
          char buf[64];
          std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(x));
          return buf;
        } else {
          return std::to_string(x);
        }
      },
      v_);
}

Value make_string_array(const std::vector<std::string>& items) {
  Array a{ValueType::STRING, {}};
  a.items.reserve(items.size());
  for (const auto& s : items) a.items.emplace_back(s);
  return Value(std::move(a));
}

Value make_f32_array(const std::vector<float>& items) {
  Array a{ValueType::F32, {}};
  a.items.reserve(items.size());
  for (float f : items) a.items.emplace_back(f);
  return Value(std::move(a));
}

Value make_i32_array(const std::vector<int32_t>& items) {
  Array a{ValueType::I32, {}};
  a.items.reserve(items.size());
  for (int32_t i : items) a.items.emplace_back(i);
  return Value(std::move(a));
}

}  // namespace bitnet::gguf
