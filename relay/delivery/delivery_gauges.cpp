#include "relay/delivery/delivery_gauges.h"

#include <algorithm>
#include <chrono>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "metrics/relay_metrics.h"
#include "relay/core/async_bridge.h"
#include "relay/delivery/delivery_scheduler.h"

namespace relay {

namespace asio = boost::asio;

namespace {

void count(std::uint64_t& total, std::unordered_map<std::string, std::uint64_t>& by_subscription,
           const std::string& subscription_id, std::int64_t delta) {
  std::uint64_t& mine = by_subscription[subscription_id];
  if (delta >= 0) {
    mine += static_cast<std::uint64_t>(delta);
    total += static_cast<std::uint64_t>(delta);
  } else {
    const std::uint64_t gone = std::min(mine, static_cast<std::uint64_t>(-delta));
    mine -= gone;
    total -= std::min(total, gone);
  }
  if (mine == 0) by_subscription.erase(subscription_id);
}

}  // namespace

void ScheduleCounts::count_scheduled(const std::string& subscription_id, std::int64_t delta) {
  count(scheduled, scheduled_by_subscription, subscription_id, delta);
}

void ScheduleCounts::count_waiting(const std::string& subscription_id, std::int64_t delta) {
  count(waiting, waiting_by_subscription, subscription_id, delta);
}

DeliveryGauges::DeliveryGauges(asio::io_context& io, const Clock& clock, Store& store,
                               SubscriptionRegistry& subscriptions, const DeliveryScheduler& scheduler,
                               RelayMetrics& metrics, asio::thread_pool& blocking_pool)
    : io_(io),
      clock_(clock),
      store_(store),
      subscriptions_(subscriptions),
      scheduler_(scheduler),
      metrics_(metrics),
      blocking_pool_(blocking_pool),
      task_(io, std::chrono::milliseconds(1'000), [this] { refresh(); }) {}

void DeliveryGauges::start() {
  subscriptions_.for_each([this](const auto& sub) { metrics_.add_subscription(sub->id); });
  task_.start();
}

void DeliveryGauges::refresh() {
  constexpr std::int64_t kDueCountEveryMs = 5'000;
  if (!scheduler_.dispatching()) return;
  const UnixMillis now = clock_.now_ms();
  if (!counting_due_ && now - due_counted_at_ >= std::max(kDueCountEveryMs, due_count_every_ms_)) {
    asio::co_spawn(io_, count_due(now), asio::detached);
  }
  publish();
}

asio::awaitable<void> DeliveryGauges::count_due(UnixMillis now) {
  // Visits at most this many keys per pass: a backlog of millions costs a bounded scan every few
  // seconds on the pool, and the gauges then count the oldest million.
  constexpr std::size_t kDueScanBudget = 1'000'000;
  // The pass may take at most 1/kDutyCycle of a pool thread: on a backlog of hundreds of
  // thousands of overdue deliveries a pass takes about a second, and one every 5 s cost durable
  // ingest 15-25% in benchmark scenario 1 (benchmarks/COMPARE.md). The gauges are then staler.
  constexpr std::int64_t kDutyCycle = 20;
  counting_due_ = true;
  const auto started = std::chrono::steady_clock::now();
  const auto count = [&store = store_, now] { return queries::due_by_subscription(store, now, kDueScanBudget); };
  due_ = co_await run_blocking(blocking_pool_, count, asio::use_awaitable);
  const auto took_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
  due_count_every_ms_ = took_ms * kDutyCycle;
  counting_due_ = false;
  due_counted_at_ = now;
  publish();
}

void DeliveryGauges::publish() {
  // Counted from disk: the schedule's keys by subscription (kept up to date from the startup
  // count) and the due ones among them (the last periodic pass). A disabled subscription's
  // deliveries are `held`, in no other state and not in the oldest age. Deliveries waiting
  // behind the head of their ordering queue have no due time yet: `scheduled` (or `held`), not
  // in the oldest age.
  const ScheduleCounts& counts = scheduler_.counts();
  const UnixMillis now = clock_.now_ms();
  std::uint64_t held = 0;
  for (const auto* by_subscription : {&counts.scheduled_by_subscription, &counts.waiting_by_subscription}) {
    for (const auto& [subscription_id, n] : *by_subscription) {
      const auto sub = subscriptions_.find(subscription_id);
      if (sub && !sub->enabled) held += n;
    }
  }
  std::uint64_t due = 0;
  UnixMillis oldest_due = now;
  for (const auto& [subscription_id, d] : due_.by_subscription) {
    const auto sub = subscriptions_.find(subscription_id);
    if (!sub || !sub->enabled) continue;
    due += d.count;
    oldest_due = std::min(oldest_due, d.oldest);
  }
  // A delivery is in flight from its dispatch until its attempt is recorded; its key is due.
  const std::uint64_t in_flight = scheduler_.attempts_unrecorded();
  const std::uint64_t pending = due > in_flight ? due - in_flight : 0;
  const std::uint64_t accounted = held + pending + in_flight;
  const std::uint64_t unfinished = counts.unfinished();
  metrics_.set_deliveries(pending, unfinished > accounted ? unfinished - accounted : 0, in_flight, counts.dead, held);
  metrics_.set_oldest_pending_age(pending == 0 ? 0.0 : static_cast<double>(now - oldest_due) / 1000.0);
  std::uint64_t enabled = 0, disabled = 0;
  subscriptions_.for_each([&](const std::shared_ptr<const Subscription>& sub) { (sub->enabled ? enabled : disabled)++; });
  // Only lanes can have left the closed state their series start in: with 100,000 subscriptions,
  // setting every one's gauge each second held the event loop for ~100 ms.
  scheduler_.for_each_circuit([&](const std::string& subscription_id, CircuitState state) {
    // A deleted subscription's lane stays; its series must not come back.
    if (subscriptions_.find(subscription_id)) metrics_.set_circuit_state(subscription_id, static_cast<int>(state));
  });
  metrics_.set_subscriptions(enabled, disabled);
}

}  // namespace relay
