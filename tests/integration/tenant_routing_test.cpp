// Black-box tests of routing by tenant and payload filter (spec section 6, "Tenants" and
// "Payload filters"): the real relayd delivers to real subscribers, and the tests check which
// endpoint each event reaches. The fan-out count of each publish names the subscriptions an
// event matched at ingest, so "never reaches" is checked without waiting for an absence.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/relayd_api_test.h"
#include "tests/support/test_subscriber.h"

namespace relay::test {
namespace tenant_routing_test {

using nlohmann::json;

const std::vector<std::string> kLoopback{"--allow-cidr", "127.0.0.0/8"};

class TenantRouting : public RelaydApiTest {
 protected:
  void SetUp() override { start(kLoopback); }

  // The subscriptions the event's deliveries go to.
  std::set<std::string> targets(const std::string& event_id) {
    std::set<std::string> out;
    for (const json& d : deliveries_of_event(event_id)) out.insert(d.value("subscription_id", ""));
    return out;
  }

  // The payloads that arrived at `path`, once `n` have.
  std::vector<json> received(const std::string& path, std::size_t n) {
    const auto at_path = [&](const std::vector<RecordedRequest>& requests) {
      return static_cast<std::size_t>(std::count_if(requests.begin(), requests.end(),
                                                    [&](const RecordedRequest& r) { return r.path == path; })) >= n;
    };
    EXPECT_TRUE(receiver_.wait_until(at_path, kApiWait))
        << path << " got " << receiver_.requests(path).size() << " of " << n;
    std::vector<json> out;
    for (const auto& r : receiver_.requests(path)) out.push_back(json::parse(r.body, nullptr, false));
    return out;
  }

