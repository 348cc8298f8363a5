// Ordering keys and coalescing (spec section 6) end to end: a real relayd, a real subscriber.
// Per key one delivery at a time in event order, retries of the head hold the key, a dead head
// does not, other keys flow, waiting deliveries name what blocks them, coalescing delivers only
// the newest of what waited while the receiver was down, and keys share their subscription's
// circuit.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/support/relayd_api_test.h"
#include "tests/support/test_subscriber.h"

namespace relay::test {
namespace ordering_test {

using nlohmann::json;
using namespace std::chrono_literals;

// A receiver that refuses events until released: `refuse` names the status for an attempt (0:
// accept). It keeps the payloads it accepted ("k"/"n") in arrival order.
class Receiver {
 public:
  explicit Receiver(std::function<int(const json& payload, int attempt)> refuse) : refuse_(std::move(refuse)) {
    server_.set_handler([this](const RecordedRequest& r) -> std::optional<Reply> {
      const json payload = json::parse(r.body, nullptr, false);
      const int attempt = std::stoi(r.header("X-Relay-Attempt").value_or("1"));
      if (const int refusal = released_ ? 0 : refuse_(payload, attempt); refusal != 0) return Reply::status(refusal);
      std::lock_guard lock(mutex_);
      accepted_.push_back(payload.value("k", "") + std::to_string(payload.value("n", -1)));
      return Reply::ok();
    });
  }
  std::string url() const { return server_.url("/hook"); }
  void release() { released_ = true; }
  std::vector<std::string> accepted() const {
    std::lock_guard lock(mutex_);
    return accepted_;
  }
  std::size_t attempts_of(const std::string& key, int n) const {
    std::size_t count = 0;
    for (const auto& r : server_.requests()) {
      const json payload = json::parse(r.body, nullptr, false);
      if (payload.value("k", "") == key && payload.value("n", -1) == n) ++count;
    }
    return count;
  }
  TestSubscriber& server() { return server_; }

 private:
  std::function<int(const json&, int)> refuse_;
  std::atomic<bool> released_{false};
  mutable std::mutex mutex_;
  std::vector<std::string> accepted_;
  TestSubscriber server_;
};

class Ordering : public RelaydApiTest {
 protected:
  void SetUp() override {
    start({"--allow-cidr", "127.0.0.0/8", "--retry-initial", "100ms", "--retry-max-delay", "200ms"});
  }

  std::string ordered_subscription(const std::string& url, bool coalesce = false) {
    return subscribe_id(
        json{{"url", url}, {"event_types", {"calendar.*"}}, {"ordering", "key"}, {"coalesce", coalesce}});
  }

  // Publishes calendar.update {"k": key, "n": n} with ordering key `key`; the event id.
  std::string publish_keyed(const std::string& key, int n) {
    const HttpResponse r =
        call("POST", "/v1/events",
             json{{"type", "calendar.update"}, {"payload", {{"k", key}, {"n", n}}}, {"ordering_key", key}}.dump());
    EXPECT_EQ(r.status, 202) << r.describe();
    return r.status == 202 ? r.json().value("id", "") : "";
  }

