// DeliveryScheduler on real parts: RocksDB in a temp dir, the commit pipeline, the curl egress
// and a TestSubscriber on loopback. Checks that only a window of the schedule lives in memory
// while everything on disk is still delivered, and that far-future retries stay on disk.

#include "relay/delivery/delivery_scheduler.h"

#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <algorithm>
#include <functional>
#include <future>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "metrics/relay_metrics.h"
#include "relay/delivery/egress_client.h"
#include "storage/mutations.h"
#include "tests/support/egress_fixtures.h"
#include "tests/support/relayd_api_test.h"
#include "tests/support/store_fixture.h"
#include "tests/support/test_subscriber.h"

namespace relay {
namespace delivery_scheduler_test {

namespace asio = boost::asio;
using namespace std::chrono_literals;

class DeliverySchedulerTest : public test::StoreFixture {
 protected:
  DeliverySchedulerTest()
      : registry_({}),
        ids_(clock_, 1),
        egress_(io_, test::loopback_allowed()),
        metrics_("test") {
    subscription_.id = ids_.next(keys::kSubscriptionPrefix);
    subscription_.url = subscriber_.url("/hook");
    subscription_.secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    commit([&](WriteTxn& txn) { return mutations::put_subscription(txn, subscription_); });
    registry_.upsert(subscription_);
  }

  ~DeliverySchedulerTest() override {
    io_.stop();
    if (loop_.joinable()) loop_.join();
    pool_.join();
    // As relayd does: no commit may complete (and post to io_) once the members go away.
    pipeline_->stop();
    gauges_.reset();
    scheduler_.reset();
  }

  void commit(CommitPipeline::Command command) { ASSERT_TRUE(StoreFixture::commit(std::move(command)).ok()); }

  // Stores `n` events for the subscription, as ingest would; returns their delivery ids.
  std::vector<Delivery> store_events(int n, const std::string& type = "meeting.completed") {
    std::vector<Delivery> deliveries;
    const auto targets = registry_.matching(RoutedEvent{"", type, "{}"});
    for (int i = 0; i < n; ++i) {
      commit([&](WriteTxn& txn) {
        mutations::IngestedEvent out;
        mutations::NewEvent event{"", type, std::make_shared<const std::string>("{\"n\":" + std::to_string(i) + "}")};
        auto status = mutations::ingest(txn, event, targets, ids_, clock_.now_ms(), out);
        deliveries.insert(deliveries.end(), out.deliveries.begin(), out.deliveries.end());
        return status;
      });
    }
    return deliveries;
  }

