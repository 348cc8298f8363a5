// The subscription registry: which subscriptions an event reaches (tenant, event-type patterns,
// payload filter), kept right through creates, changes and deletes, and the listing's pages.

#include "relay/subscriptions/subscription_registry.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace relay {
namespace subscription_registry_test {

Subscription sub(std::string id, std::vector<std::string> patterns, std::string tenant = "", std::string filter = "",
                 bool enabled = true) {
  Subscription s;
  s.id = std::move(id);
  s.event_types = std::move(patterns);
  s.tenant = std::move(tenant);
  s.filter = std::move(filter);
  s.enabled = enabled;
  return s;
}

std::vector<std::string> matching_ids(const SubscriptionRegistry& registry, std::string_view type,
                                      std::string_view tenant = "", std::string_view payload = "{}") {
  std::vector<std::string> out;
  for (const auto& s : registry.matching(RoutedEvent{tenant, type, payload})) out.push_back(s->id);
  return out;
}

std::vector<std::string> page_ids(const SubscriptionRegistry::Page& page) {
  std::vector<std::string> out;
  for (const auto& s : page.items) out.push_back(s->id);
  return out;
}

using Ids = std::vector<std::string>;

TEST(SubscriptionRegistryTest, MatchesEnabledSubscriptionsInIdOrder) {
  SubscriptionRegistry registry({sub("sub_3", {"meeting.*"}), sub("sub_1", {"*"}),
                                 sub("sub_2", {"calendar.sync", "meeting.completed"}),
                                 sub("sub_4", {"*"}, "", "", /*enabled=*/false)});
  EXPECT_EQ(matching_ids(registry, "meeting.completed"), (Ids{"sub_1", "sub_2", "sub_3"}));
  EXPECT_EQ(matching_ids(registry, "meeting.started"), (Ids{"sub_1", "sub_3"}));
  EXPECT_EQ(matching_ids(registry, "calendar.sync"), (Ids{"sub_1", "sub_2"}));
  EXPECT_EQ(matching_ids(registry, "other"), (Ids{"sub_1"}));
  // Disabled subscriptions match nothing but can still be found.
  ASSERT_NE(registry.find("sub_4"), nullptr);
  EXPECT_FALSE(registry.find("sub_4")->enabled);
  EXPECT_EQ(registry.find("sub_9"), nullptr);
  EXPECT_EQ(registry.size(), 4u);
}

TEST(SubscriptionRegistryTest, PatternsMatchAsPatternMatchesSays) {
  SubscriptionRegistry registry({sub("sub_1", {"meeting.*"}), sub("sub_2", {"meeting.bot.*"}),
                                 sub("sub_3", {"meeting"}), sub("sub_4", {"a..*"}),
                                 // Listed under several patterns that all match: delivered once.
                                 sub("sub_5", {"meeting.*", "meeting.bot.joined", "*", "meeting.*"})});
  EXPECT_EQ(matching_ids(registry, "meeting.bot.joined"), (Ids{"sub_1", "sub_2", "sub_5"}));
  EXPECT_EQ(matching_ids(registry, "meeting.completed"), (Ids{"sub_1", "sub_5"}));
  // A prefix pattern needs at least one character after its dot.
  EXPECT_EQ(matching_ids(registry, "meeting"), (Ids{"sub_3", "sub_5"}));
  EXPECT_EQ(matching_ids(registry, "meeting."), (Ids{"sub_5"}));
  EXPECT_EQ(matching_ids(registry, "meeting.bot."), (Ids{"sub_1", "sub_5"}));
  EXPECT_EQ(matching_ids(registry, "a..b"), (Ids{"sub_4", "sub_5"}));
  EXPECT_EQ(matching_ids(registry, "meetings.x"), (Ids{"sub_5"}));
}

TEST(SubscriptionRegistryTest, ATenantsEventsReachOnlyItsOwnAndPlatformWideSubscriptions) {
  SubscriptionRegistry registry({sub("sub_a1", {"*"}, "acme"), sub("sub_a2", {"meeting.*"}, "acme"),
                                 sub("sub_b1", {"*"}, "globex"), sub("sub_b2", {"meeting.completed"}, "globex"),
                                 sub("sub_p1", {"*"}), sub("sub_p2", {"meeting.*"})});
  EXPECT_EQ(matching_ids(registry, "meeting.completed", "acme"), (Ids{"sub_a1", "sub_a2", "sub_p1", "sub_p2"}));
  EXPECT_EQ(matching_ids(registry, "meeting.completed", "globex"), (Ids{"sub_b1", "sub_b2", "sub_p1", "sub_p2"}));
  EXPECT_EQ(matching_ids(registry, "calendar.update", "globex"), (Ids{"sub_b1", "sub_p1"}));
  // A tenant with no subscription of its own: only the platform-wide ones.
  EXPECT_EQ(matching_ids(registry, "meeting.completed", "initech"), (Ids{"sub_p1", "sub_p2"}));
  // An event without a tenant belongs to no tenant: tenant-scoped subscriptions do not get it.
  EXPECT_EQ(matching_ids(registry, "meeting.completed"), (Ids{"sub_p1", "sub_p2"}));
  // Tenant names are compared exactly.
  EXPECT_EQ(matching_ids(registry, "meeting.completed", "Acme"), (Ids{"sub_p1", "sub_p2"}));
}

TEST(SubscriptionRegistryTest, OperationalEventsReachOnlyPatternsThatNameThemAndKeepTheirTenant) {
  SubscriptionRegistry registry({sub("sub_1", {"*"}), sub("sub_2", {"relay.*"}), sub("sub_3", {"relay.delivery.*"}),
                                 sub("sub_4", {"relay.delivery.dead"}), sub("sub_5", {"*", "relay.subscription.*"}),
                                 sub("sub_6", {"relay.*"}, "acme"), sub("sub_7", {"*"}, "acme"),
                                 sub("sub_8", {"relay.*"}, "globex")});
  EXPECT_EQ(matching_ids(registry, "relay.delivery.dead"), (Ids{"sub_2", "sub_3", "sub_4"}));
  EXPECT_EQ(matching_ids(registry, "relay.subscription.disabled"), (Ids{"sub_2", "sub_5"}));
  // A tenant's own relay.* subscription sees only its tenant's; `*` still sees none of them.
  EXPECT_EQ(matching_ids(registry, "relay.delivery.dead", "acme"), (Ids{"sub_2", "sub_3", "sub_4", "sub_6"}));
  EXPECT_EQ(matching_ids(registry, "relay.subscription.disabled", "globex"), (Ids{"sub_2", "sub_5", "sub_8"}));
  // Other types are unaffected.
  EXPECT_EQ(matching_ids(registry, "meeting.completed", "acme"), (Ids{"sub_1", "sub_5", "sub_7"}));
  EXPECT_EQ(matching_ids(registry, "relayx.y"), (Ids{"sub_1", "sub_5"}));
}

TEST(SubscriptionRegistryTest, ManyTenantsStayApart) {
  std::vector<Subscription> subs;
  for (int i = 0; i < 2000; ++i) {
    char id[16];
    std::snprintf(id, sizeof id, "sub_%05d", i);
    subs.push_back(sub(id, {"*"}, "tenant-" + std::to_string(i)));
  }
  SubscriptionRegistry registry(std::move(subs));
  registry.upsert(sub("sub_99999", {"booking.*"}));
  EXPECT_EQ(matching_ids(registry, "booking.created", "tenant-1234"), (Ids{"sub_01234", "sub_99999"}));
  EXPECT_EQ(matching_ids(registry, "meeting.completed", "tenant-7"), (Ids{"sub_00007"}));
  EXPECT_TRUE(matching_ids(registry, "meeting.completed").empty());
}

TEST(SubscriptionRegistryTest, FiltersHoldOnTypeAndPayload) {
  SubscriptionRegistry registry({
      // Recall-style: one calendar's events.
      sub("sub_1", {"calendar.*"}, "", R"({"payload.data.calendar_id":"cal_42"})"),
      // A booking app's "selected event types".
      sub("sub_2", {"*"}, "", R"({"payload.eventType":{"$in":["BOOK","RESCHEDULE"]}})"),
      // Type only: never needs the payload.
      sub("sub_3", {"*"}, "", R"({"type":{"$prefix":"calendar."}})"),
      sub("sub_4", {"*"}),
  });
  EXPECT_EQ(matching_ids(registry, "calendar.update", "", R"({"data":{"calendar_id":"cal_42"}})"),
            (Ids{"sub_1", "sub_3", "sub_4"}));
  EXPECT_EQ(matching_ids(registry, "calendar.update", "", R"({"data":{"calendar_id":"cal_7"}})"),
            (Ids{"sub_3", "sub_4"}));
  EXPECT_EQ(matching_ids(registry, "booking", "", R"({"eventType":"RESCHEDULE"})"), (Ids{"sub_2", "sub_4"}));
  EXPECT_EQ(matching_ids(registry, "booking", "", R"({"eventType":"CANCEL"})"), (Ids{"sub_4"}));
  // A payload that is no object leaves every payload path missing.
  EXPECT_EQ(matching_ids(registry, "calendar.update", "", "[1,2]"), (Ids{"sub_3", "sub_4"}));
}

TEST(SubscriptionRegistryTest, AStoredFilterThatDoesNotCompileMatchesNothing) {
  SubscriptionRegistry registry({sub("sub_1", {"*"}, "", R"({"payload.n":{"$regex":"x"}})"),
                                 sub("sub_2", {"*"}, "", "not json"), sub("sub_3", {"*"})});
  EXPECT_EQ(matching_ids(registry, "a", "", R"({"n":"x"})"), (Ids{"sub_3"}));
  EXPECT_NE(registry.find("sub_1"), nullptr);  // still listed, so it can be fixed or deleted
}

TEST(SubscriptionRegistryTest, ChangesKeepTheIndexRight) {
  SubscriptionRegistry registry({sub("sub_1", {"a.*"}), sub("sub_2", {"a.b"})});
  // Patterns replaced: the old ones no longer match.
  registry.upsert(sub("sub_1", {"c.*"}));
  EXPECT_EQ(matching_ids(registry, "a.b"), (Ids{"sub_2"}));
  EXPECT_EQ(matching_ids(registry, "c.d"), (Ids{"sub_1"}));
  // Disabled, then enabled again.
  registry.upsert(sub("sub_2", {"a.b"}, "", "", /*enabled=*/false));
  EXPECT_TRUE(matching_ids(registry, "a.b").empty());
  registry.upsert(sub("sub_2", {"a.b"}));
  EXPECT_EQ(matching_ids(registry, "a.b"), (Ids{"sub_2"}));
  // A filter added, changed, removed.
  registry.upsert(sub("sub_2", {"a.b"}, "", R"({"payload.x":1})"));
  EXPECT_TRUE(matching_ids(registry, "a.b", "", R"({"x":2})").empty());
  registry.upsert(sub("sub_2", {"a.b"}, "", R"({"payload.x":2})"));
  EXPECT_EQ(matching_ids(registry, "a.b", "", R"({"x":2})"), (Ids{"sub_2"}));
  registry.upsert(sub("sub_2", {"a.b"}));
  EXPECT_EQ(matching_ids(registry, "a.b", "", R"({"x":1})"), (Ids{"sub_2"}));
  // Erased: gone from every list, the listing and the lookups; erasing twice is harmless.
  registry.erase("sub_2");
  registry.erase("sub_2");
  registry.erase("sub_absent");
  EXPECT_TRUE(matching_ids(registry, "a.b").empty());
  EXPECT_EQ(registry.find("sub_2"), nullptr);
  EXPECT_EQ(page_ids(registry.page("", "", 10)), (Ids{"sub_1"}));
  EXPECT_EQ(registry.size(), 1u);
}

TEST(SubscriptionRegistryTest, AChangeOfTenantMovesTheSubscription) {
  SubscriptionRegistry registry({sub("sub_1", {"*"}, "acme")});
  registry.upsert(sub("sub_1", {"*"}, "globex"));
  EXPECT_TRUE(matching_ids(registry, "x", "acme").empty());
  EXPECT_EQ(matching_ids(registry, "x", "globex"), (Ids{"sub_1"}));
  EXPECT_TRUE(page_ids(registry.page("acme", "", 10)).empty());
  EXPECT_EQ(page_ids(registry.page("globex", "", 10)), (Ids{"sub_1"}));
  // To platform-wide: every tenant's events, and tenant-less ones.
  registry.upsert(sub("sub_1", {"*"}));
  EXPECT_EQ(matching_ids(registry, "x", "acme"), (Ids{"sub_1"}));
  EXPECT_EQ(matching_ids(registry, "x"), (Ids{"sub_1"}));
  EXPECT_TRUE(page_ids(registry.page("globex", "", 10)).empty());
  // And back to one tenant.
  registry.upsert(sub("sub_1", {"*"}, "acme"));
  EXPECT_TRUE(matching_ids(registry, "x").empty());
  EXPECT_TRUE(matching_ids(registry, "x", "globex").empty());
  EXPECT_EQ(matching_ids(registry, "x", "acme"), (Ids{"sub_1"}));
}

TEST(SubscriptionRegistryTest, PagesListEverySubscriptionOnceInIdOrder) {
  SubscriptionRegistry registry({sub("sub_5", {"*"}, "acme"), sub("sub_1", {"*"}), sub("sub_3", {"*"}, "acme"),
                                 sub("sub_2", {"*"}, "globex"), sub("sub_4", {"*"})});
  auto first = registry.page("", "", 2);
  EXPECT_EQ(page_ids(first), (Ids{"sub_1", "sub_2"}));
  EXPECT_TRUE(first.more);
  auto second = registry.page("", "sub_2", 2);
  EXPECT_EQ(page_ids(second), (Ids{"sub_3", "sub_4"}));
  EXPECT_TRUE(second.more);
  auto last = registry.page("", "sub_4", 2);
  EXPECT_EQ(page_ids(last), (Ids{"sub_5"}));
  EXPECT_FALSE(last.more);
  // A full last page has no next one.
  EXPECT_FALSE(registry.page("", "sub_3", 2).more);
  // By tenant: only that tenant's, exactly.
  EXPECT_EQ(page_ids(registry.page("acme", "", 10)), (Ids{"sub_3", "sub_5"}));
  EXPECT_EQ(page_ids(registry.page("acme", "sub_3", 10)), (Ids{"sub_5"}));
  EXPECT_TRUE(page_ids(registry.page("initech", "", 10)).empty());
  // A cursor that names no subscription (deleted since) still continues after it.
  EXPECT_EQ(page_ids(registry.page("", "sub_25", 10)), (Ids{"sub_3", "sub_4", "sub_5"}));
}

TEST(SubscriptionRegistryTest, ConcurrentReadersAndWritersAgree) {
  SubscriptionRegistry registry({});
  constexpr int kWrites = 500;
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int i = 0; i < kWrites; ++i) {
      registry.upsert(sub("sub_" + std::to_string(i), {"*"}, i % 2 == 0 ? "" : "t" + std::to_string(i % 7)));
      registry.upsert(sub("sub_gone", {"x.*"}, "t1"));
      registry.erase("sub_gone");
    }
    done = true;
  });
  std::size_t last = 0;
  while (!done || last < kWrites / 2) {
    // Only tenant-less ones reach a tenant-less event; their number only grows.
    const auto n = registry.matching(RoutedEvent{"", "x.y", "{}"}).size();
    ASSERT_GE(n, last);
    last = n;
    std::size_t seen = 0;
    registry.for_each([&](const auto&) { ++seen; });
    ASSERT_LE(seen, static_cast<std::size_t>(kWrites) + 1);
  }
  writer.join();
  EXPECT_EQ(last, static_cast<std::size_t>(kWrites / 2));
  EXPECT_EQ(registry.size(), static_cast<std::size_t>(kWrites));
}

}  // namespace subscription_registry_test
}  // namespace relay