  std::optional<double> metric(const std::string& series) {
    const std::string text = call("GET", "/metrics").body;
    const auto at = text.find("\n" + series + " ");
    if (at == std::string::npos) return std::nullopt;
    return std::stod(text.substr(at + series.size() + 2));
  }
};

TEST_F(Ordering, RetriesOfTheHeadHoldItsKeyWhileOtherKeysFlowAndWaitingDeliveriesShowWhatBlocksThem) {
  Receiver receiver([](const json& p, int) { return p.value("k", "") == "a" && p.value("n", 0) == 1 ? 500 : 0; });
  const std::string sub = ordered_subscription(receiver.url());
  std::vector<std::string> a;
  for (int n = 1; n <= 3; ++n) a.push_back(delivery_id(publish_keyed("a", n), sub));
  const std::string b = delivery_id(publish_keyed("b", 1), sub);

  await_state(b, "succeeded");
  ASSERT_TRUE(eventually([&] { return receiver.attempts_of("a", 1) >= 2; }));  // the head is retried
  for (int i : {1, 2}) {
    const json waiting = delivery(a[i]);
    EXPECT_EQ(waiting.value("state", ""), "pending") << waiting.dump();
    EXPECT_EQ(waiting.value("blocked_by", ""), a[0]) << waiting.dump();
    EXPECT_TRUE(waiting["next_attempt_at"].is_null()) << waiting.dump();
  }
  EXPECT_EQ(receiver.attempts_of("a", 2), 0u);
  EXPECT_FALSE(delivery(a[0]).contains("blocked_by"));
  // A waiting delivery cannot jump its queue.
  EXPECT_EQ(call("POST", "/v1/deliveries/" + a[2] + "/retry").status, 409);

  receiver.release();
  await_state(a[2], "succeeded");
  EXPECT_EQ(receiver.accepted(), (std::vector<std::string>{"b1", "a1", "a2", "a3"}));
  EXPECT_FALSE(delivery(a[2]).contains("blocked_by"));
}

TEST_F(Ordering, ADeadHeadDoesNotBlockItsSuccessors) {
  // The head fails twice, then gets 410 Gone: only then is the second one attempted.
  Receiver receiver([](const json& p, int attempt) { return p.value("n", 0) != 1 ? 0 : attempt < 3 ? 500 : 410; });
  const std::string sub = ordered_subscription(receiver.url());
  const std::string first = delivery_id(publish_keyed("k", 1), sub);
  const std::string second = delivery_id(publish_keyed("k", 2), sub);
  await_state(second, "succeeded");
  EXPECT_EQ(delivery(first).value("state", ""), "dead");
  EXPECT_EQ(receiver.accepted(), (std::vector<std::string>{"k2"}));
  std::vector<std::string> arrivals;
  for (const auto& r : receiver.server().requests()) {
    const json p = json::parse(r.body, nullptr, false);
    arrivals.push_back(p.value("k", "") + std::to_string(p.value("n", -1)) + "#" +
                       r.header("X-Relay-Attempt").value_or(""));
  }
  EXPECT_EQ(arrivals, (std::vector<std::string>{"k1#1", "k1#2", "k1#3", "k2#1"}));
}

TEST_F(Ordering, CoalescingDeliversOnlyTheNewestOfWhatWaitedWhileTheReceiverWasDown) {
  Receiver receiver([](const json&, int) { return 503; });  // down
  const std::string sub = ordered_subscription(receiver.url(), /*coalesce=*/true);
  const std::string series = "relay_deliveries_superseded_total{subscription=\"" + sub + "\"}";
  EXPECT_EQ(metric(series), 0.0);  // exists from the subscription's creation

  std::vector<std::string> c;
  c.push_back(delivery_id(publish_keyed("cal", 1), sub));
  ASSERT_TRUE(eventually([&] { return receiver.attempts_of("cal", 1) >= 1; }));
  for (int n = 2; n <= 5; ++n) c.push_back(delivery_id(publish_keyed("cal", n), sub));
  EXPECT_EQ(delivery(c[2]).value("blocked_by", ""), c[0]);

  receiver.release();  // back up
  await_state(c[4], "succeeded");
  EXPECT_EQ(receiver.accepted(), (std::vector<std::string>{"cal1", "cal5"}));
  for (int i : {1, 2, 3}) {
    const json d = delivery(c[i]);
    EXPECT_EQ(d.value("state", ""), "superseded") << d.dump();
    EXPECT_EQ(receiver.attempts_of("cal", i + 1), 0u);
    EXPECT_EQ(call("POST", "/v1/deliveries/" + c[i] + "/retry").status, 409);
  }
  EXPECT_EQ(metric(series), 3.0);
  EXPECT_TRUE(items("/v1/dlq").empty());
}

// Keys share their subscription's circuit: the heads of many keys refused together are that many
// consecutive failures, even though each key has only one. Here 25 keys of 8 events arrive in one
// batch, so their 25 heads start at once and are all refused (no success can come between: the
// first retry is 800 ms away), which opens the circuit; the deliveries of the kill -9 test meet
// the same when keys resume together (see delivery_crash_test.cpp). Once a probe closes it, every
// key resumes, in order.
TEST_F(Ordering, HeadsOfManyKeysRefusedTogetherOpenTheCircuitAndEveryKeyResumesInOrderOnceAProbeClosesIt) {
  start({"--allow-cidr", "127.0.0.0/8", "--retry-initial", "1s", "--retry-max-delay", "1s", "--circuit-probe-interval",
         "200ms"});
  constexpr int kKeys = 25;
  constexpr int kPerKey = 8;
  // The first and the eighth of each key are refused once.
  Receiver receiver([](const json& p, int attempt) { return attempt == 1 && p.value("n", -1) % 7 == 0 ? 500 : 0; });
  const std::string sub = ordered_subscription(receiver.url());
  json events = json::array();
  for (int n = 0; n < kPerKey; ++n) {
    for (int k = 0; k < kKeys; ++k) {
      const std::string key = "k" + std::to_string(k) + "/";
      events.push_back(json{{"type", "calendar.update"}, {"payload", {{"k", key}, {"n", n}}}, {"ordering_key", key}});
    }
  }
  const HttpResponse batch = call("POST", "/v1/events/batch", json{{"events", events}}.dump());
  ASSERT_EQ(batch.status, 200) << batch.describe();

  EXPECT_TRUE(relayd().wait_for_log([](const std::string& line) {
    return line.find("circuit opened") != std::string::npos && line.find("\"consecutive_failures\":20") != std::string::npos;
  })) << relayd().log_text();
  ASSERT_TRUE(eventually([&] { return receiver.accepted().size() >= static_cast<std::size_t>(kKeys * kPerKey); }, 60s))
      << receiver.accepted().size() << " of " << kKeys * kPerKey << " accepted";

  std::map<std::string, std::vector<int>> by_key;  // accepted numbers, in arrival order
  for (const std::string& accepted : receiver.accepted()) {
    const auto slash = accepted.find('/');
    by_key[accepted.substr(0, slash)].push_back(std::stoi(accepted.substr(slash + 1)));
  }
  ASSERT_EQ(by_key.size(), static_cast<std::size_t>(kKeys));
  std::vector<int> in_order(kPerKey);
  for (int n = 0; n < kPerKey; ++n) in_order[n] = n;
  for (const auto& [key, numbers] : by_key) EXPECT_EQ(numbers, in_order) << key;
  // Closed again: the gauge is published every second.
  const std::string circuit = "relay_circuit_state{subscription=\"" + sub + "\"}";
  EXPECT_TRUE(eventually([&] { return metric(circuit) == 0.0; })) << metric(circuit).value_or(-1);
}

TEST_F(Ordering, WaitingDeliveriesCountAsUnfinishedInTheGaugesAndTheIngestBound) {
  // The head of key "a" is refused and retried an hour later: its three successors wait.
  start({"--allow-cidr", "127.0.0.0/8", "--retry-initial", "1h", "--retry-max-delay", "1h", "--retry-window", "24h",
         "--max-pending-deliveries", "4"});
  Receiver receiver([](const json&, int) { return 500; });
  const std::string sub = ordered_subscription(receiver.url());
  std::vector<std::string> a;
  for (int n = 1; n <= 4; ++n) a.push_back(delivery_id(publish_keyed("a", n), sub));
  ASSERT_TRUE(eventually([&] { return receiver.attempts_of("a", 1) >= 1; }));

  const auto unfinished = [&] {
    double sum = 0;
    for (const char* state : {"pending", "scheduled", "in_flight"}) {
      sum += metric(std::string("relay_deliveries{state=\"") + state + "\"}").value_or(-100);
    }
    return sum;
  };
  EXPECT_TRUE(eventually([&] { return unfinished() == 4.0; })) << unfinished();
  // Four unfinished deliveries reach the bound, waiting ones included.
  const HttpResponse refused = call("POST", "/v1/events", json{{"type", "calendar.update"}, {"payload", json::object()}}.dump());
  EXPECT_EQ(refused.status, 429) << refused.describe();

  // Disabled, the subscription holds all four.
  ASSERT_EQ(call("PATCH", "/v1/subscriptions/" + sub, json{{"enabled", false}}.dump()).status, 200);
  EXPECT_TRUE(eventually([&] { return metric("relay_deliveries{state=\"held\"}") == 4.0 && unfinished() == 0.0; }))
      << unfinished();
}

}  // namespace ordering_test
}  // namespace relay::test
