// outcomes::record_attempt and expire_delivery on a real RocksDB through the commit pipeline, as
// the scheduler runs them: a delivery that goes dead publishes relay.delivery.dead with its
// deliveries in the same batch (or nothing, when the batch rolls back, nobody subscribed, or it
// was itself an operational event's); a subscription whose attempts all fail for its
// disable_after is disabled, with relay.subscription.disabled, in the batch of that attempt.

#include "storage/delivery_outcomes.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "relay/subscriptions/subscription_registry.h"
#include "storage/keys.h"
#include "storage/queries.h"
#include "storage/records.h"
#include "tests/support/store_fixture.h"

namespace relay {
namespace delivery_outcomes_test {

using nlohmann::json;

constexpr UnixMillis kT = 1'760'000'000'000;  // 2025-10-09T08:53:20.000Z
constexpr std::int64_t kDay = 86'400'000;

const mutations::Resolution kRetry{DeliveryState::pending, kT + 3'600'000};
const mutations::Resolution kDead{DeliveryState::dead, 0};

class DeliveryOutcomesTest : public test::StoreFixture {
 protected:
  DeliveryOutcomesTest() : registry_({}) {}

  // Stores a subscription and puts it in the registry, as the API does.
  Subscription add(std::vector<std::string> patterns, std::string tenant = "",
                   std::optional<std::int64_t> disable_after = std::nullopt) {
    Subscription s;
    s.id = ids_.next(keys::kSubscriptionPrefix);
    s.url = "https://example.com/" + s.id;
    s.event_types = std::move(patterns);
    s.tenant = std::move(tenant);
    s.disable_after_ms = disable_after;
    EXPECT_TRUE(commit([&](WriteTxn& txn) { return mutations::put_subscription(txn, s); }).ok());
    registry_.upsert(s);
    return s;
  }

  // One event of `type` ingested for the subscriptions matching it; its deliveries.
  std::vector<Delivery> publish(const std::string& type, const std::string& tenant = "") {
    mutations::NewEvent input{"", type, std::make_shared<const std::string>(R"({"n":1})"), tenant};
    const auto targets = registry_.matching(RoutedEvent{tenant, type, *input.payload});
    mutations::IngestedEvent out;
    EXPECT_TRUE(commit([&](WriteTxn& txn) { return mutations::ingest(txn, input, targets, ids_, kT, out); }).ok());
    return out.deliveries;
  }

  static Attempt attempt_at(UnixMillis at, AttemptOutcome outcome) {
    Attempt a;
    a.started_at = at;
    a.duration_ms = 100;
    a.outcome = outcome;
    a.http_status = outcome == AttemptOutcome::success ? 200 : outcome == AttemptOutcome::http_4xx ? 410 : 500;
    return a;
  }

  // Records an attempt of `d` (the scheduler's copy, updated here) as the scheduler does.
  Status record(Delivery& d, UnixMillis at, AttemptOutcome outcome, const mutations::Resolution& resolution,
                outcomes::Recorded& out, bool fail_after = false) {
    const auto current = registry_.find(d.subscription_id);
    const Status status = commit([&](WriteTxn& txn) -> Status {
      if (auto s = outcomes::record_attempt(txn, context_, d, attempt_at(at, outcome), resolution, nullptr,
                                            current.get(), out);
          !s) {
        return s;
      }
      if (fail_after) return make_error(Errc::internal, "the command failed after it");
      return Ok{};
    });
    if (status) d = out.updated;
    return status;
  }
  outcomes::Recorded record(Delivery& d, UnixMillis at, AttemptOutcome outcome,
                            const mutations::Resolution& resolution) {
    outcomes::Recorded out;
    EXPECT_TRUE(record(d, at, outcome, resolution, out).ok());
    return out;
  }

  std::size_t count(Family f) const {
    std::size_t n = 0;
    store_->scan(f, ScanRange{}, [&](auto, auto) {
      ++n;
      return true;
    });
    return n;
  }

  static std::vector<std::string> subscriptions_of(const std::vector<Delivery>& deliveries) {
    std::vector<std::string> out;
    for (const auto& d : deliveries) out.push_back(d.subscription_id);
    return out;
  }

