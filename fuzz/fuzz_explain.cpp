// `bitnet crossval --explain POS/LAYER/OP` takes its argument from the command line: any bytes
// must parse to a traced point or give an error naming the argument, never a crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "crossval/crossval.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string arg(reinterpret_cast<const char*>(data), size);
  const auto e = bitnet::crossval::parse_explain(arg);
  if (!e.ok()) {
    if (e.message().find("--explain") == std::string::npos) __builtin_trap();  // names the flag
    return 0;
  }
  const auto [pos, layer, op] = *e;
  // A parsed point is a real one: a position, and a layer exactly when the op is a block op.
  if (pos < 0 || (layer >= 0) != bitnet::trace::is_block_op(op)) __builtin_trap();
  return 0;
}
