// Black-box tests of the lists' `tenant` filter and of the subscription list's pages (spec
// sections 2 and 6, "Tenants"): GET /v1/subscriptions, /v1/deliveries, /v1/dlq and
// POST /v1/dlq/retry against the real relayd.

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/relayd_api_test.h"
#include "tests/support/test_subscriber.h"

namespace relay::test {
namespace tenant_lists_test {

using nlohmann::json;

constexpr const char* kNowhere = "http://127.0.0.1:9/hook";

class TenantLists : public RelaydApiTest {
 protected:
  std::set<std::string> ids_of(const std::vector<json>& items, const char* field = "id") {
    std::set<std::string> out;
    for (const json& item : items) out.insert(item.value(field, ""));
    return out;
  }
};

TEST_F(TenantLists, SubscriptionsFilterByTenant) {
  const std::string a1 = subscribe_id({{"url", kNowhere}, {"tenant", "cust_a"}});
  const std::string b = subscribe_id({{"url", kNowhere}, {"tenant", "cust_b"}});
  const std::string a2 = subscribe_id({{"url", kNowhere}, {"tenant", "cust_a"}});
  const std::string platform = subscribe_id({{"url", kNowhere}});

  EXPECT_EQ(ids_of(items("/v1/subscriptions?tenant=cust_a")), (std::set<std::string>{a1, a2}));
  EXPECT_EQ(ids_of(items("/v1/subscriptions?tenant=cust_b")), (std::set<std::string>{b}));
  EXPECT_TRUE(items("/v1/subscriptions?tenant=cust_c").empty());
  EXPECT_EQ(ids_of(items("/v1/subscriptions")), (std::set<std::string>{a1, b, a2, platform}));
  const HttpResponse r = call("GET", "/v1/subscriptions?tenant=not%20a%20tenant");
  EXPECT_EQ(r.status, 400) << r.describe();
}

TEST_F(TenantLists, SubscriptionPagesReturnEverySubscriptionExactlyOnce) {
  std::vector<std::string> created;
  for (int i = 0; i < 23; ++i) {
    created.push_back(subscribe_id({{"url", kNowhere}, {"tenant", i % 3 == 0 ? "cust_a" : "cust_b"}}));
  }
  // Without a limit, a store of this size fits in one page, as before pagination.
  json page = get("/v1/subscriptions");
  EXPECT_EQ(page["items"].size(), created.size());
  EXPECT_TRUE(page["next_cursor"].is_null()) << page.dump();

  std::vector<std::string> seen;
  std::string path = "/v1/subscriptions?limit=5";
  int pages = 0;
  for (; pages < 100; ++pages) {
    page = get(path);
    ASSERT_TRUE(page["items"].is_array()) << page.dump();
    EXPECT_LE(page["items"].size(), 5u);
    for (const json& item : page["items"]) seen.push_back(item.value("id", ""));
    if (page["next_cursor"].is_null()) break;
    ASSERT_TRUE(page["next_cursor"].is_string()) << page.dump();
    // One is deleted and one created while the listing runs: the others still come once each.
    if (pages == 1) {
      EXPECT_EQ(call("DELETE", "/v1/subscriptions/" + created[0]).status, 204);
      created.push_back(subscribe_id({{"url", kNowhere}}));
    }
    path = "/v1/subscriptions?limit=5&cursor=" + page["next_cursor"].get<std::string>();
  }
  EXPECT_EQ(pages + 1, 5);
  // In id order (creation order), each once; the one deleted after the first page had passed.
  std::vector<std::string> expected = created;
  EXPECT_EQ(seen, expected);

  // By tenant, pages too.
  std::set<std::string> of_a;
  path = "/v1/subscriptions?tenant=cust_a&limit=2";
  for (int i = 0; i < 100; ++i) {
    page = get(path);
    for (const json& item : page["items"]) {
      EXPECT_EQ(item.value("tenant", ""), "cust_a");
      EXPECT_TRUE(of_a.insert(item.value("id", "")).second) << "listed twice: " << item.dump();
    }
    if (!page["next_cursor"].is_string()) break;
    path = "/v1/subscriptions?tenant=cust_a&limit=2&cursor=" + page["next_cursor"].get<std::string>();
  }
  EXPECT_EQ(of_a.size(), 7u);  // 8 created, the first deleted

  for (const char* bad : {"limit=0", "limit=1001", "limit=x", "cursor=nope", "cursor=dlv_0", "colour=red"}) {
    const HttpResponse r = call("GET", std::string("/v1/subscriptions?") + bad);
    EXPECT_EQ(r.status, 400) << bad << " -> " << r.describe();
  }
}

TEST_F(TenantLists, DeliveriesAndTheDeadLetterQueueFilterByTenant) {
  TestSubscriber receiver;
  receiver.respond(Reply::status(410));  // Gone: dead at the first attempt
  start({"--allow-cidr", "127.0.0.0/8"});
  const std::string platform = subscribe_id({{"url", receiver.url("/hook")}});
  std::vector<std::string> of_a, of_b;
  for (int i = 0; i < 3; ++i) {
    of_a.push_back(publish_event({{"type", "x"}, {"tenant", "cust_a"}, {"payload", {{"n", i}}}}, 1));
  }
  of_b.push_back(publish_event({{"type", "x"}, {"tenant", "cust_b"}, {"payload", {{"n", 9}}}}, 1));
  const std::string untenanted = publish_event({{"type", "x"}, {"payload", {{"n", 10}}}}, 1);

  EXPECT_EQ(ids_of(items("/v1/deliveries?tenant=cust_a"), "event_id"), std::set<std::string>(of_a.begin(), of_a.end()));
  EXPECT_EQ(ids_of(items("/v1/deliveries?tenant=cust_b&subscription_id=" + platform), "event_id"),
            std::set<std::string>(of_b.begin(), of_b.end()));
  EXPECT_TRUE(items("/v1/deliveries?tenant=cust_c").empty());
  EXPECT_EQ(items("/v1/deliveries").size(), 5u);

  ASSERT_TRUE(eventually([&] { return items("/v1/dlq").size() == 5; }));
  EXPECT_EQ(ids_of(items("/v1/dlq?tenant=cust_a"), "event_id"), std::set<std::string>(of_a.begin(), of_a.end()));
  EXPECT_EQ(items("/v1/dlq?tenant=cust_a&limit=2").size(), 2u);
  EXPECT_EQ(ids_of(items("/v1/dlq?tenant=cust_b"), "event_id"), std::set<std::string>(of_b.begin(), of_b.end()));

  // Redrive one tenant's dead deliveries: only those leave the DLQ.
  receiver.respond(Reply::ok());
  const HttpResponse r = call("POST", "/v1/dlq/retry", json{{"tenant", "cust_b"}}.dump());
  ASSERT_EQ(r.status, 200) << r.describe();
  EXPECT_EQ(r.json().value("retried", -1), 1) << r.describe();
  await_state(delivery_id(of_b[0], platform), "succeeded");
  EXPECT_EQ(ids_of(items("/v1/dlq"), "event_id").count(untenanted), 1u);
  EXPECT_EQ(items("/v1/dlq?tenant=cust_a").size(), 3u);
  EXPECT_TRUE(items("/v1/dlq?tenant=cust_b").empty());
  EXPECT_EQ(call("GET", "/v1/deliveries?tenant=bad%2Ftenant").status, 400);
  EXPECT_EQ(call("POST", "/v1/dlq/retry", json{{"tenant", true}}.dump()).status, 400);
}

}  // namespace tenant_lists_test
}  // namespace relay::test
