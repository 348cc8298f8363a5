// Black-box tests of operational events (spec section 6): relay publishes relay.delivery.dead
// when a delivery goes dead, to the subscriptions that name relay's types explicitly (never to
// `*`), with the tenant of the event it reports; the death of such an event's own delivery
// publishes nothing; producers cannot publish relay.* types. Real relayd, real subscribers.

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/relayd_api_test.h"
#include "tests/support/test_subscriber.h"

namespace relay::test {
namespace operational_events_test {

using nlohmann::json;

// Loopback subscribers and a 1 s retry window, so that failing deliveries die within seconds
// (about 4 attempts each, below the 20 failures that open a circuit); no automatic disabling.
const std::vector<std::string> kFastDeaths{"--allow-cidr",      "127.0.0.0/8", "--retry-initial", "100ms",
                                           "--retry-max-delay", "400ms",       "--retry-window",  "1s",
                                           "--disable-after",   "0s"};

// The requests of `type` (X-Relay-Event-Type) the subscriber received so far.
std::vector<RecordedRequest> requests_of_type(const TestSubscriber& sub, const std::string& type) {
  std::vector<RecordedRequest> out;
  for (const auto& r : sub.requests()) {
    if (r.header("X-Relay-Event-Type") == type) out.push_back(r);
  }
  return out;
}

class OperationalEvents : public RelaydApiTest {
 protected:
  void SetUp() override { start(kFastDeaths); }

  // Waits until the subscriber received a request of `type`; the first one.
  std::optional<RecordedRequest> await_type(TestSubscriber& sub, const std::string& type) {
    const bool arrived = sub.wait_until(
        [&](const std::vector<RecordedRequest>& requests) {
          for (const auto& r : requests) {
            if (r.header("X-Relay-Event-Type") == type) return true;
          }
          return false;
        },
        kApiWait);
    if (!arrived) return std::nullopt;
    return requests_of_type(sub, type).front();
  }