  TestSubscriber receiver_;
};

TEST_F(TenantRouting, ACustomersEventsReachOnlyItsEndpointWhileAPlatformWideSubscriptionGetsEveryone) {
  const std::string a = subscribe_id({{"url", receiver_.url("/customer-a")}, {"tenant", "cust_a"}});
  const std::string b =
      subscribe_id({{"url", receiver_.url("/customer-b")}, {"tenant", "cust_b"}, {"event_types", {"bot.*"}}});
  const std::string platform = subscribe_id({{"url", receiver_.url("/platform")}});

  std::map<std::string, std::set<std::string>> expected;  // event id -> subscriptions
  for (int i = 0; i < 3; ++i) {
    const std::string id = publish_event(
        {{"type", "bot.status_change"}, {"tenant", "cust_a"}, {"payload", {{"customer", "a"}, {"n", i}}}}, 2);
    expected[id] = {a, platform};
  }
  for (int i = 0; i < 2; ++i) {
    const std::string id = publish_event(
        {{"type", "bot.status_change"}, {"tenant", "cust_b"}, {"payload", {{"customer", "b"}, {"n", i}}}}, 2);
    expected[id] = {b, platform};
  }
  // A tenant without subscriptions of its own, and an event of no tenant: the platform only.
  expected[publish_event({{"type", "bot.done"}, {"tenant", "cust_c"}, {"payload", {{"customer", "c"}}}}, 1)] = {
      platform};
  expected[publish_event({{"type", "bot.done"}, {"payload", {{"customer", ""}}}}, 1)] = {platform};
  for (const auto& [event_id, subs] : expected) EXPECT_EQ(targets(event_id), subs) << event_id;

  const auto count = [](const std::vector<json>& payloads, const std::string& customer) {
    return std::count_if(payloads.begin(), payloads.end(),
                         [&](const json& p) { return p.value("customer", "?") == customer; });
  };
  const auto at_platform = received("/platform", 7);
  EXPECT_EQ(count(at_platform, "a"), 3);
  EXPECT_EQ(count(at_platform, "b"), 2);
  const auto at_a = received("/customer-a", 3);
  EXPECT_EQ(count(at_a, "a"), 3) << json(at_a).dump();
  EXPECT_EQ(at_a.size(), 3u);
  const auto at_b = received("/customer-b", 2);
  EXPECT_EQ(count(at_b, "b"), 2) << json(at_b).dump();
  EXPECT_EQ(at_b.size(), 2u);
}

TEST_F(TenantRouting, ARecallStylePerCalendarFilterRoutesEachCalendarToItsWebhook) {
  const json calendar_42 = {{"url", receiver_.url("/cal-42")},
                            {"event_types", {"calendar.*"}},
                            {"filter", {{"payload.data.calendar_id", "cal_42"}}}};
  const std::string sub_42 = subscribe_id(calendar_42);
  json calendar_7 = calendar_42;
  calendar_7["url"] = receiver_.url("/cal-7");
  calendar_7["filter"] = {{"payload.data.calendar_id", "cal_7"}};
  const std::string sub_7 = subscribe_id(calendar_7);

  const auto update = [](const std::string& calendar, int n) {
    return json{{"type", "calendar.update"},
                {"payload", {{"event", "calendar.update"}, {"data", {{"calendar_id", calendar}, {"n", n}}}}}};
  };
  const std::string e1 = publish_event(update("cal_42", 1), 1);
  const std::string e2 = publish_event(update("cal_7", 2), 1);
  const std::string e3 = publish_event(update("cal_42", 3), 1);
  publish_event(update("cal_99", 4), 0);
  publish("calendar.sync_events", {{"data", {{"other", "cal_42"}}}}, 0);  // no calendar_id: missing path
  EXPECT_EQ(targets(e1), (std::set<std::string>{sub_42}));
  EXPECT_EQ(targets(e2), (std::set<std::string>{sub_7}));
  EXPECT_EQ(targets(e3), (std::set<std::string>{sub_42}));

  const auto at_42 = received("/cal-42", 2);
  ASSERT_EQ(at_42.size(), 2u);
  EXPECT_EQ(at_42[0]["data"]["n"], 1);
  EXPECT_EQ(at_42[1]["data"]["n"], 3);
  const auto at_7 = received("/cal-7", 1);
  ASSERT_EQ(at_7.size(), 1u);
  EXPECT_EQ(at_7[0]["data"]["calendar_id"], "cal_7");
}

TEST_F(TenantRouting, ABookingStyleInFilterDeliversOnlyTheSelectedEventTypesOfItsTenant) {
  // A booking app's user picked BOOK and RESCHEDULE for their webhook; the app publishes every
  // booking event of every user under the user's tenant.
  const std::string selected = subscribe_id({{"url", receiver_.url("/selected")},
                                             {"tenant", "user_17"},
                                             {"event_types", {"booking"}},
                                             {"filter", json::parse(R"({"payload.eventType": {"$in": ["BOOK", "RESCHEDULE"]}})")}});
  const auto booking = [](const std::string& tenant, const std::string& kind) {
    return json{{"type", "booking"}, {"tenant", tenant}, {"payload", {{"eventType", kind}, {"uid", tenant + kind}}}};
  };
  publish_event(booking("user_17", "BOOK"), 1);
  publish_event(booking("user_17", "CANCEL"), 0);
  publish_event(booking("user_17", "RESCHEDULE"), 1);
  publish_event(booking("user_18", "BOOK"), 0);  // another user's
  publish_event({{"type", "booking"}, {"tenant", "user_17"}, {"payload", {{"eventType", 1}}}}, 0);  // typed
  const auto got = received("/selected", 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0]["uid"], "user_17BOOK");
  EXPECT_EQ(got[1]["uid"], "user_17RESCHEDULE");
  EXPECT_FALSE(selected.empty());
}

TEST_F(TenantRouting, ABadFilterAnswers400NamingItsPathAndChangesNothing) {
  const std::string id = subscribe_id(
      {{"url", receiver_.url("/hook")}, {"filter", json::parse(R"({"payload.data.bot_id": {"$in": ["bot_1", "bot_2"]}})")}});
  const json before = get("/v1/subscriptions/" + id);

  // Created: refused, nothing stored.
  HttpResponse r = call("POST", "/v1/subscriptions",
                        json{{"url", receiver_.url("/other")}, {"filter", json::parse(R"({"payload.data.n": {"$gt": [1]}})")}}.dump());
  EXPECT_EQ(r.status, 400) << r.describe();
  EXPECT_EQ(r.json()["error"].value("code", ""), "invalid_field") << r.describe();
  EXPECT_NE(r.json()["error"].value("message", "").find("payload.data.n"), std::string::npos) << r.describe();
  EXPECT_EQ(items("/v1/subscriptions").size(), 1u);

  // Changed: refused, the stored filter and the routing stay as they were.
  r = call("PATCH", "/v1/subscriptions/" + id,
           json{{"filter", json::parse(R"({"$or": [{"payload.data.bot_id": "bot_3"}, {"payload.x": {"$regex": "."}}]})")},
                {"url", receiver_.url("/moved")}}
               .dump());
  EXPECT_EQ(r.status, 400) << r.describe();
  EXPECT_NE(r.json()["error"].value("message", "").find("$or[1].payload.x"), std::string::npos) << r.describe();
  EXPECT_EQ(get("/v1/subscriptions/" + id), before);
  publish("bot.done", {{"data", {{"bot_id", "bot_3"}}}}, 0);
  publish("bot.done", {{"data", {{"bot_id", "bot_2"}}}}, 1);
  const auto got = received("/hook", 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0]["data"]["bot_id"], "bot_2");
  EXPECT_TRUE(receiver_.requests("/moved").empty());
}

