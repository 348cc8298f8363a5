// Black-box tests of the dead-letter queue and the delivery listings (spec section 2,
// "Deliveries and the dead-letter queue"): deliveries die when their retry window closes or on
// 410, are listed and filtered, redriven in bulk or one by one, and discarded; GET
// /v1/deliveries filters and pages. Real relayd, real subscriber servers.

#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/relayd_api_test.h"
#include "tests/support/test_subscriber.h"

namespace relay::test {
namespace dlq_test {

using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;


// Loopback subscribers, and a 1s retry window so that failing deliveries die quickly: after
// about 4 attempts each (0, 0.1, 0.3, 0.7s), which keeps a subscription with a few failing
// deliveries below the 20 consecutive failures that open its circuit (and hold a redrive for the
// 30s probe).
const std::vector<std::string> kFastRetries{"--allow-cidr",      "127.0.0.0/8", "--retry-initial", "100ms",
                                            "--retry-max-delay", "400ms",       "--retry-window",  "1s"};

std::set<std::string> field_set(const std::vector<json>& items, const char* field) {
  std::set<std::string> out;
  for (const json& item : items) out.insert(item.value(field, ""));
  return out;
}

class DeadLetters : public RelaydApiTest {
 protected:
  void SetUp() override { start(kFastRetries); }

