// Event type names and subscription patterns (the registry's matching:
// subscription_registry_test.cpp).

#include "relay/model/event_type.h"

#include <gtest/gtest.h>

namespace relay {
namespace event_type_test {

TEST(EventTypeTest, ValidTypes) {
  for (const std::string& type : std::vector<std::string>{"a", "meeting.completed", "calendar.sync_events", "A-Z:0_9.x", "..", "-",
                                 std::string(128, 'x')}) {
    EXPECT_TRUE(is_valid_event_type(type)) << type;
  }
  for (const std::string& type : std::vector<std::string>{"", std::string(129, 'x'), "meeting completed", "meeting/x", "meeting.*", "*",
                                 "é", std::string("a\0b", 3), "a\n", "a,b"}) {
    EXPECT_FALSE(is_valid_event_type(type)) << type;
  }
}

TEST(EventTypeTest, ValidPatterns) {
  for (const std::string& pattern : std::vector<std::string>{"*", "meeting.*", "meeting.bot.*", "meeting.completed", "a.*",
                                    std::string(128, 'x') + ".*"}) {
    EXPECT_TRUE(is_valid_event_pattern(pattern)) << pattern;
  }
  for (const std::string& pattern : std::vector<std::string>{"", ".*", "**", "*.*", "meeting*", "meeting.**", "meeting.*.x", "*.completed",
                                    "meeting .*", std::string(129, 'x') + ".*", "meeting.*.*"}) {
    EXPECT_FALSE(is_valid_event_pattern(pattern)) << pattern;
  }
}

TEST(EventTypeTest, PatternMatching) {
  EXPECT_TRUE(pattern_matches("*", "anything.at.all"));
  EXPECT_TRUE(pattern_matches("meeting.completed", "meeting.completed"));
  EXPECT_FALSE(pattern_matches("meeting.completed", "meeting.completed.x"));
  EXPECT_FALSE(pattern_matches("meeting.completed", "Meeting.completed"));

  EXPECT_TRUE(pattern_matches("meeting.*", "meeting.completed"));
  EXPECT_TRUE(pattern_matches("meeting.*", "meeting.bot.joined"));
  EXPECT_FALSE(pattern_matches("meeting.*", "meeting"));
  EXPECT_FALSE(pattern_matches("meeting.*", "meeting."));
  EXPECT_FALSE(pattern_matches("meeting.*", "meetings.completed"));
  EXPECT_FALSE(pattern_matches("meeting.*", "calendar.meeting.completed"));
  EXPECT_TRUE(pattern_matches("meeting.bot.*", "meeting.bot.joined"));
  EXPECT_FALSE(pattern_matches("meeting.bot.*", "meeting.completed"));
}

TEST(EventTypeTest, RelaysOwnTypesAreReservedAndReachOnlyPatternsThatNameThem) {
  EXPECT_TRUE(is_reserved_event_type("relay.delivery.dead"));
  EXPECT_TRUE(is_reserved_event_type("relay.x"));
  EXPECT_FALSE(is_reserved_event_type("relay"));
  EXPECT_FALSE(is_reserved_event_type("relayx.y"));
  EXPECT_FALSE(is_reserved_event_type("Relay.delivery.dead"));  // types are case-sensitive
  EXPECT_FALSE(is_reserved_event_type("meeting.relay.dead"));

  EXPECT_FALSE(pattern_matches("*", "relay.delivery.dead"));
  EXPECT_FALSE(pattern_matches("*", "relay.subscription.disabled"));
  EXPECT_TRUE(pattern_matches("*", "relayx.y"));
  EXPECT_TRUE(pattern_matches("relay.*", "relay.delivery.dead"));
  EXPECT_TRUE(pattern_matches("relay.delivery.*", "relay.delivery.dead"));
  EXPECT_TRUE(pattern_matches("relay.delivery.dead", "relay.delivery.dead"));
  EXPECT_FALSE(pattern_matches("relay.delivery.*", "relay.subscription.disabled"));
  // Patterns are "*", exact types or prefixes ending in ".*": none but a "relay." one reaches them.
  EXPECT_FALSE(is_valid_event_pattern("re*"));
  EXPECT_FALSE(is_valid_event_pattern("*.dead"));
}

}  // namespace event_type_test
}  // namespace relay
