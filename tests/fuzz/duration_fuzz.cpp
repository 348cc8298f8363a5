// Fuzz target: parse_duration_ms on arbitrary text. Properties: no crash; an accepted duration
// is non-negative, the text is digits and a known unit, and format_duration spells it back to
// the same number of milliseconds.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "relay/core/duration.h"
#include "tests/fuzz/fuzz_check.h"

using relay::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto ms = relay::parse_duration_ms(text);
  if (!ms) return 0;
  check(*ms >= 0, "durations are non-negative");
  check(!text.empty() && text.front() >= '0' && text.front() <= '9', "a duration starts with a digit");
  check(text.ends_with("ms") || text.ends_with('s') || text.ends_with('m') || text.ends_with('h') ||
            text.ends_with('d'),
        "a duration ends with its unit");
  check(relay::parse_duration_ms(relay::format_duration(*ms)) == *ms, "format_duration round-trips");
  return 0;
}