  // Polls the listing at `path` until it has `n` items; the last page.
  std::vector<json> await_items(const std::string& path, std::size_t n) {
    std::vector<json> last;
    const bool reached = eventually([&] {
      last = items(path);
      return last.size() == n;
    });
    EXPECT_TRUE(reached) << path << " never listed " << n << " items, last: " << json(last).dump();
    return last;
  }
  // Every item of a listing, following next_cursor; checks the page sizes against `limit`.
  std::vector<json> all_pages(const std::string& path, std::size_t limit, std::size_t* pages = nullptr) {
    std::vector<json> out;
    std::string cursor;
    std::size_t count = 0;
    for (;;) {
      const std::string sep = path.find('?') == std::string::npos ? "?" : "&";
      std::string url = path + sep + "limit=" + std::to_string(limit);
      if (!cursor.empty()) url += "&cursor=" + url_encode(cursor);
      const json page = get(url);
      const auto page_items = page.value("items", json::array());
      EXPECT_LE(page_items.size(), limit) << url;
      for (const json& item : page_items) out.push_back(item);
      ++count;
      const json next = page.value("next_cursor", json());
      if (next.is_null() || (next.is_string() && next.get<std::string>().empty())) break;
      if (!next.is_string() || count > 20) {
        ADD_FAILURE() << "bad next_cursor: " << page.dump();
        break;
      }
      cursor = next.get<std::string>();
    }
    if (pages) *pages = count;
    return out;
  }
};

TEST_F(DeadLetters, FailuresDieWhenTheWindowClosesAndARedriveDeliversThem) {
  TestSubscriber sub;
  sub.respond(Reply::status(500, "temporarily broken"));
  const std::string a = subscribe_id({{"url", sub.url("/a")}});
  const std::string b = subscribe_id({{"url", sub.url("/b")}, {"event_types", {"meeting.*"}}});
  ASSERT_FALSE(a.empty() || b.empty());
  std::vector<std::string> events{publish("meeting.completed", {{"n", 1}}, 2), publish("meeting.completed", {{"n", 2}}, 2),
                                  publish("bot.joined", {{"n", 3}}, 1)};

  const std::vector<json> dead = await_items("/v1/dlq", 5);
  ASSERT_EQ(dead.size(), 5u);
  for (const json& d : dead) {
    EXPECT_EQ(d.value("state", ""), "dead") << d.dump();
    EXPECT_EQ(d.value("last_error", ""), "http_5xx") << d.dump();
    EXPECT_GE(d.value("attempt_count", 0), 2) << "retried within the window before dying: " << d.dump();
  }
  const json one = get("/v1/deliveries/" + dead[0].value("id", ""));
  EXPECT_FALSE(one.value("completed_at", json()).is_null()) << one.dump();
  for (const json& attempt : one.value("attempts", json::array())) {
    EXPECT_EQ(attempt.value("http_status", 0), 500);
    EXPECT_EQ(attempt.value("response_body", ""), "temporarily broken");
  }

  // Filters.
  const auto of_b = items("/v1/dlq?subscription_id=" + b);
  EXPECT_EQ(of_b.size(), 2u);
  EXPECT_EQ(field_set(of_b, "subscription_id"), std::set<std::string>{b});
  const auto bots = items("/v1/dlq?event_type=bot.joined");
  ASSERT_EQ(bots.size(), 1u);
  EXPECT_EQ(bots[0].value("event_id", ""), events[2]);
  EXPECT_EQ(bots[0].value("subscription_id", ""), a);
  EXPECT_EQ(items("/v1/dlq?subscription_id=" + a + "&event_type=meeting.completed").size(), 2u);
  EXPECT_EQ(items("/v1/dlq?since=2000-01-01T00:00:00Z").size(), 5u);
  EXPECT_EQ(items("/v1/dlq?until=2000-01-01T00:00:00Z").size(), 0u);
  EXPECT_EQ(items("/v1/dlq?since=2999-01-01T00:00:00Z").size(), 0u);
  EXPECT_EQ(items("/v1/dlq?subscription_id=sub_unknown").size(), 0u);
  EXPECT_EQ(call("GET", "/v1/dlq?limit=0").status, 400);

  // The subscriber recovers; redrive one subscription's dead letters, then the rest.
  sub.respond(Reply::ok());
  const std::size_t before = sub.request_count();
  const HttpResponse redrive_b = call("POST", "/v1/dlq/retry", json{{"subscription_id", b}}.dump());
  ASSERT_EQ(redrive_b.status, 200) << redrive_b.describe();
  EXPECT_EQ(redrive_b.json(), (json{{"retried", 2}}));
  for (const json& d : of_b) await_state(d.value("id", ""), "succeeded");
  EXPECT_EQ(items("/v1/dlq").size(), 3u);

  const HttpResponse redrive_rest = call("POST", "/v1/dlq/retry", "{}");
  ASSERT_EQ(redrive_rest.status, 200) << redrive_rest.describe();
  EXPECT_EQ(redrive_rest.json(), (json{{"retried", 3}}));
  for (const json& d : dead) {
    const json done = await_state(d.value("id", ""), "succeeded");
    const auto attempts = done.value("attempts", json::array());
    ASSERT_FALSE(attempts.empty());
    EXPECT_EQ(attempts.back().value("outcome", ""), "success") << done.dump();
  }
  EXPECT_TRUE(items("/v1/dlq").empty());
  EXPECT_EQ(sub.request_count(), before + 5) << "each redriven delivery is attempted once more";
  const HttpResponse nothing = call("POST", "/v1/dlq/retry", "{}");
  EXPECT_EQ(nothing.json(), (json{{"retried", 0}})) << nothing.describe();
}

TEST_F(DeadLetters, RetryOfOneDeadDeliveryAttemptsItAgain) {
  TestSubscriber sub;
  sub.respond(Reply::status(410));
  const std::string s = subscribe_id({{"url", sub.url("/hook")}});
  const std::string first = delivery_id(publish("meeting.completed", {{"n", 1}}, 1), s);
  const std::string second = delivery_id(publish("meeting.completed", {{"n", 2}}, 1), s);
  await_state(first, "dead");
  await_state(second, "dead");

  sub.respond(Reply::ok());
  const HttpResponse retried = call("POST", "/v1/deliveries/" + first + "/retry");
  ASSERT_EQ(retried.status, 200) << retried.describe();
  EXPECT_EQ(retried.json().value("id", ""), first);
  EXPECT_NE(retried.json().value("state", ""), "dead") << retried.describe();
  const json done = await_state(first, "succeeded");
  EXPECT_EQ(done.value("attempts", json::array()).size(), 2u) << done.dump();
  ASSERT_TRUE(sub.wait_for_requests(3, kApiWait));
  const RecordedRequest again = sub.requests().back();
  EXPECT_EQ(again.header("X-Relay-Delivery-Id").value_or(""), first);
  EXPECT_EQ(again.header("X-Relay-Attempt").value_or(""), "2");

  // Only the retried one left the DLQ.
  const auto dlq = items("/v1/dlq");
  ASSERT_EQ(dlq.size(), 1u);
  EXPECT_EQ(dlq[0].value("id", ""), second);

  EXPECT_EQ(call("POST", "/v1/deliveries/" + first + "/retry").status, 409) << "a succeeded delivery is final";
  EXPECT_EQ(call("POST", "/v1/deliveries/dlv_00000000000000000000000000/retry").status, 404);
  EXPECT_EQ(call("POST", "/v1/deliveries/nonsense/retry").status, 404);
}

TEST_F(DeadLetters, RedriveAppliesEventTypeTimeAndLimitFilters) {
  TestSubscriber sub;
  sub.respond(Reply::status(410));
  const std::string s = subscribe_id({{"url", sub.url("/hook")}});
  ASSERT_FALSE(s.empty());
  // Two groups of dead letters, one dead before `split` and one after it.
  std::vector<std::string> early{delivery_id(publish("bot.joined", {{"n", 1}}, 1), s),
                                 delivery_id(publish("meeting.completed", {{"n", 2}}, 1), s)};
  for (const std::string& id : early) await_state(id, "dead");
  const auto split = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch()).count() + 1;
  ASSERT_TRUE(eventually([&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
               .count() > split;
  }));
  std::vector<std::string> late;  // one after the other, so they die in this order
  for (int n = 3; n <= 5; ++n) {
    late.push_back(delivery_id(publish("meeting.completed", {{"n", n}}, 1), s));
    await_state(late.back(), "dead");
  }
  sub.respond(Reply::ok());
  const auto redrive = [&](const json& filter) {
    const HttpResponse r = call("POST", "/v1/dlq/retry", filter.dump());
    EXPECT_EQ(r.status, 200) << filter.dump() << " -> " << r.describe();
    return r.json().value("retried", -1);
  };

