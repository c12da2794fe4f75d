// Receipts come back from disk and other machines (`bitnet receipt verify`): any JSON must give a
// report, never a crash.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "crossval/receipt.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const nlohmann::json j = nlohmann::json::parse(data, data + size, nullptr, false);
  if (j.is_discarded()) return 0;
  const auto report = bitnet::crossval::verify_receipt(j, false);
  if (!report.ok && report.problems.empty()) __builtin_trap();  // a failure names its problem
  return 0;
}
