// Pacing limits of the contract (section 3) seen from the receivers: a subscription's
// rate_limit_per_second and max_in_flight, and the global --max-in-flight. Each check is a lower
// bound on time or an upper bound on concurrency computed from when requests arrived, so a slow
// machine cannot make it fail: only relay sending too much, too soon can.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/http_client.h"
#include "tests/support/relayd_api_test.h"
#include "tests/support/test_subscriber.h"

namespace relay::test {
namespace pacing_test {

using namespace std::chrono_literals;
using TimePoint = std::chrono::steady_clock::time_point;

// The largest number of requests being answered at one moment, when every request is answered
// `hold` after it arrived: relay frees a slot only when the answer is back, so a request that
// takes a freed slot arrives at or after `arrival + hold` of the one before it.
std::size_t max_overlap(const std::vector<RecordedRequest>& requests, std::chrono::milliseconds hold) {
  std::vector<TimePoint> starts;
  for (const RecordedRequest& r : requests) starts.push_back(r.received_at);
  std::sort(starts.begin(), starts.end());
  std::size_t most = 0;
  for (std::size_t i = 0; i < starts.size(); ++i) {
    // Requests that arrived within `hold` before this one are still being answered.
    const auto first_open = std::lower_bound(starts.begin(), starts.begin() + static_cast<std::ptrdiff_t>(i) + 1,
                                             starts[i] - hold + 1ms);
    most = std::max(most, static_cast<std::size_t>(starts.begin() + static_cast<std::ptrdiff_t>(i) + 1 - first_open));
  }
  return most;
}

class Pacing : public RelaydApiTest {
 protected:
  // Publishes `n` events of `type` in one batch, so that they are all due at the same moment.
  void publish_batch(const std::string& type, std::size_t n) {
    json events = json::array();
    for (std::size_t i = 0; i < n; ++i) events.push_back({{"type", type}, {"payload", {{"n", i}}}});
    const HttpResponse r = call("POST", "/v1/events/batch", json{{"events", events}}.dump());
    ASSERT_EQ(r.status, 200) << r.describe();
  }
};

TEST_F(Pacing, RateLimitSpacesAttemptsToOneSubscription) {
  TestSubscriber receiver;
  start({"--allow-cidr", "127.0.0.0/8"});
  constexpr int kRate = 4;
  const std::string limited = subscribe_id({{"url", receiver.url("/limited")}, {"rate_limit_per_second", kRate}});
  ASSERT_FALSE(limited.empty());

  constexpr std::size_t kEvents = 16;
  publish_batch("meeting.completed", kEvents);
  ASSERT_TRUE(receiver.wait_for_requests(kEvents, kApiWait)) << receiver.request_count() << " of " << kEvents;

  // A token bucket of one second's burst: after the first kRate requests, request i needs
  // (i - kRate + 1) more tokens, which take that many 1/kRate seconds to accrue.
  const std::vector<RecordedRequest> requests = receiver.requests();
  std::vector<TimePoint> arrivals;
  for (const RecordedRequest& r : requests) arrivals.push_back(r.received_at);
  std::sort(arrivals.begin(), arrivals.end());
  const auto tolerance = 50ms;  // the bucket refills in whole milliseconds
  for (std::size_t i = kRate; i < arrivals.size(); ++i) {
    const auto earliest = arrivals.front() + std::chrono::milliseconds((i - kRate + 1) * 1000 / kRate) - tolerance;
    EXPECT_GE(arrivals[i], earliest) << "request " << i << " came "
                                     << std::chrono::duration_cast<std::chrono::milliseconds>(earliest - arrivals[i]).count()
                                     << " ms too early for " << kRate << "/s";
  }
}

TEST_F(Pacing, MaxInFlightBoundsConcurrentRequestsPerSubscriptionAndOverall) {
  constexpr auto kHold = 300ms;
  TestSubscriber per_subscription;
  per_subscription.respond(Reply::ok().after(kHold));
  TestSubscriber global_a;
  global_a.respond(Reply::ok().after(kHold));
  TestSubscriber global_b;
  global_b.respond(Reply::ok().after(kHold));
  constexpr std::size_t kGlobal = 3;
  start({"--allow-cidr", "127.0.0.0/8", "--max-in-flight", std::to_string(kGlobal)});
  ASSERT_FALSE(subscribe_id({{"url", per_subscription.url("/two")}, {"max_in_flight", 2}, {"event_types", {"bot.*"}}})
                   .empty());
  ASSERT_FALSE(subscribe_id({{"url", global_a.url("/a")}, {"event_types", {"meeting.*"}}}).empty());
  ASSERT_FALSE(subscribe_id({{"url", global_b.url("/b")}, {"event_types", {"meeting.*"}}}).empty());

  constexpr std::size_t kEvents = 8;
  publish_batch("bot.joined", kEvents);
  ASSERT_TRUE(per_subscription.wait_for_requests(kEvents, kApiWait));
  EXPECT_EQ(max_overlap(per_subscription.requests(), kHold), 2u) << "max_in_flight 2 of one subscription";

  publish_batch("meeting.completed", kEvents);
  ASSERT_TRUE(global_a.wait_for_requests(kEvents, kApiWait));
  ASSERT_TRUE(global_b.wait_for_requests(kEvents, kApiWait));
  std::vector<RecordedRequest> both = global_a.requests();
  for (const RecordedRequest& r : global_b.requests()) both.push_back(r);
  EXPECT_LE(max_overlap(both, kHold), kGlobal) << "--max-in-flight across subscriptions";
  EXPECT_GE(max_overlap(both, kHold), 2u) << "the two subscriptions are attempted side by side";
}

}  // namespace pacing_test
}  // namespace relay::test