  // Filters that match nothing redrive nothing.
  EXPECT_EQ(redrive({{"until", "2000-01-01T00:00:00Z"}}), 0);
  EXPECT_EQ(redrive({{"since", "2999-01-01T00:00:00Z"}}), 0);
  EXPECT_EQ(redrive({{"event_type", "calendar.sync_events"}}), 0);
  EXPECT_EQ(items("/v1/dlq").size(), 5u);

  // event_type and until: only the early meeting.completed one.
  EXPECT_EQ(redrive({{"event_type", "meeting.completed"}, {"until", std::to_string(split)}}), 1);
  await_state(early[1], "succeeded");
  EXPECT_EQ(delivery(early[0]).value("state", ""), "dead");
  // since and limit: two of the three late ones, newest first like the listing.
  EXPECT_EQ(redrive({{"since", std::to_string(split)}, {"limit", 2}}), 2);
  await_state(late[2], "succeeded");
  await_state(late[1], "succeeded");
  EXPECT_EQ(delivery(late[0]).value("state", ""), "dead");
  EXPECT_EQ(field_set(items("/v1/dlq"), "id"), (std::set<std::string>{early[0], late[0]}));

  EXPECT_EQ(call("POST", "/v1/dlq/retry", json{{"limit", 0}}.dump()).status, 400);
  EXPECT_EQ(call("POST", "/v1/dlq/retry", json{{"state", "dead"}}.dump()).status, 400);
  EXPECT_EQ(redrive(json::object()), 2);
}

TEST_F(DeadLetters, RetryOfAPendingDeliveryAttemptsItNowWithAFreshWindow) {
  TestSubscriber sub;
  sub.enqueue(Reply::status(500, "not yet"));
  // After the first failure the next attempt would be ten minutes away.
  const std::string s =
      subscribe_id({{"url", sub.url("/hook")}, {"retry", {{"initial", "10m"}, {"max_delay", "10m"}, {"window", "1h"}}}});
  const std::string id = delivery_id(publish("meeting.completed", {{"n", 1}}, 1), s);
  ASSERT_TRUE(sub.wait_for_requests(1, kApiWait));
  ASSERT_TRUE(eventually([&] { return delivery(id).value("attempt_count", 0) == 1; }));
  const json scheduled = delivery(id);
  ASSERT_EQ(scheduled.value("state", ""), "pending") << scheduled.dump();

  const HttpResponse retried = call("POST", "/v1/deliveries/" + id + "/retry");
  ASSERT_EQ(retried.status, 200) << retried.describe();
  EXPECT_EQ(retried.json().value("id", ""), id);
  const json done = await_state(id, "succeeded");
  EXPECT_EQ(done.value("attempts", json::array()).size(), 2u) << done.dump();
  ASSERT_EQ(sub.request_count(), 2u);
  EXPECT_EQ(sub.requests().back().header("X-Relay-Attempt").value_or(""), "2");
}

TEST_F(DeadLetters, DiscardRemovesADeadDelivery) {
  TestSubscriber sub;
  sub.respond("/gone", Reply::status(410));
  const std::string gone = subscribe_id({{"url", sub.url("/gone")}});
  const std::string fine = subscribe_id({{"url", sub.url("/fine")}});
  const std::string e1 = publish("meeting.completed", {{"n", 1}}, 2);
  const std::string e2 = publish("meeting.completed", {{"n", 2}}, 2);
  const std::string discarded = delivery_id(e1, gone);
  const std::string kept = delivery_id(e2, gone);
  const std::string succeeded = delivery_id(e1, fine);
  await_state(discarded, "dead");
  await_state(kept, "dead");
  await_state(succeeded, "succeeded");

  const HttpResponse removed = call("DELETE", "/v1/dlq/" + discarded);
  EXPECT_EQ(removed.status, 204) << removed.describe();
  EXPECT_TRUE(removed.body.empty());
  const auto dlq = items("/v1/dlq");
  ASSERT_EQ(dlq.size(), 1u);
  EXPECT_EQ(dlq[0].value("id", ""), kept);
  EXPECT_EQ(call("GET", "/v1/deliveries/" + discarded).status, 404);
  EXPECT_EQ(call("DELETE", "/v1/dlq/" + discarded).status, 404);
  EXPECT_EQ(call("DELETE", "/v1/dlq/" + succeeded).status, 409) << "only dead deliveries are discarded";
  EXPECT_EQ(get("/v1/deliveries/" + succeeded).value("state", ""), "succeeded");

  // A redrive no longer sees the discarded one.
  sub.respond("/gone", Reply::ok());
  const std::size_t before = sub.requests("/gone").size();
  EXPECT_EQ(call("POST", "/v1/dlq/retry", "{}").json(), (json{{"retried", 1}}));
  await_state(kept, "succeeded");
  const auto after = sub.requests("/gone");
  ASSERT_EQ(after.size(), before + 1);
  EXPECT_EQ(after.back().header("X-Relay-Delivery-Id").value_or(""), kept);
}

TEST_F(DeadLetters, DeliveryListingFiltersAndPagesNewestFirst) {
  TestSubscriber sub;
  sub.respond("/b", Reply::status(410));
  const std::string a = subscribe_id({{"url", sub.url("/a")}, {"event_types", {"order.*"}}});
  const std::string b = subscribe_id({{"url", sub.url("/b")}, {"event_types", {"order.paid"}}});
  std::vector<std::string> events;
  for (int i = 0; i < 5; ++i) {
    const bool paid = i % 2 == 1;
    events.push_back(publish(paid ? "order.paid" : "order.created", {{"order", i}}, paid ? 2 : 1));
  }
  for (const std::string& e : events) {
    for (const json& d : deliveries_of_event(e)) {
      await_state(d.value("id", ""), d.value("subscription_id", "") == a ? "succeeded" : "dead");
    }
  }

  EXPECT_EQ(items("/v1/deliveries").size(), 7u);
  const auto succeeded = items("/v1/deliveries?state=succeeded");
  EXPECT_EQ(succeeded.size(), 5u);
  EXPECT_EQ(field_set(succeeded, "subscription_id"), std::set<std::string>{a});
  const auto dead = items("/v1/deliveries?state=dead");
  EXPECT_EQ(dead.size(), 2u);
  EXPECT_EQ(field_set(dead, "subscription_id"), std::set<std::string>{b});
  EXPECT_TRUE(items("/v1/deliveries?state=pending").empty());
  EXPECT_EQ(items("/v1/deliveries?subscription_id=" + b).size(), 2u);
  const auto paid = items("/v1/deliveries?event_type=order.paid");
  EXPECT_EQ(paid.size(), 4u);
  EXPECT_EQ(field_set(paid, "event_type"), std::set<std::string>{"order.paid"});
  EXPECT_EQ(items("/v1/deliveries?event_type=order.paid&subscription_id=" + a).size(), 2u);
  EXPECT_TRUE(items("/v1/deliveries?event_type=order.created&state=dead").empty());
  const auto of_first = items("/v1/deliveries?event_id=" + events[0]);
  ASSERT_EQ(of_first.size(), 1u);
  EXPECT_EQ(of_first[0].value("subscription_id", ""), a);
  EXPECT_EQ(items("/v1/deliveries?since=2999-01-01T00:00:00Z").size(), 0u);
  EXPECT_EQ(call("GET", "/v1/deliveries?state=bogus").error_code(), "invalid_field");
  EXPECT_EQ(call("GET", "/v1/deliveries?limit=0").status, 400);

  // limit=2 over sub a's five deliveries: pages of 2, 2, 1, newest first, nothing twice.
  std::size_t pages = 0;
  const auto paged = all_pages("/v1/deliveries?subscription_id=" + a, 2, &pages);
  EXPECT_EQ(pages, 3u);
  ASSERT_EQ(paged.size(), 5u);
  EXPECT_EQ(field_set(paged, "id").size(), 5u);
  std::vector<std::string> event_order;
  for (const json& d : paged) event_order.push_back(d.value("event_id", ""));
  EXPECT_EQ(event_order, std::vector<std::string>(events.rbegin(), events.rend()));
  for (std::size_t i = 1; i < paged.size(); ++i) {
    EXPECT_GT(paged[i - 1].value("id", ""), paged[i].value("id", "")) << "ids sort by creation time";
  }

  // The DLQ pages the same way.
  std::size_t dlq_pages = 0;
  const auto dlq = all_pages("/v1/dlq", 1, &dlq_pages);
  EXPECT_EQ(dlq.size(), 2u);
  EXPECT_EQ(field_set(dlq, "id"), field_set(dead, "id"));
  EXPECT_GE(dlq_pages, 2u);
}

}  // namespace dlq_test
}  // namespace relay::test
