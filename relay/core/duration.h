#pragma once
// Durations as written in flags and JSON: an integer followed by ms, s, m, h or d ("15s", "1h").

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace relay {

// Milliseconds, or nullopt when `text` is not a non-negative integer with a known suffix.
std::optional<std::int64_t> parse_duration_ms(std::string_view text);

// The shortest exact spelling of `ms`: 3600000 -> "1h", 1500 -> "1500ms", 0 -> "0s".
std::string format_duration(std::int64_t ms);

}  // namespace relay
