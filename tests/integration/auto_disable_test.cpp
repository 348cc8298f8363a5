// Black-box tests of automatic disabling (spec section 6): a subscription whose attempts have all
// failed for its disable_after (--disable-after 2s here) is disabled with reason "failing",
// relay.subscription.disabled reaches a subscriber of relay.*, and
// relay_subscriptions_auto_disabled_total counts it; PATCH enabled:true clears the reason and
// the streak; a success in between starts the clock again; "0s" never disables; the streak and
// the reason survive a restart. Real relayd, real subscribers answering 500.

#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "relay/core/time.h"
#include "tests/support/relayd_api_test.h"
#include "tests/support/test_subscriber.h"

namespace relay::test {
namespace auto_disable_test {

using nlohmann::json;
using namespace std::chrono_literals;

// Retries every few hundred ms within a long window (deliveries stay pending), automatic
// disabling after 2 s of failures, and open circuits probed often (a failing subscriber reaches
// 20 consecutive failures in a few seconds).
const std::vector<std::string> kFastDisabling{"--allow-cidr",      "127.0.0.0/8", "--retry-initial",  "100ms",
                                              "--retry-max-delay", "400ms",       "--retry-window",   "1h",
                                              "--disable-after",   "2s",          "--circuit-probe-interval", "200ms"};

UnixMillis wall_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

UnixMillis time_of(const json& object, const char* field) {
  const auto t = parse_time(object.value(field, ""));
  EXPECT_TRUE(t.has_value()) << field << " in " << object.dump();
  return t.value_or(0);
}

class AutoDisable : public RelaydApiTest {
 protected:
  void SetUp() override { start(kFastDisabling); }

  json subscription(const std::string& id) { return get("/v1/subscriptions/" + id); }

  // Polls the subscription until it is disabled; the last answer.
  json await_disabled(const std::string& id) {
    json last;
    const bool disabled = eventually([&] {
      last = subscription(id);
      return last.value("enabled", true) == false;
    });
    EXPECT_TRUE(disabled) << id << " was never disabled: " << last.dump();
    return last;
  }

  // The value of an unlabelled series in relayd's /metrics, or -1.
  double metric(const std::string& name) {
    const HttpResponse scrape = call("GET", "/metrics", "", {});
    std::istringstream lines(scrape.body);
    std::string line;
    while (std::getline(lines, line)) {
      if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
    }
    return -1;
  }

  // Polls relay_subscriptions_auto_disabled_total until it is `n` (it is counted once the
  // disabling is durable and visible, a moment later); whether it got there.
  bool auto_disabled_count_reaches(double n) {
    double last = -1;
    const bool reached = eventually([&] { return (last = metric("relay_subscriptions_auto_disabled_total")) == n; });
    EXPECT_TRUE(reached) << "relay_subscriptions_auto_disabled_total is " << last << ", not " << n;
    return reached;
  }

  // Waits until the watcher received relay.subscription.disabled for `subscription_id`; its payload.
  json await_report(TestSubscriber& watcher, const std::string& subscription_id) {
    json found;
    const bool arrived = watcher.wait_until(
        [&](const std::vector<RecordedRequest>& requests) {
          for (const auto& r : requests) {
            if (r.header("X-Relay-Event-Type") != "relay.subscription.disabled") continue;
            const json payload = json::parse(r.body, nullptr, false);
            if (payload.is_object() && payload.value("subscription_id", "") == subscription_id) {
              found = payload;
              return true;
            }
          }
          return false;
        },
        kApiWait);
    EXPECT_TRUE(arrived) << "relay.subscription.disabled for " << subscription_id << " never arrived";
    return found;
  }

