// Fuzz target: parse_query on an arbitrary request target. Property: no crash, and an error
// is invalid_field.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "relay/api/request_parsing.h"
#include "tests/fuzz/fuzz_check.h"

using relay::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view target(reinterpret_cast<const char*>(data), size);
  const auto query = relay::parse_query(target);
  if (!query.ok()) check(query.error().code == relay::Errc::invalid_field, "errors are invalid_field");
  return 0;
}
