// Black-box tests of isolation at any backlog size (spec section 3, "Isolation"): thousands of
// due deliveries held by subscriptions that cannot take them (hanging, failing behind an open
// circuit, disabled, rate-limited) must not delay a healthy subscription's deliveries, neither
// while relayd runs nor after a restart, when the scheduler fills its memory from disk again.
// The backlogs are large enough to fill the scheduler's memory window (20,000 deliveries, 4,000
// per subscription) several times over.

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/relayd_api_test.h"
#include "tests/support/test_subscriber.h"

namespace relay::test {
namespace delivery_backlog_test {

using nlohmann::json;
using namespace std::chrono_literals;

// The contract allows a second; the deadline only keeps a regression from hanging the test.
constexpr auto kHealthyDeadline = 15s;

class DeliveryBacklog : public RelaydApiTest {
 protected:
  // Publishes `count` events of `type` in batches of 1,000, each matched by `fan_out` subscriptions.
  void publish_many(const std::string& type, int count, std::size_t fan_out) {
    for (int first = 0; first < count; first += 1000) {
      json events = json::array();
      for (int i = first; i < std::min(count, first + 1000); ++i) events.push_back({{"type", type}, {"payload", {{"n", i}}}});
      const HttpResponse r = call("POST", "/v1/events/batch", json{{"events", events}}.dump());
      ASSERT_LT(r.status, 300) << r.describe();
      const json results = json::parse(r.body).value("results", json::array());
      ASSERT_EQ(results.size(), events.size()) << r.describe();
      for (const json& item : results) {
        ASSERT_EQ(item.value("deliveries", 0u), fan_out) << item.dump();
      }
    }
  }

  // Publishes `count` events for the healthy subscriber only and waits for all of them there.
  void expect_healthy_delivered(TestSubscriber& healthy, const std::string& type, std::size_t count) {
    healthy.reset();
    for (std::size_t i = 0; i < count; ++i) publish(type, {{"n", i}}, 1);
    EXPECT_TRUE(healthy.wait_for_requests(count, kHealthyDeadline))
        << "the healthy subscriber got " << healthy.request_count() << " of " << count << " behind the backlog";
  }

  void set_enabled(const std::string& subscription_id, bool enabled) {
    const HttpResponse r = call("PATCH", "/v1/subscriptions/" + subscription_id, json{{"enabled", enabled}}.dump());
    ASSERT_EQ(r.status, 200) << r.describe();
  }
};

TEST_F(DeliveryBacklog, HangingFailingAndDisabledBacklogsDoNotStarveAHealthySubscription) {
  TestSubscriber hanging;
  hanging.respond(Reply::blackhole());
  TestSubscriber failing;
  failing.respond(Reply::status(500, "down"));
  TestSubscriber healthy;
  healthy.respond(Reply::ok());
  // Hanging attempts stay open for the whole test.
  start({"--allow-cidr", "127.0.0.0/8", "--attempt-timeout", "60s"});
  const json backlog_types{"backlog.*"};
  std::vector<std::string> blocked;
  for (const char* path : {"/hang1", "/hang2"}) {
    blocked.push_back(subscribe_id({{"url", hanging.url(path)}, {"event_types", backlog_types}}));
  }
  for (const char* path : {"/fail1", "/fail2"}) {
    blocked.push_back(subscribe_id({{"url", failing.url(path)}, {"event_types", backlog_types}}));
  }
  const std::string disabled = subscribe_id({{"url", hanging.url("/disabled")}, {"event_types", backlog_types}});
  blocked.push_back(disabled);
  for (const auto& id : blocked) ASSERT_FALSE(id.empty());

  constexpr int kBacklogEvents = 6'000;  // each held by all five: 30,000 due deliveries
  publish_many("backlog.item", kBacklogEvents, blocked.size());
  set_enabled(disabled, false);

  ASSERT_FALSE(subscribe_id({{"url", healthy.url("/hook")}, {"event_types", {"healthy.*"}}}).empty());
  expect_healthy_delivered(healthy, "healthy.ping", 40);

  // After a restart the scheduler reads its memory full again from the head of the schedule,
  // where the blocked backlogs are.
  relayd().restart();
  expect_healthy_delivered(healthy, "healthy.ping", 40);
}

TEST_F(DeliveryBacklog, RateLimitedBacklogsDoNotStarveAHealthySubscription) {
  TestSubscriber receiver;
  receiver.respond(Reply::ok());
  TestSubscriber healthy;
  healthy.respond(Reply::ok());
  start({"--allow-cidr", "127.0.0.0/8"});
  for (int i = 0; i < 5; ++i) {
    ASSERT_FALSE(subscribe_id({{"url", receiver.url("/slow" + std::to_string(i))},
                               {"event_types", {"backlog.*"}},
                               {"rate_limit_per_second", 1}})
                     .empty());
  }
  constexpr int kBacklogEvents = 5'000;  // 25,000 deliveries, each lane draining at one a second
  publish_many("backlog.item", kBacklogEvents, 5);

  ASSERT_FALSE(subscribe_id({{"url", healthy.url("/hook")}, {"event_types", {"healthy.*"}}}).empty());
  expect_healthy_delivered(healthy, "healthy.ping", 100);

  relayd().restart();
  expect_healthy_delivered(healthy, "healthy.ping", 100);
}

}  // namespace delivery_backlog_test
}  // namespace relay::test