  // Stores one event per entry of `ordering_keys` ("" for none), chunked into commands of up
  // to 1,000 events; payload {"k": key, "n": index}. The deliveries handed to the scheduler.
  std::vector<Delivery> store_keyed_events(const std::vector<std::string>& ordering_keys) {
    std::vector<Delivery> deliveries;
    const auto targets = registry_.matching(RoutedEvent{"", "calendar.update", "{}"});
    for (std::size_t from = 0; from < ordering_keys.size(); from += 1'000) {
      commit([&](WriteTxn& txn) -> Status {
        for (std::size_t i = from; i < std::min(ordering_keys.size(), from + 1'000); ++i) {
          mutations::IngestedEvent out;
          mutations::NewEvent event{"", "calendar.update",
                                    std::make_shared<const std::string>("{\"k\":\"" + ordering_keys[i] +
                                                                        "\",\"n\":" + std::to_string(i) + "}")};
          event.ordering_key = ordering_keys[i];
          if (auto status = mutations::ingest(txn, event, targets, ids_, clock_.now_ms(), out); !status) return status;
          deliveries.insert(deliveries.end(), out.deliveries.begin(), out.deliveries.end());
        }
        return Ok{};
      });
    }
    return deliveries;
  }

  void order_by_key(bool coalesce = false) {
    subscription_.ordering = Ordering::key;
    subscription_.coalesce = coalesce;
    commit([&](WriteTxn& txn) { return mutations::put_subscription(txn, subscription_); });
    registry_.upsert(subscription_);
  }

  void start_scheduler(std::size_t memory_limit, std::size_t lane_memory_limit = 4'000,
                       const std::function<void(SchedulerOptions&)>& configure = {}) {
    SchedulerOptions options;
    options.memory_limit = memory_limit;
    options.lane_memory_limit = lane_memory_limit;
    if (configure) configure(options);
    scheduler_ = std::make_unique<DeliveryScheduler>(io_, options, clock_, logger_, *store_, *pipeline_, registry_,
                                                     egress_, metrics_, pool_, ids_, streaks_);
    gauges_ = std::make_unique<DeliveryGauges>(io_, clock_, *store_, registry_, *scheduler_, metrics_, pool_);
    std::promise<void> started;
    scheduler_->start([&] { started.set_value(); });
    gauges_->start();
    loop_ = std::thread([this] {
      auto guard = asio::make_work_guard(io_);
      io_.run();
    });
    started.get_future().wait();
  }

  // Waits until every one of `count` deliveries reached the subscriber (distinct delivery ids:
  // retries and duplicates do not count twice). `most_held` is the largest number of
  // deliveries the scheduler held in memory whenever a request arrived.
  bool wait_for_distinct_deliveries(std::size_t count, std::size_t& most_held) {
    most_held = 0;
    return subscriber_.wait_until(
        [&](const std::vector<test::RecordedRequest>& requests) {
          most_held = std::max(most_held, held());
          std::set<std::string> ids;
          for (const auto& r : requests) ids.insert(r.header("X-Relay-Delivery-Id").value_or(""));
          return ids.size() == count;
        },
        60s);
  }

  // A subscription for `event_types` delivering to `path`, stored and registered.
  Subscription add_subscription(const std::string& path, const std::string& event_types,
                                const std::function<void(Subscription&)>& configure = {}) {
    Subscription sub;
    sub.id = ids_.next(keys::kSubscriptionPrefix);
    sub.url = subscriber_.url(path);
    sub.secret = subscription_.secret;
    sub.event_types = {event_types};
    if (configure) configure(sub);
    commit([&](WriteTxn& txn) { return mutations::put_subscription(txn, sub); });
    registry_.upsert(sub);
    return sub;
  }

  // Stores events for a subscription that is disabled afterwards (disabled ones match nothing new).
  void disable(Subscription sub) {
    sub.enabled = false;
    commit([&](WriteTxn& txn) { return mutations::put_subscription(txn, sub); });
    registry_.upsert(sub);
  }

  std::size_t requests_to(const std::string& path) { return subscriber_.requests(path).size(); }

  bool wait_for_requests_to(const std::string& path, std::size_t count, std::chrono::milliseconds timeout) {
    return subscriber_.wait_until(
        [&](const std::vector<test::RecordedRequest>& requests) {
          return static_cast<std::size_t>(std::count_if(requests.begin(), requests.end(),
                                                        [&](const auto& r) { return r.path == path; })) >= count;
        },
        timeout);
  }

  // Hands freshly stored deliveries to the running scheduler, as the ingest handler does.
  void enqueue(std::vector<Delivery> deliveries) {
    asio::post(io_, [this, deliveries = std::move(deliveries)]() mutable { scheduler_->enqueue(std::move(deliveries), nullptr); });
  }

  // The value of one exposed series (name with labels), if exposed.
  std::optional<double> metric(const std::string& series) {
    std::istringstream in(metrics_.scrape());
    for (std::string line; std::getline(in, line);) {
      if (line.starts_with(series + " ")) return std::stod(line.substr(series.size() + 1));
    }
    return std::nullopt;
  }

  std::size_t held() {
    std::promise<std::size_t> result;
    asio::post(io_, [&] { result.set_value(scheduler_->held_in_memory()); });
    return result.get_future().get();
  }

  SystemClock clock_;
  Logger logger_{LogLevel::error};
  SubscriptionRegistry registry_;
  keys::IdGenerator ids_;
  FailureStreaks streaks_;
  asio::io_context io_;
  asio::thread_pool pool_{2};
  EgressClient egress_;
  RelayMetrics metrics_;
  test::TestSubscriber subscriber_;
  Subscription subscription_;
  std::unique_ptr<DeliveryScheduler> scheduler_;
  std::unique_ptr<DeliveryGauges> gauges_;
  std::thread loop_;
};

TEST_F(DeliverySchedulerTest, DeliversABacklogLargerThanItsMemoryWindow) {
  constexpr int kEvents = 300;
  constexpr std::size_t kMemoryLimit = 16;
  subscriber_.respond(test::Reply::ok());
  store_events(kEvents);
  start_scheduler(kMemoryLimit);
  EXPECT_LE(held(), kMemoryLimit);
  std::size_t most_held = 0;
  ASSERT_TRUE(wait_for_distinct_deliveries(kEvents, most_held));
  EXPECT_LE(most_held, kMemoryLimit);
  EXPECT_LE(held(), kMemoryLimit);
}

TEST_F(DeliverySchedulerTest, ASubscriptionsBacklogBeyondItsShareComesBackByReloads) {
  // One subscription with 30 times its share of memory: it parks, and reloads of its lane bring
  // every delivery back while the lane never holds more than its share.
  constexpr int kEvents = 300;
  constexpr std::size_t kLaneLimit = 10;
  subscriber_.respond(test::Reply::ok());
  store_events(kEvents);
  start_scheduler(/*memory_limit=*/100, kLaneLimit);
  std::size_t most_held = 0;
  ASSERT_TRUE(wait_for_distinct_deliveries(kEvents, most_held));
  EXPECT_LE(most_held, kLaneLimit);
}

TEST_F(DeliverySchedulerTest, ReloadsOfManyParkedLanesStayWithinTheMemoryWindow) {
  // Three subscriptions whose shares add up to more than the window: every lane parks, and
  // their reloads together must still never hold more than the window. Each lane's reloads
  // share the event payloads read by the others', and every delivery still carries its own.
  constexpr int kEvents = 100;
  constexpr std::size_t kMemoryLimit = 24;
  for (int i = 1; i < 3; ++i) {
    Subscription more = subscription_;
    more.id = ids_.next(keys::kSubscriptionPrefix);
    more.url = subscriber_.url("/hook" + std::to_string(i));
    commit([&](WriteTxn& txn) { return mutations::put_subscription(txn, more); });
    registry_.upsert(more);
  }
  subscriber_.respond(test::Reply::ok());
  const std::vector<Delivery> deliveries = store_events(kEvents);
  ASSERT_EQ(deliveries.size(), 3u * kEvents);
  std::map<std::string, std::string> expected_body;  // by delivery id; event i has 3 deliveries
  for (std::size_t k = 0; k < deliveries.size(); ++k) {
    expected_body[deliveries[k].id] = "{\"n\":" + std::to_string(k / 3) + "}";
  }
  start_scheduler(kMemoryLimit, /*lane_memory_limit=*/16);
  std::size_t most_held = 0;
  ASSERT_TRUE(wait_for_distinct_deliveries(3 * kEvents, most_held));
  EXPECT_LE(most_held, kMemoryLimit);
  for (const auto& request : subscriber_.requests()) {
    EXPECT_EQ(request.body, expected_body[request.header("X-Relay-Delivery-Id").value_or("")]);
  }
}

TEST_F(DeliverySchedulerTest, FarFutureRetriesStayOnDiskUntilDue) {
  auto deliveries = store_events(50);
  const UnixMillis in_an_hour = clock_.now_ms() + 3'600'000;
  for (const auto& d : deliveries) {
    commit([&](WriteTxn& txn) {
      Attempt attempt;
      attempt.started_at = clock_.now_ms();
      attempt.outcome = AttemptOutcome::http_5xx;
      attempt.http_status = 500;
      Delivery updated;
      ordering_queue::Advance advance;
      return mutations::record_attempt(txn, d, attempt, {DeliveryState::pending, in_an_hour}, nullptr, updated, advance);
    });
  }
  const auto fresh = store_events(3);  // due now
  start_scheduler(1'000);
  ASSERT_TRUE(subscriber_.wait_for_requests(3, 30s));
  // The loader reads only up to now + lookahead: of the 53, only the 3 due ones were held.
  EXPECT_LE(held(), 3u);
  EXPECT_EQ(subscriber_.request_count(), 3u);
}

TEST_F(DeliverySchedulerTest, AnAnsweredAttemptFreesItsSubscriptionsSlotBeforeItsRecordIsWritten) {
  // max_in_flight bounds requests awaiting the subscriber, not records awaiting the disk: with
  // one slot and the writer stalled, every delivery still reaches the subscriber, one at a time.
  subscription_.max_in_flight = 1;
  commit([&](WriteTxn& txn) { return mutations::put_subscription(txn, subscription_); });
  registry_.upsert(subscription_);
  subscriber_.respond(test::Reply::ok());
  constexpr std::size_t kEvents = 3;
  store_events(kEvents);

  std::promise<void> release = hold_writer();
  start_scheduler(1'000);
  std::size_t most_held = 0;
  const bool delivered = wait_for_distinct_deliveries(kEvents, most_held);
  release.set_value();
  EXPECT_TRUE(delivered) << subscriber_.request_count() << " of " << kEvents << " delivered while records wait";
}

TEST_F(DeliverySchedulerTest, AHeldSubscriptionsBacklogDoesNotStarveAnother) {
  // The default subscription is disabled with a backlog far beyond memory; a second one that
  // only gets later events must still receive all of them.
  Subscription paused = subscription_;
  paused.enabled = false;
  paused.event_types = {"calendar.sync_events"};
  commit([&](WriteTxn& txn) { return mutations::put_subscription(txn, paused); });
  registry_.upsert(paused);
  // Disabled subscriptions match nothing new: store the backlog while it is enabled.
  Subscription enabled_first = paused;
  enabled_first.enabled = true;
  registry_.upsert(enabled_first);
  store_events(200, "calendar.sync_events");
  registry_.upsert(paused);

  Subscription healthy;
  healthy.id = ids_.next(keys::kSubscriptionPrefix);
  healthy.url = subscriber_.url("/healthy");
  healthy.secret = subscription_.secret;
  healthy.event_types = {"meeting.*"};
  commit([&](WriteTxn& txn) { return mutations::put_subscription(txn, healthy); });
  registry_.upsert(healthy);
  store_events(20, "meeting.completed");

  start_scheduler(/*memory_limit=*/40, /*lane_memory_limit=*/10);
  ASSERT_TRUE(subscriber_.wait_until(
      [](const std::vector<test::RecordedRequest>& requests) {
        return std::count_if(requests.begin(), requests.end(),
                             [](const auto& r) { return r.path == "/healthy"; }) == 20;
      },
      30s));
  EXPECT_TRUE(subscriber_.requests("/hook").empty());
  EXPECT_LE(held(), 40u);
}

// Isolation at any backlog size, scaled down (memory window 50, 10 per lane; relayd has 20,000
// and 4,000): hanging, failing and disabled subscriptions, each with three times its share due,
// filled the whole window and a healthy subscription got nothing. Stored before the scheduler
// starts, as after a restart, the healthy deliveries come after the whole backlog in due order.
TEST_F(DeliverySchedulerTest, LanesThatCannotDispatchDoNotStarveAHealthyOne) {
  constexpr std::size_t kLaneLimit = 10;
  constexpr int kBacklog = 3 * kLaneLimit;
  subscription_.event_types = {"meeting.*"};  // the healthy one, at /hook
  commit([&](WriteTxn& txn) { return mutations::put_subscription(txn, subscription_); });
  registry_.upsert(subscription_);
  subscriber_.respond("/hook", test::Reply::ok());
  subscriber_.respond("/hang", test::Reply::blackhole());
  subscriber_.respond("/fail", test::Reply::status(500));
  const auto two_at_a_time = [](Subscription& s) { s.max_in_flight = 2; };
  add_subscription("/hang", "backlog.*", two_at_a_time);
  add_subscription("/hang", "backlog.*", two_at_a_time);
  add_subscription("/fail", "backlog.*", two_at_a_time);
  add_subscription("/fail", "backlog.*", two_at_a_time);
  const Subscription paused = add_subscription("/paused", "backlog.*");
  ASSERT_EQ(store_events(kBacklog, "backlog.item").size(), 5u * kBacklog);
  disable(paused);
  store_events(10, "meeting.completed");

  start_scheduler(/*memory_limit=*/5 * kLaneLimit, kLaneLimit, [](SchedulerOptions& o) {
    o.blocked_lane_memory_limit = 1;
    o.circuit_failure_threshold = 3;
    o.attempt_timeout_ms = 120'000;  // hanging attempts stay open for the whole test
  });
  EXPECT_TRUE(wait_for_requests_to("/hook", 10, 20s)) << requests_to("/hook") << " of 10 after the backlog";
  // New deliveries while the blocked lanes still hold their backlogs.
  enqueue(store_events(10, "meeting.completed"));
  EXPECT_TRUE(wait_for_requests_to("/hook", 20, 20s)) << requests_to("/hook") << " of 20 while the backlog waits";
  EXPECT_TRUE(subscriber_.requests("/paused").empty());
  EXPECT_LE(held(), 5 * kLaneLimit);
}

// Subscribers that accept and never answer look healthy until their max_in_flight is full and
// nothing comes back: then they keep only what they have running (and one more), and the
// memory their backlogs took is free for the others again.
TEST_F(DeliverySchedulerTest, StalledSubscribersAreCutBackToWhatTheyHaveRunning) {
  constexpr std::size_t kLaneLimit = 10;
  subscription_.event_types = {"meeting.*"};
  commit([&](WriteTxn& txn) { return mutations::put_subscription(txn, subscription_); });
  registry_.upsert(subscription_);
  subscriber_.respond("/hook", test::Reply::ok());
  subscriber_.respond("/hang", test::Reply::blackhole());
  for (int i = 0; i < 5; ++i) add_subscription("/hang", "backlog.*", [](Subscription& s) { s.max_in_flight = 2; });
  store_events(3 * kLaneLimit, "backlog.item");
  store_events(10, "meeting.completed");

  start_scheduler(/*memory_limit=*/5 * kLaneLimit, kLaneLimit, [](SchedulerOptions& o) {
    o.blocked_lane_memory_limit = 1;
    o.attempt_timeout_ms = 120'000;
  });
  EXPECT_TRUE(wait_for_requests_to("/hook", 10, 20s)) << requests_to("/hook") << " of 10 behind stalled subscribers";
  EXPECT_TRUE(test::eventually([&] { return held() <= 5u * 3; }, 20s)) << held() << " held";
}

// Fifty lanes that cannot dispatch (disabled, or rate-limited to one a second), each with three
// times its share due: together they hold what they can dispatch soon, not the whole window.
TEST_F(DeliverySchedulerTest, FiftyBlockedLanesLeaveRoomForAHealthyOne) {
  constexpr std::size_t kLaneLimit = 20;
  constexpr int kBacklog = 3 * kLaneLimit;
  subscription_.event_types = {"meeting.*"};
  commit([&](WriteTxn& txn) { return mutations::put_subscription(txn, subscription_); });
  registry_.upsert(subscription_);
  subscriber_.respond(test::Reply::ok());
  std::vector<Subscription> paused;
  for (int i = 0; i < 25; ++i) paused.push_back(add_subscription("/paused", "backlog.*"));
  for (int i = 0; i < 25; ++i) {
    add_subscription("/slow", "backlog.*", [](Subscription& s) { s.rate_limit_per_second = 1; });
  }
  ASSERT_EQ(store_events(kBacklog, "backlog.item").size(), 50u * kBacklog);
  for (const auto& sub : paused) disable(sub);
  store_events(10, "meeting.completed");

  start_scheduler(/*memory_limit=*/10 * kLaneLimit, kLaneLimit,
                  [](SchedulerOptions& o) { o.blocked_lane_memory_limit = 1; });
  EXPECT_TRUE(wait_for_requests_to("/hook", 10, 20s)) << requests_to("/hook") << " of 10 after the backlog";
  enqueue(store_events(10, "meeting.completed"));
  EXPECT_TRUE(wait_for_requests_to("/hook", 20, 20s)) << requests_to("/hook") << " of 20 while the backlog waits";
  EXPECT_TRUE(subscriber_.requests("/paused").empty());
  // A rate-limited lane keeps two seconds of its rate plus what it has running (at one a
  // second, at most one), not its share; the healthy lane holds at most its last ten.
  EXPECT_LE(held(), 25u * (2 + 1) + 10);
}

// The depth gauges count what is on disk: before, `pending` counted only the scheduler's memory
// (at most its window, 16 here, of a backlog of 300) and a disabled subscription's deliveries
// counted as pending and aged the oldest pending delivery.
TEST_F(DeliverySchedulerTest, DepthGaugesCountTheBacklogOnDiskAndHoldDisabledSubscriptionsApart) {
  subscription_.rate_limit_per_second = 1;  // the backlog stays due
  subscription_.event_types = {"meeting.*"};
  commit([&](WriteTxn& txn) { return mutations::put_subscription(txn, subscription_); });
  registry_.upsert(subscription_);
  subscriber_.respond(test::Reply::ok());
  const Subscription paused = add_subscription("/paused", "calendar.*");
  store_events(50, "calendar.sync");
  disable(paused);
  store_events(300, "meeting.completed");

  start_scheduler(/*memory_limit=*/16, /*lane_memory_limit=*/8);
  const auto pending = [&] { return metric("relay_deliveries{state=\"pending\"}").value_or(0); };
  const auto held_gauge = [&] { return metric("relay_deliveries{state=\"held\"}").value_or(0); };
  EXPECT_TRUE(test::eventually([&] { return pending() >= 280 && held_gauge() == 50; }, 20s))
      << "pending " << pending() << ", held " << held_gauge();
  const double age = metric("relay_oldest_pending_age_seconds").value_or(-1);
  EXPECT_GE(age, 0);
  EXPECT_LT(age, 60) << "the disabled subscription's deliveries are not pending";
}

// Deleting a subscription removes its series for good: before, the next gauge tick recreated
// relay_circuit_state for it, and new subscriptions had no dead-letter series until a death.
TEST_F(DeliverySchedulerTest, ASubscriptionsSeriesComeWithItAndGoWithIt) {
  subscriber_.respond(test::Reply::ok());
  store_events(1);
  start_scheduler(1'000);
  ASSERT_TRUE(subscriber_.wait_for_requests(1, 20s));
  const std::string dead_series = "relay_deliveries_dead_total{subscription=\"" + subscription_.id + "\"}";
  const std::string circuit_series = "relay_circuit_state{subscription=\"" + subscription_.id + "\"}";
  EXPECT_EQ(metric(dead_series), 0.0) << "exists from the start, before any death";

  Subscription added;
  std::promise<void> announced;
  added = add_subscription("/other", "other.*");
  asio::post(io_, [&] {
    scheduler_->subscription_changed(added.id);
    announced.set_value();
  });
  announced.get_future().wait();
  EXPECT_EQ(metric("relay_deliveries_dead_total{subscription=\"" + added.id + "\"}"), 0.0);
  const auto enabled_count = [&] { return metric("relay_subscriptions{enabled=\"true\"}"); };
  ASSERT_TRUE(test::eventually([&] { return enabled_count() == 2.0; }, 20s));

  // Deleted as the API does: registry, scheduler, then the metrics.
  std::promise<void> deleted;
  asio::post(io_, [&] {
    registry_.erase(subscription_.id);
    scheduler_->subscription_changed(subscription_.id);
    metrics_.forget_subscription(subscription_.id);
    deleted.set_value();
  });
  deleted.get_future().wait();
  // The gauge tick publishes the subscription count: once it reads 1 again, a tick has run.
  EXPECT_TRUE(test::eventually([&] { return enabled_count() == 1.0; }, 20s));
  EXPECT_FALSE(metric(circuit_series)) << "the gauge tick recreated the deleted subscription's circuit state";
  EXPECT_FALSE(metric(dead_series));
}

TEST_F(DeliverySchedulerTest, AnOrderedKeyHasOneAttemptAtATimeWhileOtherKeysFlow) {
  // The first delivery of key "a" hangs: the rest of "a" waits behind it on disk, while "b" and
  // unkeyed events are all delivered.
  order_by_key();
  subscriber_.set_handler([](const test::RecordedRequest& r) -> std::optional<test::Reply> {
    if (r.body.find("\"k\":\"a\"") != std::string::npos) return test::Reply::blackhole();
    return test::Reply::ok();
  });
  std::vector<std::string> keys;
  for (int i = 0; i < 10; ++i) keys.insert(keys.end(), {"a", "b", ""});
  store_keyed_events(keys);
  start_scheduler(1'000, 4'000, [](SchedulerOptions& o) { o.attempt_timeout_ms = 120'000; });
  ASSERT_TRUE(subscriber_.wait_until(
      [](const std::vector<test::RecordedRequest>& requests) {
        return std::count_if(requests.begin(), requests.end(), [](const auto& r) {
                 return r.body.find("\"k\":\"a\"") == std::string::npos;
               }) == 20;
      },
      30s));
  const auto requests = subscriber_.requests();
  const auto to_a = std::count_if(requests.begin(), requests.end(),
                                  [](const auto& r) { return r.body.find("\"k\":\"a\"") != std::string::npos; });
  EXPECT_EQ(to_a, 1);
  // "b" arrived in event order.
  std::vector<std::string> b_bodies;
  for (const auto& r : requests) {
    if (r.body.find("\"k\":\"b\"") != std::string::npos) b_bodies.push_back(r.body);
  }
  ASSERT_EQ(b_bodies.size(), 10u);
  for (std::size_t i = 0; i < b_bodies.size(); ++i) {
    EXPECT_EQ(b_bodies[i], "{\"k\":\"b\",\"n\":" + std::to_string(3 * i + 1) + "}");
  }
  // Once the last records are written: the hanging head of "a"; its 9 successors are on disk only.
  EXPECT_TRUE(test::eventually([&] { return held() == 1; })) << held();
}

TEST_F(DeliverySchedulerTest, AKeyWithAHundredThousandWaitingDeliveriesHoldsOnlyItsHeadInMemory) {
  order_by_key();
  subscriber_.respond("/hook", test::Reply::blackhole());
  std::vector<std::string> keys(100'000, "calendar-1");
  keys.push_back("calendar-2");
  store_keyed_events(keys);
  start_scheduler(20'000, 4'000, [](SchedulerOptions& o) { o.attempt_timeout_ms = 120'000; });
  ASSERT_TRUE(subscriber_.wait_for_requests(2, 30s));  // both heads, nothing more
  EXPECT_EQ(held(), 2u);
  EXPECT_EQ(scheduler_->counts().scheduled, 2u);       // the waiting ones are not scheduled
  EXPECT_EQ(scheduler_->counts().waiting, 99'999u);    // but counted, from one pass at start
  EXPECT_EQ(scheduler_->pending_deliveries(), 100'001u);  // and unfinished
  EXPECT_EQ(subscriber_.request_count(), 2u);
}

}  // namespace delivery_scheduler_test
}  // namespace relay
