// The API's JSON representations of the domain types follow the contract, and what GET answers
// is valid input again. The stored form of a subscription is tested in records_test.cpp.

#include "relay/api/api_json.h"

#include <gtest/gtest.h>

#include "relay/api/request_parsing.h"
#include "relay/api/subscription_fields.h"
#include "storage/records.h"
#include "tests/support/sample_subscription.h"

namespace relay {
namespace api_json_test {

using nlohmann::json;

constexpr UnixMillis kT = 1'795'687'200'123;  // 2026-11-26T10:00:00.123Z

TEST(ApiJsonTest, TheTimeASubscriptionSpendsDisabledIsAccounted) {
  Subscription s;
  EXPECT_EQ(paused_ms(s, kT), 0);
  set_enabled(s, false, kT);
  EXPECT_FALSE(s.enabled);
  EXPECT_EQ(paused_ms(s, kT + 3'000), 3'000);  // still disabled: the pause runs
  set_enabled(s, false, kT + 5'000);            // no change: the pause started at kT
  set_enabled(s, true, kT + 10'000);
  EXPECT_TRUE(s.enabled);
  EXPECT_EQ(paused_ms(s, kT + 60'000), 10'000);  // enabled again: it stopped
  set_enabled(s, true, kT + 70'000);
  set_enabled(s, false, kT + 80'000);
  set_enabled(s, true, kT + 82'000);
  EXPECT_EQ(paused_ms(s, kT + 90'000), 12'000);
  // Not in the API form: it is bookkeeping.
  EXPECT_FALSE(to_api(s).contains("disabled_ms"));
}

TEST(ApiJsonTest, EventApiForm) {
  Event e;
  e.id = "evt_1";
  e.type = "t";
  e.payload = std::make_shared<const std::string>(R"({"a":1})");
  e.created_at = kT;
  EXPECT_EQ(json::parse(to_api_text(e, json::object())),
            json::parse(R"({"id": "evt_1", "type": "t", "payload": {"a": 1}, "created_at": "2026-11-26T10:00:00.123Z"})"));
  e.client_id = "c";
  const json with_extra = json::parse(to_api_text(e, {{"deliveries", json::array({1})}}));
  EXPECT_EQ(with_extra["client_id"], "c");
  EXPECT_EQ(with_extra["deliveries"], json::array({1}));
  e.payload = nullptr;
  EXPECT_EQ(json::parse(to_api_text(e, json::object()))["payload"], nullptr);
}

// The payload is the stored text, not a tree dumped again: key order, number spellings and
// escapes stay as published.
TEST(ApiJsonTest, EventApiFormEmbedsThePayloadBytesVerbatim) {
  Event e;
  e.id = "evt_1";
  e.type = "t";
  const std::string payload = R"({"z":1,"a":2.0,"n":1e3,"s":"caf\u00e9 \/ x","big":12345678901234567890})";
  e.payload = std::make_shared<const std::string>(payload);
  const std::string text = to_api_text(e, {{"deliveries", json::array()}});
  EXPECT_NE(text.find(R"("payload":)" + payload), std::string::npos) << text;
  EXPECT_FALSE(json::parse(text, nullptr, false).is_discarded()) << text;
}

TEST(ApiJsonTest, SubscriptionApiForm) {
  const Subscription s = full_subscription();
  json api = to_api(s);
  EXPECT_EQ(api["id"], s.id);
  EXPECT_EQ(api["url"], s.url);
  EXPECT_EQ(api["secret"], s.secret);
  EXPECT_FALSE(api.contains("previous_secret"));  // the old secret is never shown again
  EXPECT_EQ(api["previous_secret_expires_at"], "2026-11-27T10:00:00.123Z");
  EXPECT_EQ(api["signature"], json::parse(R"({"scheme": "hmac-sha256-hex", "header": "X-MeetingBaas-Signature"})"));
  EXPECT_EQ(api["retry"], json::parse(R"({"initial": "1500ms", "max_delay": "10m", "window": "2h"})"));
  EXPECT_EQ(api["timeout"], "30s");
  EXPECT_EQ(api["enabled"], false);
  EXPECT_EQ(api["disabled_reason"], "failing");
  EXPECT_EQ(api["disabled_at"], "2026-11-26T11:00:00.123Z");
  EXPECT_EQ(api["disable_after"], "2d");
  EXPECT_EQ(api["max_in_flight"], 10);
  EXPECT_EQ(api["rate_limit_per_second"], 5);
  EXPECT_EQ(api["created_at"], "2026-11-26T10:00:00.123Z");

  api = to_api(Subscription{});
  EXPECT_EQ(api["signature"], json::parse(R"({"scheme": "standard"})"));
  EXPECT_EQ(api["retry"], json::parse(R"({"initial": null, "max_delay": null, "window": null})"));
  EXPECT_TRUE(api["timeout"].is_null());
  EXPECT_TRUE(api["disabled_reason"].is_null());
  EXPECT_TRUE(api["disabled_at"].is_null());
  EXPECT_TRUE(api["disable_after"].is_null()) << "null: --disable-after";
  EXPECT_FALSE(api.contains("previous_secret_expires_at"));
  EXPECT_EQ(api["event_types"], json::parse(R"(["*"])"));
}

TEST(ApiJsonTest, ADisabledSubscriptionShowsWhyAndSinceWhenAnEnabledOneNeither) {
  Subscription s;
  set_enabled(s, false, kT);
  json api = to_api(s);
  EXPECT_EQ(api["disabled_reason"], "manual");
  EXPECT_EQ(api["disabled_at"], "2026-11-26T10:00:00.123Z");
  set_enabled(s, true, kT + 1'000);
  api = to_api(s);
  EXPECT_TRUE(api["disabled_reason"].is_null());
  EXPECT_TRUE(api["disabled_at"].is_null());
  set_enabled(s, false, kT + 2'000, DisabledReason::failing);
  EXPECT_EQ(to_api(s)["disabled_reason"], "failing");
  set_enabled(s, false, kT + 3'000);  // disabled already: keeps its reason and its time
  EXPECT_EQ(to_api(s)["disabled_reason"], "failing");
  EXPECT_EQ(to_api(s)["disabled_at"], "2026-11-26T10:00:02.123Z");
  s.disable_after_ms = 0;
  EXPECT_EQ(to_api(s)["disable_after"], "0s") << "never";
}

TEST(ApiJsonTest, SubscriptionApiFormIsValidInputAgain) {
  // What GET answers can be sent back as a PATCH / POST and means the same subscription.
  for (const Subscription& s : {full_subscription(), Subscription{}}) {
    json api = to_api(s);
    json input;
    for (const char* field : {"url", "event_types", "secret", "signature", "headers", "enabled", "description",
                              "retry", "timeout", "max_in_flight", "rate_limit_per_second", "disable_after"}) {
      input[field] = api[field];
    }
    if (s.url.empty()) input.erase("url");
    if (s.secret.empty()) input.erase("secret");
    Subscription back;
    back.id = s.id;
    back.previous_secret = s.previous_secret;
    back.previous_secret_expires_at = s.previous_secret_expires_at;
    back.created_at = s.created_at;
    back.updated_at = s.updated_at;
    back.disabled_ms = s.disabled_ms;  // bookkeeping, not input
    back.disabled_at = s.disabled_at;
    back.disabled_reason = s.disabled_reason;
    const Status status = apply_subscription_fields(input, back, /*creating=*/false);
    ASSERT_TRUE(status.ok()) << status.error().message << " in " << input.dump();
    EXPECT_EQ(records::to_record(back), records::to_record(s));
  }
}

TEST(ApiJsonTest, DeliveryAndAttemptApiForms) {
  Delivery d;
  d.id = "dlv_1";
  d.state = DeliveryState::pending;
  d.created_at = kT;
  d.next_attempt_at = kT + 1'000;
  json api = to_api(d);
  EXPECT_EQ(api["state"], "pending");
  EXPECT_EQ(api["next_attempt_at"], "2026-11-26T10:00:01.123Z");
  EXPECT_TRUE(api["completed_at"].is_null());
  EXPECT_TRUE(api["last_error"].is_null());

  d.state = DeliveryState::dead;
  d.completed_at = kT;
  d.last_error = "timeout";
  api = to_api(d);
  EXPECT_TRUE(api["next_attempt_at"].is_null());
  EXPECT_EQ(api["completed_at"], "2026-11-26T10:00:00.123Z");
  EXPECT_EQ(api["last_error"], "timeout");

  Attempt a;
  a.number = 1;
  a.started_at = kT;
  a.duration_ms = 15'000;
  a.outcome = AttemptOutcome::timeout;
  a.error = "timed out";
  api = to_api(a);
  EXPECT_TRUE(api["http_status"].is_null());
  EXPECT_EQ(api["outcome"], "timeout");
  EXPECT_EQ(api["error"], "timed out");
  EXPECT_EQ(api["duration_ms"], 15'000);
  a.http_status = 500;
  a.outcome = AttemptOutcome::http_5xx;
  a.error.clear();
  api = to_api(a);
  EXPECT_EQ(api["http_status"], 500);
  EXPECT_TRUE(api["error"].is_null());
}

TEST(ApiJsonTest, EventTypeStatsApiForm) {
  EXPECT_EQ(to_api(EventTypeStats{"a.b", 3, kT}),
            json::parse(R"({"type": "a.b", "count": 3, "last_seen": "2026-11-26T10:00:00.123Z"})"));
}

TEST(ApiJsonTest, DeliveryStateAndOutcomeNames) {
  for (DeliveryState s : {DeliveryState::pending, DeliveryState::in_flight, DeliveryState::succeeded, DeliveryState::dead}) {
    EXPECT_EQ(parse_delivery_state(delivery_state_name(s)), s);
  }
  EXPECT_FALSE(parse_delivery_state("scheduled"));
  EXPECT_FALSE(parse_delivery_state(""));
}

}  // namespace api_json_test
}  // namespace relay
