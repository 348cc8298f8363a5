#pragma once
// Times as text: relay stores and computes with Unix milliseconds (core/clock.h) and shows them
// as RFC 3339 UTC strings in the API and the logs. Formatting and parsing live together so that
// one always reads what the other writes.

#include <optional>
#include <string>
#include <string_view>

#include "relay/core/clock.h"

namespace relay {

// RFC 3339 UTC with milliseconds: "2026-11-26T10:00:00.123Z".
std::string format_time(UnixMillis t);

// RFC 3339 / ISO 8601 UTC time ("2026-11-26T10:00:00Z", fraction optional) or Unix
// milliseconds as digits.
std::optional<UnixMillis> parse_time(std::string_view text);

}  // namespace relay
