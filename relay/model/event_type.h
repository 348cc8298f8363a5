#pragma once
// Event type names and the subscription patterns that select them (spec section 2).

#include <string_view>

namespace relay {

// 1-128 characters of [A-Za-z0-9._:-].
bool is_valid_event_type(std::string_view type);
// A tenant name (spec section 6) has the same alphabet and length as a type.
bool is_valid_tenant(std::string_view tenant);
// An exact type, "*", or a type prefix ending in ".*" ("meeting.*").
bool is_valid_event_pattern(std::string_view pattern);
// "meeting.*" matches "meeting.completed" and "meeting.bot.joined" but not "meeting".
bool pattern_matches(std::string_view pattern, std::string_view type);

}  // namespace relay
