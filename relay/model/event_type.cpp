#include "relay/model/event_type.h"

#include <algorithm>

namespace relay {

namespace {

bool is_type_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == ':' || c == '-';
}

}  // namespace

bool is_valid_tenant(std::string_view tenant) { return is_valid_event_type(tenant); }

bool is_valid_event_type(std::string_view type) {
  return !type.empty() && type.size() <= 128 && std::all_of(type.begin(), type.end(), is_type_char);
}

bool is_reserved_event_type(std::string_view type) { return type.starts_with(kReservedTypePrefix); }

bool is_valid_event_pattern(std::string_view pattern) {
  if (pattern == "*") return true;
  if (pattern.size() >= 2 && pattern.substr(pattern.size() - 2) == ".*") {
    return is_valid_event_type(pattern.substr(0, pattern.size() - 2));
  }
  return is_valid_event_type(pattern);
}

bool pattern_matches(std::string_view pattern, std::string_view type) {
  if (pattern == "*") return !is_reserved_event_type(type);
  if (pattern.size() >= 2 && pattern.substr(pattern.size() - 2) == ".*") {
    const std::string_view prefix = pattern.substr(0, pattern.size() - 1);  // keeps the dot
    return type.size() > prefix.size() && type.substr(0, prefix.size()) == prefix;
  }
  return pattern == type;
}

}  // namespace relay
