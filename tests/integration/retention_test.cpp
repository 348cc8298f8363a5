// Retention: succeeded deliveries with their events after --retention, dead ones after
// --dlq-retention, events without deliveries after --retention; anything still pending stays.
// The two retentions differ, so a cleaner that mixes them up fails; the background pass runs
// every 200ms (--retention-interval), so removal is seen without a restart.

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/support/http_client.h"
#include "tests/support/relayd_api_test.h"
#include "tests/support/relayd_process.h"
#include "tests/support/test_subscriber.h"

namespace relay::test {
namespace retention_test {

using nlohmann::json;
using namespace std::chrono_literals;

class Retention : public RelaydApiTest {
 protected:
  std::string create(const std::string& method_path, const json& body, int expected) {
    const HttpResponse r = call("POST", method_path, body.dump());
    EXPECT_EQ(r.status, expected) << method_path << " " << body.dump() << " -> " << r.describe();
    return r.json().is_object() ? r.json().value("id", "") : "";
  }
  std::string only_delivery(const std::string& event_id) {
    const json event = call("GET", "/v1/events/" + event_id).json();
    if (!event.contains("deliveries") || event["deliveries"].size() != 1) return "";
    return event["deliveries"][0].value("id", "");
  }
  bool in_state(const std::string& delivery_id, const std::string& state) {
    const HttpResponse r = call("GET", "/v1/deliveries/" + delivery_id);
    return r.status == 200 && r.json().value("state", "") == state;
  }

  TestSubscriber subscriber_;
};

TEST_F(Retention, ExpiredRecordsAreRemovedInTheBackgroundAndPendingOnesStay) {
  // Dead deliveries are kept far longer than succeeded ones: the succeeded event goes first
  // while the dead one, finished at the same moment, must still be there.
  start({"--allow-cidr", "127.0.0.0/8", "--retention", "1s", "--dlq-retention", "12s", "--retention-interval", "200ms",
         "--retry-initial", "100ms", "--retry-window", "1s"});
  subscriber_.respond("/ok", Reply::ok());
  subscriber_.respond("/gone", Reply::status(410));
  create("/v1/subscriptions", {{"url", subscriber_.url("/ok")}, {"event_types", {"meeting.*"}}}, 201);
  create("/v1/subscriptions", {{"url", subscriber_.url("/gone")}, {"event_types", {"calendar.*"}}}, 201);
  // A delivery that stays pending: its subscriber refuses connections and its window is long.
  create("/v1/subscriptions",
         {{"url", "http://127.0.0.1:9/closed"}, {"event_types", {"booking.*"}}, {"retry", {{"window", "1h"}}}}, 201);

  const std::string dead_event = create("/v1/events", {{"type", "calendar.sync_events"}, {"payload", 2}}, 202);
  const std::string succeeded_event = create("/v1/events", {{"type", "meeting.completed"}, {"payload", 1}}, 202);
  const std::string lonely_event = create("/v1/events", {{"type", "bot.joined"}, {"payload", 3}, {"id", "c-1"}}, 202);
  const std::string pending_event = create("/v1/events", {{"type", "booking.created"}, {"payload", 4}}, 202);

  const std::string succeeded = only_delivery(succeeded_event);
  const std::string dead = only_delivery(dead_event);
  const std::string pending = only_delivery(pending_event);
  ASSERT_TRUE(eventually([&] { return in_state(succeeded, "succeeded") && in_state(dead, "dead"); }));

  // --retention: the succeeded delivery, its event and the event without deliveries go.
  ASSERT_TRUE(eventually([&] {
    return call("GET", "/v1/events/" + succeeded_event).status == 404 &&
           call("GET", "/v1/events/" + lonely_event).status == 404;
  })) << "events past --retention are still there";
  EXPECT_EQ(call("GET", "/v1/deliveries/" + succeeded).status, 404);
  // The dead delivery finished before the succeeded one and is kept for --dlq-retention.
  EXPECT_EQ(call("GET", "/v1/deliveries/" + dead).status, 200) << "dead delivery removed after --retention";
  EXPECT_EQ(call("GET", "/v1/events/" + dead_event).status, 200);
  EXPECT_EQ(call("GET", "/v1/dlq").json()["items"].size(), 1u);
  // The expired event's client id is free again: publishing with it creates a new event.
  const HttpResponse again =
      call("POST", "/v1/events", json{{"type", "bot.joined"}, {"payload", 5}, {"id", "c-1"}}.dump());
  EXPECT_EQ(again.status, 202) << again.describe();
  EXPECT_NE(again.json().value("id", ""), lonely_event);

  // --dlq-retention: the dead delivery and its event go too, by the background pass.
  EXPECT_TRUE(eventually([&] { return call("GET", "/v1/events/" + dead_event).status == 404; }, 40s))
      << "the dead event is still there after --dlq-retention";
  EXPECT_EQ(call("GET", "/v1/deliveries/" + dead).status, 404);
  EXPECT_TRUE(call("GET", "/v1/dlq").json()["items"].empty());
  // The pending delivery and its event stay, whatever their age.
  EXPECT_EQ(call("GET", "/v1/events/" + pending_event).status, 200);
  EXPECT_TRUE(in_state(pending, "pending") || in_state(pending, "in_flight"));
}

}  // namespace retention_test
}  // namespace relay::test