  // Waits until the delivery has more than `attempts` attempts recorded; the delivery.
  json await_attempts_beyond(const std::string& delivery_id, int attempts) {
    json last;
    EXPECT_TRUE(eventually([&] {
      last = delivery(delivery_id);
      return last.value("attempt_count", 0) > attempts;
    })) << last.dump();
    return last;
  }
};

TEST_F(AutoDisable, AFailingSubscriptionIsDisabledReportedCountedAndEnabledAgain) {
  TestSubscriber failing;
  failing.respond(Reply::status(500, "down"));
  TestSubscriber watcher;
  const std::string sub = subscribe_id({{"url", failing.url("/hook")}, {"event_types", {"meeting.*"}}});
  subscribe_id({{"url", watcher.url("/ops")}, {"event_types", {"relay.*"}}});
  EXPECT_TRUE(subscription(sub).value("disabled_reason", json("x")).is_null());
  EXPECT_EQ(metric("relay_subscriptions_auto_disabled_total"), 0);

  const std::string event_id = publish("meeting.completed", {{"n", 1}}, 1);
  const std::string dlv = delivery_id(event_id, sub);
  const json disabled = await_disabled(sub);
  EXPECT_EQ(disabled.value("disabled_reason", ""), "failing") << disabled.dump();
  ASSERT_FALSE(failing.requests().empty());
  const UnixMillis first_attempt = wall_ms(failing.requests().front().received_wall);
  const UnixMillis disabled_at = time_of(disabled, "disabled_at");
  EXPECT_GE(disabled_at - first_attempt, 1'900) << "not before 2 s of failures";
  auto_disabled_count_reaches(1);

  const json report = await_report(watcher, sub);
  EXPECT_EQ(report.value("reason", ""), "failing");
  EXPECT_TRUE(report.value("tenant", json("x")).is_null());
  EXPECT_EQ(report.value("disable_after", ""), "2s");
  EXPECT_EQ(report.value("disabled_at", ""), disabled.value("disabled_at", ""));
  EXPECT_GE(time_of(report, "disabled_at") - time_of(report, "failing_since"), 2'000) << report.dump();
  EXPECT_LE(time_of(report, "failing_since"), first_attempt) << "its first failed attempt started the clock";

  // Disabled, its delivery waits (pending, not dead): what the operator can still get delivered.
  EXPECT_EQ(delivery(dlv).value("state", ""), "pending");

  // Enabled again, the reason goes, and so does the streak: its next failure does not disable it
  // at once (it would, in the batch of that attempt, if the streak of before were still running).
  const HttpResponse enabled = call("PATCH", "/v1/subscriptions/" + sub, R"({"enabled": true})");
  ASSERT_EQ(enabled.status, 200) << enabled.describe();
  EXPECT_TRUE(enabled.json().value("disabled_reason", json("x")).is_null()) << enabled.describe();
  EXPECT_TRUE(enabled.json().value("disabled_at", json("x")).is_null()) << enabled.describe();
  const int attempts = delivery(dlv).value("attempt_count", 0);
  await_attempts_beyond(dlv, attempts);
  EXPECT_TRUE(subscription(sub).value("enabled", false)) << "disabled again at once: the old streak survived";
  // It keeps failing: disabled again 2 s later, and counted again.
  EXPECT_EQ(await_disabled(sub).value("disabled_reason", ""), "failing");
  auto_disabled_count_reaches(2);

  // Disabled by an operator: reason "manual".
  const std::string other = subscribe_id({{"url", watcher.url("/other")}, {"event_types", {"calendar.*"}}});
  const HttpResponse manual = call("PATCH", "/v1/subscriptions/" + other, R"({"enabled": false})");
  ASSERT_EQ(manual.status, 200) << manual.describe();
  EXPECT_EQ(manual.json().value("disabled_reason", ""), "manual");
  EXPECT_FALSE(manual.json().value("disabled_at", json()).is_null());
}

TEST_F(AutoDisable, ASuccessInBetweenStartsTheClockAgain) {
  // Every attempt fails but one: the first attempt of event 1 that comes at least 1 s after the
  // first failure. Event 2 keeps failing, so the subscription is disabled in the end, 2 s after
  // the first failure that followed the success, not after the first failure of all.
  std::mutex mutex;  // before the subscriber, whose thread uses them until it is destroyed
  std::optional<std::chrono::system_clock::time_point> first_failure;
  bool succeeded_once = false;
  TestSubscriber flaky;
  flaky.set_handler([&](const RecordedRequest& r) -> std::optional<Reply> {
    std::lock_guard lock(mutex);
    if (!first_failure) first_failure = r.received_wall;
    const bool event_one = r.body.find(R"("n":1)") != std::string::npos;
    if (event_one && !succeeded_once && r.received_wall - *first_failure >= 1s) {
      succeeded_once = true;
      return Reply::ok();
    }
    return Reply::status(500, "down");
  });
  TestSubscriber watcher;
  const std::string sub = subscribe_id({{"url", flaky.url("/hook")}, {"event_types", {"meeting.*"}}});
  subscribe_id({{"url", watcher.url("/ops")}, {"event_types", {"relay.subscription.disabled"}}});
  publish("meeting.completed", {{"n", 1}}, 1);
  publish("meeting.completed", {{"n", 2}}, 1);

  await_disabled(sub);
  const json report = await_report(watcher, sub);
  std::lock_guard lock(mutex);
  ASSERT_TRUE(succeeded_once) << "the success never came";
  ASSERT_TRUE(first_failure);
  const UnixMillis failing_since = time_of(report, "failing_since");
  EXPECT_GE(failing_since - wall_ms(*first_failure), 900) << "the streak did not start again after the success: "
                                                          << report.dump();
  EXPECT_GE(time_of(report, "disabled_at") - failing_since, 2'000) << report.dump();
}

TEST_F(AutoDisable, ZeroSecondsNeverDisables) {
  TestSubscriber failing;
  failing.respond(Reply::status(500, "down"));
  const std::string never = subscribe_id({{"url", failing.url("/hook")}, {"disable_after", "0s"}});
  EXPECT_EQ(subscription(never).value("disable_after", ""), "0s");
  const std::string dlv = delivery_id(publish("meeting.completed", {{"n", 1}}, 1), never);
  // Wait for an attempt recorded well past 2 s of failures: it would have disabled the
  // subscription in its own batch.
  json d;
  ASSERT_TRUE(eventually([&] {
    d = delivery(dlv);
    const auto attempts = d.value("attempts", json::array());
    if (attempts.size() < 2) return false;
    return time_of(attempts.back(), "started_at") - time_of(attempts.front(), "started_at") >= 2'500;
  })) << d.dump();
  EXPECT_TRUE(subscription(never).value("enabled", false));
  EXPECT_EQ(metric("relay_subscriptions_auto_disabled_total"), 0);
}

TEST_F(AutoDisable, TheStreakAndTheReasonSurviveARestart) {
  TestSubscriber failing;
  failing.respond(Reply::status(500, "down"));
  TestSubscriber watcher;
  const std::string sub =
      subscribe_id({{"url", failing.url("/hook")}, {"event_types", {"meeting.*"}}, {"disable_after", "3s"}});
  subscribe_id({{"url", watcher.url("/ops")}, {"event_types", {"relay.*"}}});
  const std::string dlv = delivery_id(publish("meeting.completed", {{"n", 1}}, 1), sub);
  const json first = await_attempts_beyond(dlv, 0);
  const UnixMillis first_attempt = time_of(first.value("attempts", json::array()).at(0), "started_at");

  // A crash part-way through the streak: it goes on from its first failure, not from the restart.
  relayd().kill9();
  const UnixMillis restarted = wall_ms(std::chrono::system_clock::now());
  relayd().restart();
  const json disabled = await_disabled(sub);
  EXPECT_EQ(disabled.value("disabled_reason", ""), "failing");
  const json report = await_report(watcher, sub);
  EXPECT_EQ(time_of(report, "failing_since"), first_attempt) << report.dump();
  EXPECT_LT(time_of(report, "failing_since"), restarted);

  // And the reason after another restart.
  relayd().terminate();
  EXPECT_EQ(relayd().wait_exit(), 0);
  relayd().restart();
  const json after = subscription(sub);
  EXPECT_FALSE(after.value("enabled", true));
  EXPECT_EQ(after.value("disabled_reason", ""), "failing");
  EXPECT_EQ(after.value("disabled_at", ""), disabled.value("disabled_at", ""));
}

}  // namespace auto_disable_test
}  // namespace relay::test
