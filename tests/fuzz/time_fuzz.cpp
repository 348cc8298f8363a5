// Fuzz target: parse_time on arbitrary text (the since/until query parameters). Properties:
// no crash; an accepted time from 1970 to 9999 formats as RFC 3339 and parses back the same.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "relay/core/time.h"
#include "tests/fuzz/fuzz_check.h"

using relay::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto t = relay::parse_time(text);
  if (!t) return 0;
  constexpr relay::UnixMillis kYear9999End = 253'402'300'799'999;
  if (*t < 0 || *t > kYear9999End) return 0;
  const std::string formatted = relay::format_time(*t);
  check(formatted.size() == 24 && formatted.back() == 'Z', "RFC 3339 with milliseconds");
  check(relay::parse_time(formatted) == *t, "format_time round-trips");
  return 0;
}
