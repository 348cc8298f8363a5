#pragma once
// Event type names and the subscription patterns that select them (spec section 2).

#include <string_view>

namespace relay {

// 1-128 characters of [A-Za-z0-9._:-].
bool is_valid_event_type(std::string_view type);
// A tenant name (spec section 6) has the same alphabet and length as a type.
bool is_valid_tenant(std::string_view tenant);
// The types of relay's own operational events ("relay.delivery.dead") begin with this prefix
// (spec section 6): producers may not publish them, and "*" does not match them.
inline constexpr std::string_view kReservedTypePrefix = "relay.";
bool is_reserved_event_type(std::string_view type);
// An exact type, "*", or a type prefix ending in ".*" ("meeting.*").
bool is_valid_event_pattern(std::string_view pattern);
// "meeting.*" matches "meeting.completed" and "meeting.bot.joined" but not "meeting". "*" matches
// every type but the reserved ones: those reach only a pattern that names them ("relay.*",
// "relay.delivery.dead"). Prefix patterns always end in ".*", so no pattern other than one that
// begins with "relay." can match a reserved type.
bool pattern_matches(std::string_view pattern, std::string_view type);

}  // namespace relay