TEST_F(TenantRouting, ChangingTenantOrFilterReroutesTheNextEvents) {
  const std::string id = subscribe_id({{"url", receiver_.url("/hook")}, {"tenant", "cust_a"}});
  publish_event({{"type", "x"}, {"tenant", "cust_a"}, {"payload", {{"n", 1}}}}, 1);
  publish_event({{"type", "x"}, {"tenant", "cust_b"}, {"payload", {{"n", 2}}}}, 0);

  HttpResponse r = call("PATCH", "/v1/subscriptions/" + id,
                        json{{"tenant", "cust_b"}, {"filter", {{"payload.n", {{"$gte", 3}}}}}}.dump());
  ASSERT_EQ(r.status, 200) << r.describe();
  publish_event({{"type", "x"}, {"tenant", "cust_a"}, {"payload", {{"n", 3}}}}, 0);
  publish_event({{"type", "x"}, {"tenant", "cust_b"}, {"payload", {{"n", 2}}}}, 0);
  publish_event({{"type", "x"}, {"tenant", "cust_b"}, {"payload", {{"n", 4}}}}, 1);

  // null removes both: platform-wide and unfiltered.
  r = call("PATCH", "/v1/subscriptions/" + id, json{{"tenant", nullptr}, {"filter", nullptr}}.dump());
  ASSERT_EQ(r.status, 200) << r.describe();
  publish_event({{"type", "x"}, {"tenant", "cust_a"}, {"payload", {{"n", 5}}}}, 1);
  publish_event({{"type", "x"}, {"payload", {{"n", 6}}}}, 1);

  const auto got = received("/hook", 4);
  std::vector<int> ns;
  for (const json& p : got) ns.push_back(p.value("n", -1));
  std::sort(ns.begin(), ns.end());
  EXPECT_EQ(ns, (std::vector<int>{1, 4, 5, 6}));
}

TEST_F(TenantRouting, RedeliverGoesOnlyToSubscriptionsThatStillMatchTenantAndFilter) {
  const std::string a = subscribe_id({{"url", receiver_.url("/a")}, {"tenant", "cust_a"}});
  const std::string b = subscribe_id({{"url", receiver_.url("/b")}, {"tenant", "cust_b"}});
  const std::string filtered = subscribe_id({{"url", receiver_.url("/f")}, {"filter", {{"payload.n", 2}}}});
  const std::string event = publish_event({{"type", "x"}, {"tenant", "cust_a"}, {"payload", {{"n", 1}}}}, 1);

  HttpResponse r = call("POST", "/v1/events/" + event + "/redeliver");
  ASSERT_EQ(r.status, 202) << r.describe();
  ASSERT_EQ(r.json()["deliveries"].size(), 1u) << r.describe();
  EXPECT_EQ(r.json()["deliveries"][0].value("subscription_id", ""), a);
  for (const std::string& other : {b, filtered}) {
    r = call("POST", "/v1/events/" + event + "/redeliver", json{{"subscription_id", other}}.dump());
    EXPECT_EQ(r.status, 409) << r.describe();
  }
  received("/a", 2);
}

}  // namespace tenant_routing_test
}  // namespace relay::test
