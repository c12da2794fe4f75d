#include "core/result.h"

#include <cstdarg>

namespace bitnet {

Error make_error(const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  std::string s(buf);
  // Errors are one line: fold any newline that slipped in from a formatted value.
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return Error{std::move(s)};
}

}  // namespace bitnet
