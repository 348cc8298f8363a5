// Event type names, subscription patterns, and the subscription registry that matches
// events against them at ingest.

#include "relay/model/event_type.h"

#include <gtest/gtest.h>

#include <thread>

#include "relay/subscriptions/subscription_registry.h"

namespace relay {
namespace {

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

Subscription sub(std::string id, std::vector<std::string> patterns, bool enabled = true) {
  Subscription s;
  s.id = std::move(id);
  s.event_types = std::move(patterns);
  s.enabled = enabled;
  return s;
}

std::vector<std::string> matching_ids(const SubscriptionSet& set, std::string_view type) {
  std::vector<std::string> out;
  for (const auto& s : set.matching(type)) out.push_back(s->id);
  return out;
}

TEST(SubscriptionRegistryTest, MatchesEnabledSubscriptionsInIdOrder) {
  SubscriptionRegistry registry({sub("sub_3", {"meeting.*"}), sub("sub_1", {"*"}),
                                 sub("sub_2", {"calendar.sync", "meeting.completed"}),
                                 sub("sub_4", {"*"}, /*enabled=*/false)});
  const auto set = registry.snapshot();
  EXPECT_EQ(matching_ids(*set, "meeting.completed"), (std::vector<std::string>{"sub_1", "sub_2", "sub_3"}));
  EXPECT_EQ(matching_ids(*set, "meeting.started"), (std::vector<std::string>{"sub_1", "sub_3"}));
  EXPECT_EQ(matching_ids(*set, "calendar.sync"), (std::vector<std::string>{"sub_1", "sub_2"}));
  EXPECT_EQ(matching_ids(*set, "other"), (std::vector<std::string>{"sub_1"}));
  // Disabled subscriptions match nothing but can still be found.
  ASSERT_NE(set->find("sub_4"), nullptr);
  EXPECT_FALSE(set->find("sub_4")->enabled);
  EXPECT_EQ(set->find("sub_9"), nullptr);
  EXPECT_EQ(set->all().size(), 4u);
}

TEST(SubscriptionRegistryTest, SnapshotsAreImmutable) {
  SubscriptionRegistry registry({sub("sub_1", {"a.*"})});
  const auto before = registry.snapshot();
  registry.upsert(sub("sub_2", {"a.b"}));
  registry.upsert(sub("sub_1", {"c.*"}));
  const auto middle = registry.snapshot();
  registry.erase("sub_2");
  registry.erase("sub_absent");
  const auto after = registry.snapshot();

  EXPECT_EQ(matching_ids(*before, "a.b"), (std::vector<std::string>{"sub_1"}));
  EXPECT_EQ(matching_ids(*middle, "a.b"), (std::vector<std::string>{"sub_2"}));
  EXPECT_EQ(matching_ids(*middle, "c.d"), (std::vector<std::string>{"sub_1"}));
  EXPECT_TRUE(matching_ids(*after, "a.b").empty());
  EXPECT_EQ(after->all().size(), 1u);
  EXPECT_EQ(before->all().size(), 1u);
}

TEST(SubscriptionRegistryTest, ConcurrentReadersAndWritersAgree) {
  SubscriptionRegistry registry({});
  constexpr int kWrites = 500;
  std::thread writer([&] {
    for (int i = 0; i < kWrites; ++i) registry.upsert(sub("sub_" + std::to_string(i), {"*"}));
  });
  std::size_t last = 0;
  while (last < kWrites) {
    const auto set = registry.snapshot();
    const auto n = set->matching("x").size();
    ASSERT_GE(n, last);  // snapshots only grow while only upserts happen
    ASSERT_EQ(n, set->all().size());
    last = n;
  }
  writer.join();
}

}  // namespace
}  // namespace relay
