// GGUF metadata values: the 13 value types of the format, arrays of any of them (nested too).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace bitnet::gguf {

enum class ValueType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};
constexpr uint32_t kValueTypeCount = 13;
std::string_view value_type_name(ValueType t);

class Value;

struct Array {
  ValueType element_type = ValueType::U8;
  std::vector<Value> items;
  // Elements read but not kept (File::open with OpenOptions::max_array_items): the array has
  // items.size() + elided elements in the file.
  uint64_t elided = 0;
  uint64_t size() const;  // defined below, once Value is complete
};

class Value {
 public:
  using Storage = std::variant<uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, float, bool,
                               std::string, Array, uint64_t, int64_t, double>;

  Value() : v_(uint8_t{0}) {}
  template <class T>
  explicit Value(T v) : v_(std::move(v)) {}
  explicit Value(const char* s) : v_(std::string(s)) {}

  // Index of the variant equals the GGUF type id.
  ValueType type() const { return static_cast<ValueType>(v_.index()); }
  const Storage& storage() const { return v_; }
  Storage& mutable_storage() { return v_; }  // to edit a value in place (arrays, mostly)

  template <class T>
  const T* get_if() const {
    return std::get_if<T>(&v_);
  }
  const std::string* as_string() const { return get_if<std::string>(); }
  const Array* as_array() const { return get_if<Array>(); }
  // Any integer type that fits (bool excluded); nullopt otherwise.
  std::optional<int64_t> as_int() const;
  std::optional<uint64_t> as_uint() const;
  // f32, f64 or an integer, as a double.
  std::optional<double> as_number() const;
  std::optional<bool> as_bool() const;

  // Short human-readable rendering; arrays longer than `max_items` are summarised.
  std::string to_display(size_t max_items = 8) const;

 private:
  Storage v_;
};

struct KeyValue {
  std::string key;
  Value value;
};

inline uint64_t Array::size() const { return items.size() + elided; }

// Helpers to build arrays for the writer.
Value make_string_array(const std::vector<std::string>& items);
Value make_f32_array(const std::vector<float>& items);
Value make_i32_array(const std::vector<int32_t>& items);

}  // namespace bitnet::gguf