  // The stored count of events of `type` (GET /v1/event-types); 0 when none was stored.
  int stored_count(const std::string& type) {
    for (const json& item : items("/v1/event-types")) {
      if (item.value("type", "") == type) return item.value("count", -1);
    }
    return 0;
  }
};

TEST_F(OperationalEvents, ADeadDeliveryIsReportedToExplicitRelaySubscribersOfItsTenantOnly) {
  TestSubscriber failing;
  failing.respond(Reply::status(500, "down"));
  TestSubscriber watcher;    // relay.delivery.dead, platform-wide
  TestSubscriber star;       // "*": relay's own types never reach it
  TestSubscriber acme;       // relay.*, tenant acme: the event's tenant
  TestSubscriber globex;     // relay.*, another tenant
  const std::string failing_sub = subscribe_id({{"url", failing.url("/hook")}, {"event_types", {"meeting.*"}}});
  const std::string watcher_sub = subscribe_id({{"url", watcher.url("/ops")}, {"event_types", {"relay.delivery.dead"}}});
  const std::string star_sub = subscribe_id({{"url", star.url("/all")}});
  const std::string acme_sub =
      subscribe_id({{"url", acme.url("/ops")}, {"event_types", {"relay.*"}}, {"tenant", "acme"}});
  const std::string globex_sub =
      subscribe_id({{"url", globex.url("/ops")}, {"event_types", {"relay.*"}}, {"tenant", "globex"}});

  const std::string event_id =
      publish_event({{"type", "meeting.completed"}, {"tenant", "acme"}, {"payload", {{"bot_id", "b-1"}}}}, 2);
  const std::string dead_id = delivery_id(event_id, failing_sub);
  const json dead = await_state(dead_id, "dead");

  const auto report = await_type(watcher, "relay.delivery.dead");
  ASSERT_TRUE(report) << "the explicit subscriber never received relay.delivery.dead";
  const json payload = json::parse(report->body, nullptr, false);
  ASSERT_TRUE(payload.is_object()) << report->body;
  EXPECT_EQ(payload.value("delivery_id", ""), dead_id);
  EXPECT_EQ(payload.value("event_id", ""), event_id);
  EXPECT_EQ(payload.value("event_type", ""), "meeting.completed");
  EXPECT_EQ(payload.value("subscription_id", ""), failing_sub);
  EXPECT_EQ(payload.value("tenant", ""), "acme");
  EXPECT_EQ(payload.value("attempts", -1), dead.value("attempt_count", -2));
  EXPECT_GE(payload.value("attempts", 0), 2);
  EXPECT_EQ(payload.value("last_error", ""), "http_5xx");
  EXPECT_EQ(payload.value("dead_at", ""), dead.value("completed_at", "")) << report->body;
  // An ordinary event: its id is the webhook-id, and it is stored and readable.
  const std::string report_id = report->header("webhook-id").value_or("");
  ASSERT_FALSE(report_id.empty());
  const json stored = get("/v1/events/" + report_id);
  EXPECT_EQ(stored.value("type", ""), "relay.delivery.dead");
  EXPECT_EQ(stored.value("tenant", ""), "acme");
  EXPECT_EQ(stored.value("payload", json()), payload);

  // Its deliveries were created with it, in one batch: each one there is, is there now.
  const auto report_deliveries = deliveries_of_event(report_id);
  std::vector<std::string> reached;
  for (const json& d : report_deliveries) reached.push_back(d.value("subscription_id", ""));
  std::sort(reached.begin(), reached.end());
  std::vector<std::string> expected{watcher_sub, acme_sub};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(reached, expected) << "not `*`, not another tenant's relay.* subscription";
  ASSERT_TRUE(await_type(acme, "relay.delivery.dead"));
  EXPECT_TRUE(items("/v1/deliveries?subscription_id=" + globex_sub).empty());
  const auto star_deliveries = items("/v1/deliveries?subscription_id=" + star_sub);
  ASSERT_EQ(star_deliveries.size(), 1u);
  EXPECT_EQ(star_deliveries[0].value("event_type", ""), "meeting.completed");
  EXPECT_TRUE(requests_of_type(star, "relay.delivery.dead").empty());
}

TEST_F(OperationalEvents, TheDeathOfAnOperationalEventsOwnDeliveryPublishesNothing) {
  TestSubscriber failing;
  failing.respond(Reply::status(500, "down"));
  TestSubscriber failing_watcher;  // relay.*, and down too
  failing_watcher.respond(Reply::status(503, "also down"));
  TestSubscriber watcher;
  const std::string failing_sub = subscribe_id({{"url", failing.url("/hook")}, {"event_types", {"meeting.*"}}});
  const std::string failing_watcher_sub =
      subscribe_id({{"url", failing_watcher.url("/ops")}, {"event_types", {"relay.*"}}});
  const std::string watcher_sub = subscribe_id({{"url", watcher.url("/ops")}, {"event_types", {"relay.delivery.dead"}}});

  publish("meeting.completed", {{"n", 1}}, 1);
  // The relay.* subscriber's own delivery of the report dies in turn...
  std::vector<json> dead;
  ASSERT_TRUE(eventually([&] {
    dead = items("/v1/dlq?subscription_id=" + failing_watcher_sub);
    return dead.size() == 1;
  })) << "the report to the failing relay.* subscriber never died";
  EXPECT_EQ(dead[0].value("event_type", ""), "relay.delivery.dead");
  // ... and reports nothing: a report would have been stored in the batch of that death.
  EXPECT_EQ(stored_count("relay.delivery.dead"), 1);
  EXPECT_EQ(items("/v1/deliveries?subscription_id=" + watcher_sub).size(), 1u);
  ASSERT_EQ(items("/v1/dlq?subscription_id=" + failing_sub).size(), 1u);
}

TEST_F(OperationalEvents, ProducersCannotPublishRelayTypes) {
  for (const std::string type : {"relay.x", "relay.delivery.dead", "relay.subscription.disabled"}) {
    const json event{{"type", type}, {"payload", {{"forged", true}}}};
    const HttpResponse single = call("POST", "/v1/events", event.dump());
    EXPECT_EQ(single.status, 400) << single.describe();
    EXPECT_EQ(single.error_code(), "invalid_field") << single.describe();
    const HttpResponse ingest =
        call("POST", "/v1/events", event.dump(), {bearer(kIngestKey)});
    EXPECT_EQ(ingest.status, 400) << ingest.describe();

    const json batch{{"events", {event, {{"type", "meeting.completed"}, {"payload", 1}}}}};
    const HttpResponse answered = call("POST", "/v1/events/batch", batch.dump());
    ASSERT_EQ(answered.status, 200) << answered.describe();
    const json results = answered.json().value("results", json::array());
    ASSERT_EQ(results.size(), 2u) << answered.describe();
    EXPECT_EQ(results[0]["error"].value("code", ""), "invalid_field") << answered.describe();
    EXPECT_TRUE(results[1].contains("id")) << answered.describe();
  }
  EXPECT_EQ(stored_count("relay.x"), 0);
  // Subscribing to them is what they are for.
  EXPECT_FALSE(subscribe_id({{"url", "https://example.com/ops"}, {"event_types", {"relay.*"}}}).empty());
}

}  // namespace operational_events_test
}  // namespace relay::test