  ManualClock clock_{kT};
  keys::IdGenerator ids_{clock_, 3};
  SubscriptionRegistry registry_;
  FailureStreaks streaks_;
  outcomes::Context context_{
      operational_events::Publisher{ids_,
                                    [this](const Event& e) {
                                      return registry_.matching(RoutedEvent{e.tenant, e.type, *e.payload});
                                    }},
      streaks_, 5 * kDay};
};

TEST_F(DeliveryOutcomesTest, ADeadDeliveryPublishesRelayDeliveryDeadWithItsDeliveriesInTheSameBatch) {
  const Subscription failing = add({"meeting.*"});
  const Subscription star = add({"*"});
  const Subscription watcher = add({"relay.*"});
  const Subscription exact = add({"relay.delivery.dead"}, "acme");
  const Subscription other_tenant = add({"relay.*"}, "globex");
  auto deliveries = publish("meeting.completed", "acme");
  ASSERT_EQ(deliveries.size(), 2u);  // failing and star
  Delivery d = deliveries[0];
  ASSERT_EQ(d.subscription_id, failing.id);

  record(d, kT, AttemptOutcome::http_5xx, kRetry);
  const auto out = record(d, kT + 5'000, AttemptOutcome::http_4xx, kDead);
  EXPECT_EQ(out.updated.state, DeliveryState::dead);
  ASSERT_EQ(out.published.size(), 1u);
  const auto& published = out.published[0];
  EXPECT_EQ(published.event.type, "relay.delivery.dead");
  EXPECT_EQ(published.event.tenant, "acme") << "the tenant of the event it reports";
  EXPECT_EQ(published.event.created_at, kT + 5'100);
  // Explicit relay patterns of the event's tenant and of no tenant; not `*`, not another tenant.
  EXPECT_EQ(subscriptions_of(published.deliveries), (std::vector<std::string>{watcher.id, exact.id}));
  EXPECT_FALSE(out.disabled);

  // Stored as an ordinary event with pending, scheduled deliveries.
  const auto stored = queries::event(*store_, published.event.id);
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->type, "relay.delivery.dead");
  EXPECT_EQ(stored->tenant, "acme");
  EXPECT_EQ(json::parse(*stored->payload), json::parse(R"({"delivery_id": ")" + d.id + R"(", "event_id": ")" +
                                                       d.event_id + R"(", "event_type": "meeting.completed",
      "subscription_id": ")" + failing.id + R"(", "tenant": "acme", "attempts": 2, "last_error": "http_4xx",
      "dead_at": "2025-10-09T08:53:25.100Z"})"));
  // Members in the documented order.
  EXPECT_EQ(stored->payload->rfind(R"({"delivery_id":)", 0), 0u) << *stored->payload;
  for (const Delivery& created : published.deliveries) {
    const auto again = queries::delivery(*store_, created.id);
    ASSERT_TRUE(again);
    EXPECT_EQ(again->state, DeliveryState::pending);
    EXPECT_EQ(again->event_type, "relay.delivery.dead");
    EXPECT_EQ(again->tenant, "acme");
    EXPECT_TRUE(store_->get(Family::schedule, keys::schedule_key(created.next_attempt_at, created.id)));
  }
  EXPECT_EQ(queries::deliveries_of_event(*store_, published.event.id).size(), 2u);
  (void)star;
  (void)other_tenant;
}

TEST_F(DeliveryOutcomesTest, NothingOfItStaysWhenTheBatchRollsBack) {
  add({"meeting.*"});
  add({"relay.*"});
  Delivery d = publish("meeting.completed")[0];
  const std::size_t events = count(Family::events);
  const std::size_t deliveries = count(Family::deliveries);
  outcomes::Recorded out;
  ASSERT_FALSE(record(d, kT, AttemptOutcome::http_4xx, kDead, out, /*fail_after=*/true).ok());
  EXPECT_EQ(queries::delivery(*store_, d.id)->state, DeliveryState::pending);
  EXPECT_EQ(count(Family::events), events) << "no relay.delivery.dead without the death";
  EXPECT_EQ(count(Family::deliveries), deliveries);
  EXPECT_EQ(count(Family::dead_letters), 0u);
  EXPECT_EQ(stored_streak_start(*store_, d.subscription_id), 0) << "nor the streak it started";
}

TEST_F(DeliveryOutcomesTest, AnOperationalEventThatReachesNobodyIsNotStored) {
  add({"meeting.*"});
  add({"*"});
  Delivery d = publish("meeting.completed")[0];
  const std::size_t events = count(Family::events);
  const auto out = record(d, kT, AttemptOutcome::http_4xx, kDead);
  EXPECT_EQ(out.updated.state, DeliveryState::dead);
  EXPECT_TRUE(out.published.empty());
  EXPECT_EQ(count(Family::events), events);
  for (const auto& stats : queries::event_types(*store_)) EXPECT_NE(stats.type, "relay.delivery.dead");
}

TEST_F(DeliveryOutcomesTest, TheDeathOfAnOperationalEventsDeliveryPublishesNothing) {
  add({"meeting.*"});
  const Subscription watcher = add({"relay.*"});
  Delivery d = publish("meeting.completed")[0];
  const auto first = record(d, kT, AttemptOutcome::http_4xx, kDead);
  ASSERT_EQ(first.published.size(), 1u);
  Delivery operational = first.published[0].deliveries.at(0);
  ASSERT_EQ(operational.subscription_id, watcher.id);
  const std::size_t events = count(Family::events);
  const auto second = record(operational, kT + 1'000, AttemptOutcome::http_4xx, kDead);
  EXPECT_EQ(second.updated.state, DeliveryState::dead);
  EXPECT_TRUE(second.published.empty()) << "no loops";
  EXPECT_EQ(count(Family::events), events);
}

TEST_F(DeliveryOutcomesTest, AnExpiredWindowPublishesRelayDeliveryDeadToo) {
  add({"meeting.*"});
  const Subscription watcher = add({"relay.delivery.dead"});
  const Delivery waiting = publish("meeting.completed")[0];
  outcomes::Recorded out;
  ASSERT_TRUE(commit([&](WriteTxn& txn) {
                return outcomes::expire_delivery(txn, context_, waiting, "window_expired", kT + 7'000, nullptr, out);
              }).ok());
  EXPECT_EQ(out.updated.state, DeliveryState::dead);
  ASSERT_EQ(out.published.size(), 1u);
  EXPECT_EQ(subscriptions_of(out.published[0].deliveries), std::vector<std::string>{watcher.id});
  const json payload = json::parse(*queries::event(*store_, out.published[0].event.id)->payload);
  EXPECT_EQ(payload["last_error"], "window_expired");
  EXPECT_EQ(payload["attempts"], 0);
  EXPECT_TRUE(payload["tenant"].is_null());
  EXPECT_EQ(payload["dead_at"], "2025-10-09T08:53:27.000Z");
  EXPECT_EQ(stored_streak_start(*store_, waiting.subscription_id), 0) << "an expiry is not an attempt";
}

TEST_F(DeliveryOutcomesTest, ASubscriptionFailingForItsDisableAfterIsDisabledInTheBatchOfThatAttempt) {
  // It watches relay.* itself: it is never sent the event of its own disabling.
  const Subscription failing = add({"meeting.*", "relay.*"}, "acme", 10'000);
  const Subscription watcher = add({"relay.subscription.disabled"});
  Delivery d = publish("meeting.completed", "acme")[0];
  ASSERT_EQ(d.subscription_id, failing.id);

  EXPECT_FALSE(record(d, kT, AttemptOutcome::http_5xx, kRetry).disabled);
  EXPECT_EQ(stored_streak_start(*store_, failing.id), kT);
  EXPECT_FALSE(record(d, kT + 5'000, AttemptOutcome::timeout, kRetry).disabled);
  // 9,950 ms after the streak began: not yet.
  auto out = record(d, kT + 9'850, AttemptOutcome::connect_error, kRetry);
  EXPECT_FALSE(out.disabled);
  out = record(d, kT + 9'900, AttemptOutcome::http_5xx, kRetry);  // ends at kT + 10,000
  ASSERT_TRUE(out.disabled);
  EXPECT_FALSE(out.disabled->enabled);
  EXPECT_EQ(out.disabled->disabled_reason, DisabledReason::failing);
  EXPECT_EQ(out.disabled->disabled_at, kT + 10'000);

  const auto stored = records::decode_subscription(
      *store_->get(Family::subscriptions, keys::subscription_key(failing.id)));
  ASSERT_TRUE(stored);
  EXPECT_FALSE(stored->enabled);
  EXPECT_EQ(stored->disabled_reason, DisabledReason::failing);
  EXPECT_EQ(stored->disabled_at, kT + 10'000);

  ASSERT_EQ(out.published.size(), 1u);
  const auto& event = out.published[0];
  EXPECT_EQ(event.event.type, "relay.subscription.disabled");
  EXPECT_EQ(event.event.tenant, "acme");
  EXPECT_EQ(subscriptions_of(event.deliveries), std::vector<std::string>{watcher.id});
  EXPECT_EQ(*event.event.payload,
            R"({"subscription_id":")" + failing.id + R"(","tenant":"acme","reason":"failing",)"
            R"("failing_since":"2025-10-09T08:53:20.000Z","disabled_at":"2025-10-09T08:53:30.000Z",)"
            R"("disable_after":"10s"})");

  // An attempt already in flight fails too: its subscription is disabled once, not twice.
  out = record(d, kT + 11'000, AttemptOutcome::http_5xx, kRetry);
  EXPECT_FALSE(out.disabled);
  EXPECT_TRUE(out.published.empty());
}

TEST_F(DeliveryOutcomesTest, ASuccessInBetweenStartsTheClockAgain) {
  const Subscription flaky = add({"meeting.*"}, "", 10'000);
  Delivery d = publish("meeting.completed")[0];
  Delivery other = publish("meeting.completed")[0];
  record(d, kT, AttemptOutcome::http_5xx, kRetry);
  record(other, kT + 8'000, AttemptOutcome::success, {DeliveryState::succeeded, 0});
  EXPECT_EQ(stored_streak_start(*store_, flaky.id), 0);
  EXPECT_FALSE(record(d, kT + 12'000, AttemptOutcome::http_5xx, kRetry).disabled);
  EXPECT_EQ(stored_streak_start(*store_, flaky.id), kT + 12'000);
  EXPECT_FALSE(record(d, kT + 21'000, AttemptOutcome::http_5xx, kRetry).disabled);
  EXPECT_TRUE(record(d, kT + 22'000, AttemptOutcome::http_5xx, kRetry).disabled);
}

TEST_F(DeliveryOutcomesTest, ZeroMeansNeverAndTheSubscriptionsOwnValueWinsOverTheFlag) {
  const Subscription never = add({"a.*"}, "", 0);
  const Subscription own = add({"b.*"}, "", 10'000);      // the flag says 5 days
  const Subscription flag = add({"c.*"});                  // follows the flag
  Delivery n = publish("a.x")[0];
  Delivery o = publish("b.x")[0];
  Delivery f = publish("c.x")[0];
  record(n, kT, AttemptOutcome::http_5xx, kRetry);
  record(o, kT, AttemptOutcome::http_5xx, kRetry);
  record(f, kT, AttemptOutcome::http_5xx, kRetry);
  EXPECT_FALSE(record(n, kT + 30 * kDay, AttemptOutcome::http_5xx, kRetry).disabled) << "0s: never";
  EXPECT_EQ(stored_streak_start(*store_, never.id), kT) << "the streak is kept all the same";
  EXPECT_TRUE(record(o, kT + 10'000, AttemptOutcome::http_5xx, kRetry).disabled);
  EXPECT_FALSE(record(f, kT + 5 * kDay - 1'000, AttemptOutcome::http_5xx, kRetry).disabled);
  EXPECT_TRUE(record(f, kT + 5 * kDay, AttemptOutcome::http_5xx, kRetry).disabled);
  (void)own;
  (void)flag;
}

TEST_F(DeliveryOutcomesTest, AManuallyDisabledSubscriptionIsLeftAsItIs) {
  const Subscription sub = add({"a.*"}, "", 1'000);
  Delivery d = publish("a.x")[0];
  record(d, kT, AttemptOutcome::http_5xx, kRetry);
  // An operator disabled it while an attempt was in flight; the scheduler's copy is older.
  ASSERT_TRUE(commit([&](WriteTxn& txn) {
                Subscription out;
                return mutations::update_subscription(
                    txn, sub.id,
                    [](Subscription& s) -> Status {
                      set_enabled(s, false, kT + 500);
                      return Ok{};
                    },
                    out);
              }).ok());
  EXPECT_FALSE(record(d, kT + 2'000, AttemptOutcome::http_5xx, kRetry).disabled);
  const auto stored = records::decode_subscription(*store_->get(Family::subscriptions, keys::subscription_key(sub.id)));
  EXPECT_EQ(stored->disabled_reason, DisabledReason::manual);
  EXPECT_EQ(stored->disabled_at, kT + 500);
}

}  // namespace delivery_outcomes_test
}  // namespace relay
