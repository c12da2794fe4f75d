// Result<T>: a value or a one-line error message. Library code returns these; only the CLI
// (and later the server) turns them into exit codes. No exceptions cross module boundaries.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <variant>

namespace bitnet {

struct Error {
  std::string message;
};

// Builds an Error from printf-style arguments (one line, no trailing newline).
Error make_error(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }

  T& value() & { return checked(); }
  const T& value() const& { return const_cast<Result*>(this)->checked(); }
  T&& value() && { return std::move(checked()); }
  T& operator*() & { return checked(); }
  const T& operator*() const& { return const_cast<Result*>(this)->checked(); }
  T* operator->() { return &checked(); }
  const T* operator->() const { return &const_cast<Result*>(this)->checked(); }

  const Error& error() const { return std::get<Error>(v_); }
  const std::string& message() const { return error().message; }

 private:
  T& checked() {
    if (!ok()) {
      // A programming error (value() on a failed Result), not bad input: fail loudly.
      std::fprintf(stderr, "bitnet: internal error: value() on error result: %s\n",
                   std::get<Error>(v_).message.c_str());
      std::abort();
    }
    return std::get<T>(v_);
  }
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : err_(std::move(error)), failed_(true) {}  // NOLINT

  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return err_; }
  const std::string& message() const { return err_.message; }

 private:
  Error err_;
  bool failed_ = false;
};

using Status = Result<void>;

}  // namespace bitnet

// Propagates an error from an expression returning Result<...> / Status.
#define BITNET_CONCAT_INNER(a, b) a##b
#define BITNET_CONCAT(a, b) BITNET_CONCAT_INNER(a, b)
#define BITNET_TRY(expr)                                             \
  do {                                                               \
    auto&& bitnet_try_result_ = (expr);                              \
    if (!bitnet_try_result_.ok()) return bitnet_try_result_.error(); \
  } while (0)
// BITNET_ASSIGN_OR_RETURN(auto x, f()): declares x from f()'s value or returns its error.
#define BITNET_ASSIGN_OR_RETURN(decl, expr) \
  BITNET_ASSIGN_OR_RETURN_IMPL(BITNET_CONCAT(bitnet_aor_, __LINE__), decl, expr)
#define BITNET_ASSIGN_OR_RETURN_IMPL(tmp, decl, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return tmp.error();                  \
  decl = std::move(tmp).value()
