// DeliveryScheduler: dispatch (fair turns, bucket and circuit), attempts and their records, in-flight
// accounting and drain. Filling the window (admission, parking, cut-backs, loads) is in
// delivery_scheduler_loads.cpp. A little over 450 lines: dispatch and recording share the
// in-flight accounting, and splitting them would spread one invariant over two files.
#include "relay/delivery/delivery_scheduler.h"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <limits>

#include "metrics/relay_metrics.h"
#include "relay/core/async_bridge.h"
#include "relay/delivery/attempt_builder.h"
#include "storage/keys.h"
#include "storage/mutations.h"
#include "storage/queries.h"

namespace relay {

namespace asio = boost::asio;
using keys::ScheduleKey;

namespace {

constexpr UnixMillis kNever = std::numeric_limits<UnixMillis>::max();
constexpr std::int64_t kTickMs = 1'000;
// After a failed write of an attempt record the delivery is tried again this much later.
constexpr std::int64_t kStorageRetryMs = 5'000;

ScheduleKey key_of(const Delivery& d) { return {d.next_attempt_at, d.id}; }

}  // namespace

DeliveryScheduler::DeliveryScheduler(asio::io_context& io, SchedulerOptions options, const Clock& clock,
                                     Logger& logger, Store& store, CommitPipeline& pipeline,
                                     SubscriptionRegistry& subscriptions, Egress& egress, RelayMetrics& metrics,
                                     asio::thread_pool& blocking_pool)
    : io_(io),
      options_(options),
      lane_limits_{options.lane_memory_limit, options.blocked_lane_memory_limit, options.stall_ms},
      circuit_options_{options.circuit_failure_threshold, options.circuit_probe_interval_ms},
      clock_(clock),
      logger_(logger),
      store_(store),
      pipeline_(pipeline),
      subscriptions_(subscriptions),
      egress_(egress),
      metrics_(metrics),
      blocking_pool_(blocking_pool),
      wake_timer_(io),
      tick_timer_(io),
      drain_timer_(io),
      random_(std::random_device{}()),
      payload_cache_(std::make_shared<PayloadCache>()),
      alive_(std::make_shared<bool>(true)) {}

DeliveryScheduler::~DeliveryScheduler() { *alive_ = false; }

void DeliveryScheduler::start(std::function<void()> ready) {
  asio::co_spawn(io_, count_schedule(std::move(ready)), asio::detached);
}

asio::awaitable<void> DeliveryScheduler::count_schedule(std::function<void()> ready) {
  const auto alive = alive_;
  struct Counted {
    std::unordered_map<std::string, std::uint64_t> by_subscription;
    std::uint64_t dead = 0;
  };
  const auto count = [&store = store_] {
    return Counted{queries::count_schedule_by_subscription(store), queries::count_keys(store, Family::dead_letters)};
  };
  const Counted counted = co_await run_blocking(blocking_pool_, count, asio::use_awaitable);
  if (!*alive) co_return;
  std::uint64_t scheduled = 0;
  for (const auto& [subscription_id, n] : counted.by_subscription) {
    scheduled += n;
    counts_.count_scheduled(subscription_id, static_cast<std::int64_t>(n));
  }
  counts_.dead += counted.dead;
  started_ = true;
  logger_.info("delivery scheduler started", {{"scheduled", scheduled}, {"dead", counted.dead}});
  maybe_load();
  tick();
  if (ready) ready();
}

void DeliveryScheduler::enqueue(std::vector<Delivery> deliveries, std::shared_ptr<const std::string> payload,
                                Origin origin) {
  if (origin != Origin::rescheduled_pending) {
    for (const auto& d : deliveries) counts_.count_scheduled(d.subscription_id, 1);
  }
  if (origin == Origin::redriven_dead) counts_.remove_dead(deliveries.size());
  if (!payload) {
    asio::co_spawn(io_, insert_with_payloads(std::move(deliveries)), asio::detached);
    return;
  }
  for (auto& d : deliveries) insert(std::move(d), payload);
  maybe_load();
  request_pump();
}

asio::awaitable<void> DeliveryScheduler::insert_with_payloads(std::vector<Delivery> deliveries) {
  const auto alive = alive_;
  const auto read = [&store = store_, cache = payload_cache_, &deliveries] {
    std::vector<std::shared_ptr<const std::string>> payloads;
    payloads.reserve(deliveries.size());
    for (const auto& d : deliveries) payloads.push_back(cache->get(store, d.event_id));
    return payloads;
  };
  const auto payloads = co_await run_blocking(blocking_pool_, read, asio::use_awaitable);
  if (!*alive) co_return;
  for (std::size_t i = 0; i < deliveries.size(); ++i) insert(std::move(deliveries[i]), payloads[i]);
  maybe_load();
  request_pump();
}

void DeliveryScheduler::insert(Delivery delivery, std::shared_ptr<const std::string> payload) {
  const std::string id = delivery.id;
  if (auto it = items_.find(id); it != items_.end()) {
    // Rescheduled while in memory: an attempt in flight records against the new state anyway.
    if (it->second.in_flight) return;
    waiting_.erase({it->second.delivery.next_attempt_at, id});
    it->second.delivery = std::move(delivery);
    place(it->second);
    return;
  }
  ScheduleKey key = key_of(delivery);
  if (!window_.covers(key)) {
    // Beyond what memory mirrors: the loader reads it from disk in due order.
    window_.arrived(std::move(key), WindowItem{std::move(delivery), std::move(payload), false});
    return;
  }
  if (items_.size() >= options_.memory_limit) {
    window_.lower_cursor(key);
    return;
  }
  if (!admit(delivery, key, *subscriptions_.snapshot())) return;
  auto [it, inserted] = items_.emplace(id, WindowItem{std::move(delivery), std::move(payload), false});
  place(it->second);
}

void DeliveryScheduler::place(WindowItem& item) {
  const Delivery& d = item.delivery;
  if (d.next_attempt_at <= clock_.now_ms()) {
    make_ready(d);
    request_pump();
    return;
  }
  waiting_.emplace(d.next_attempt_at, d.id);
  if (wake_at_ == 0 || d.next_attempt_at < wake_at_) arm_timer(d.next_attempt_at);
}

void DeliveryScheduler::make_ready(const Delivery& delivery) {
  Lane& l = lane(delivery.subscription_id);
  l.ready.push_back(delivery.id);
  if (!l.in_turn_order) {
    l.in_turn_order = true;
    turn_order_.push_back(delivery.subscription_id);
  }
}

Lane& DeliveryScheduler::lane(const std::string& subscription_id) {
  auto& slot = lanes_[subscription_id];
  if (!slot) slot = std::make_unique<Lane>();
  return *slot;
}

CircuitState DeliveryScheduler::circuit_state(const std::string& subscription_id) const {
  const auto l = lanes_.find(subscription_id);
  return l == lanes_.end() ? CircuitState::closed : l->second->circuit.state();
}

void DeliveryScheduler::forget(const std::string& delivery_id) {
  const auto it = items_.find(delivery_id);
  if (it == items_.end()) return;
  const std::string subscription_id = it->second.delivery.subscription_id;
  Lane& l = lane(subscription_id);
  items_.erase(it);
  --l.held;
  // Drained to half its budget: read its parked deliveries again from where they start.
  if (l.parked_from && !l.reload_queued) maybe_queue_reload(l, subscription_id, lane_budget(l, subscription_id, clock_.now_ms()));
  if (l.reload_queued || load_awaits_room_) maybe_load();
}

void DeliveryScheduler::subscription_changed(const std::string& subscription_id) {
  // Created: its series exist from now on. Deleted: the caller forgets them, and the gauges
  // (which publish only subscriptions in the registry) do not bring them back.
  if (subscriptions_.snapshot()->find(subscription_id)) metrics_.add_subscription(subscription_id);
  // Disabled, enabled or re-paced: its budget changed, and only its own.
  if (started_) fit_lanes_to_budgets(&subscription_id);
  request_pump();
}

void DeliveryScheduler::dead_removed(std::size_t count) { counts_.remove_dead(count); }

bool DeliveryScheduler::is_in_flight(const std::string& delivery_id) const {
  const auto it = items_.find(delivery_id);
  return it != items_.end() && it->second.in_flight;
}

void DeliveryScheduler::request_pump() {
  if (pump_requested_) return;
  pump_requested_ = true;
  asio::post(io_, [this, alive = alive_] {
    if (*alive) pump();
  });
}

void DeliveryScheduler::pump() {
  pump_requested_ = false;
  if (!started_ || draining_) return;
  const UnixMillis now = clock_.now_ms();
  while (!waiting_.empty() && waiting_.begin()->first <= now) {
    const std::string id = waiting_.begin()->second;
    waiting_.erase(waiting_.begin());
    const auto it = items_.find(id);
    if (it == items_.end() || it->second.in_flight) continue;
    make_ready(it->second.delivery);
  }

  UnixMillis wake_at = waiting_.empty() ? kNever : waiting_.begin()->first;
  const auto snapshot = subscriptions_.snapshot();
  // One attempt per subscription per pass: a busy subscription cannot starve the others.
  for (bool progress = true; progress && in_flight_ < options_.max_in_flight;) {
    progress = false;
    for (auto it = turn_order_.begin(); it != turn_order_.end() && in_flight_ < options_.max_in_flight;) {
      Lane& l = lane(*it);
      if (l.ready.empty()) {
        l.in_turn_order = false;
        it = turn_order_.erase(it);
        continue;
      }
      const auto sub = snapshot->find(*it);
      if (!sub) {
        discard_orphans(l, *it);
        l.in_turn_order = false;
        it = turn_order_.erase(it);
        continue;
      }
      if (try_dispatch(l, *sub, now, wake_at)) progress = true;
      ++it;
    }
  }
  if (wake_at != kNever && (wake_at_ == 0 || wake_at < wake_at_)) arm_timer(wake_at);
}

bool DeliveryScheduler::try_dispatch(Lane& l, const Subscription& sub, UnixMillis now, UnixMillis& wake_at) {
  if (!sub.enabled || l.in_flight >= sub.max_in_flight) return false;
  UnixMillis retry_at = kNever;
  if (!l.circuit.allows(l.in_flight, now, retry_at)) {
    wake_at = std::min(wake_at, retry_at);
    return false;
  }
  while (!l.ready.empty()) {
    const auto it = items_.find(l.ready.front());
    if (it != items_.end() && !it->second.in_flight) break;
    l.ready.pop_front();  // forgotten or already running
  }
  if (l.ready.empty()) return false;
  if (sub.rate_limit_per_second > 0 && !l.bucket.try_take(sub.rate_limit_per_second, now, retry_at)) {
    wake_at = std::min(wake_at, retry_at);
    return false;
  }
  WindowItem& item = items_.at(l.ready.front());
  l.ready.pop_front();
  attempt(item, sub);
  return true;
}

void DeliveryScheduler::attempt(WindowItem& item, const Subscription& sub) {
  item.in_flight = true;
  Lane& l = lane(sub.id);
  if (l.in_flight == 0) l.last_progress_at = clock_.now_ms();  // a stall is counted from here
  ++l.in_flight;
  ++in_flight_;
  if (!l.signer || !l.signer->signs_for(sub)) l.signer.emplace(sub);
  const Delivery& d = item.delivery;
  const UnixMillis started_at = clock_.now_ms();
  egress_.send(build_request(d, sub, item.payload, *l.signer, started_at, options_.attempt_timeout_ms),
               [this, alive = alive_, id = d.id, sub_id = sub.id, started_at](EgressResponse r) {
                 if (*alive) on_attempt_done(id, sub_id, started_at, r);
               });
}

void DeliveryScheduler::on_attempt_done(const std::string& delivery_id, const std::string& subscription_id,
                                        UnixMillis started_at, const EgressResponse& response) {
  Lane& l = lane(subscription_id);
  --l.in_flight;
  --in_flight_;
  l.last_progress_at = clock_.now_ms();
  const auto it = items_.find(delivery_id);
  if (response.cancelled || it == items_.end()) {
    // Shutdown: the delivery stays pending on disk and is attempted again after a restart.
    if (it != items_.end()) it->second.in_flight = false;
    finish_drain_if_idle();
    return;
  }
  // The subscriber has answered: its health and the attempt's metrics do not wait for the record.
  metrics_.attempt(subscription_id, response.outcome, static_cast<double>(response.duration_ms) / 1000.0);
  record_circuit(l, subscription_id, response.outcome == AttemptOutcome::success, clock_.now_ms());
  const Delivery& d = it->second.delivery;
  const auto sub = subscriptions_.snapshot()->find(subscription_id);
  const AttemptResult result = resolve_attempt(d, sub.get(), options_.retry, started_at, response,
                                               std::uniform_real_distribution<double>(0.0, 1.0)(random_));
  auto updated = std::make_shared<Delivery>();
  record(d,
         [attempted = d, result, updated](WriteTxn& txn) {
           return mutations::record_attempt(txn, attempted, result.attempt, result.resolution, *updated);
         },
         updated);
  request_pump();  // the lane has a free slot again
}

void DeliveryScheduler::record(const Delivery& d, CommitPipeline::Command command, std::shared_ptr<Delivery> updated) {
  ++recording_;
  pipeline_.submit(
      std::move(command),
      [this, &io = io_, alive = alive_, id = d.id, sub_id = d.subscription_id, old_due = d.next_attempt_at,
       updated](const Status& status) {
        asio::post(io, [=, this] {
          if (*alive) on_recorded(id, sub_id, old_due, status, *updated);
        });
      },
      CommitPipeline::Priority::background);
}

void DeliveryScheduler::on_recorded(const std::string& delivery_id, const std::string& subscription_id,
                                    UnixMillis old_due, const Status& status, const Delivery& updated) {
  --recording_;
  const UnixMillis now = clock_.now_ms();

  const auto it = items_.find(delivery_id);
  window_.removed({old_due, delivery_id});
  if (!status) {
    if (status.error().code == Errc::unavailable && it != items_.end()) {
      logger_.error("cannot record attempt", {{"delivery", delivery_id}, {"error", status.error().message}});
      it->second.in_flight = false;
      waiting_.erase({it->second.delivery.next_attempt_at, delivery_id});
      it->second.delivery.next_attempt_at = now + kStorageRetryMs;
      place(it->second);
    } else {
      // Removed or changed meanwhile (discarded, subscription deleted): nothing left to do.
      forget(delivery_id);
      counts_.count_scheduled(subscription_id, -1);
    }
  } else if (updated.state == DeliveryState::pending) {
    ScheduleKey key = key_of(updated);
    if (it != items_.end() && window_.covers(key)) {
      it->second.in_flight = false;
      it->second.delivery = updated;
      place(it->second);
    } else {
      if (it != items_.end()) window_.arrived(std::move(key), WindowItem{updated, it->second.payload, false});
      forget(delivery_id);
    }
  } else {
    counts_.count_scheduled(subscription_id, -1);
    if (updated.state == DeliveryState::succeeded) {
      metrics_.delivery_succeeded(updated.subscription_id, static_cast<double>(now - updated.created_at) / 1000.0);
    } else {
      ++counts_.dead;
      metrics_.delivery_dead(updated.subscription_id);
      logger_.warn("delivery dead", {{"delivery", delivery_id},
                                     {"subscription", updated.subscription_id},
                                     {"attempts", updated.attempts},
                                     {"last_error", updated.last_error}});
    }
    forget(delivery_id);
  }
  request_pump();
  finish_drain_if_idle();
}

void DeliveryScheduler::record_circuit(Lane& l, const std::string& subscription_id, bool success, UnixMillis now) {
  switch (l.circuit.record(success, now, circuit_options_)) {
    case CircuitBreaker::Change::none:
      return;
    case CircuitBreaker::Change::closed:
      logger_.info("circuit closed", {{"subscription", subscription_id}});
      return;
    case CircuitBreaker::Change::opened:
      logger_.warn("circuit opened",
                   {{"subscription", subscription_id}, {"consecutive_failures", l.circuit.consecutive_failures()}});
      arm_timer(l.circuit.probe_at());
      // Its budget shrank: the lane is cut back once this answer is handled.
      asio::post(io_, [this, alive = alive_] {
        if (*alive) fit_lanes_to_budgets();
      });
      return;
    case CircuitBreaker::Change::reopened:
      arm_timer(l.circuit.probe_at());
      return;
  }
}

void DeliveryScheduler::discard_orphans(Lane& l, const std::string& subscription_id) {
  // The subscription was deleted: its deliveries have nowhere to go.
  auto ids = std::make_shared<std::vector<std::string>>();
  for (const auto& id : l.ready) {
    const auto it = items_.find(id);
    if (it == items_.end() || it->second.in_flight) continue;
    ids->push_back(id);
    window_.removed(key_of(it->second.delivery));
    forget(id);
  }
  l.ready.clear();
  if (ids->empty()) return;
  counts_.count_scheduled(subscription_id, -static_cast<std::int64_t>(ids->size()));
  logger_.info("discarding deliveries of a deleted subscription",
               {{"subscription", subscription_id}, {"deliveries", ids->size()}});
  pipeline_.submit(
      [ids](WriteTxn& txn) -> Status {
        for (const auto& id : *ids) mutations::remove_delivery(txn, id);
        return Ok{};
      },
      [](const Status&) {});
}

void DeliveryScheduler::expire_ended_windows() {
  const bool any_open = std::any_of(lanes_.begin(), lanes_.end(), [](const auto& entry) {
    return entry.second->circuit.state() != CircuitState::closed && entry.second->held != 0;
  });
  if (!any_open || draining_) return;
  const UnixMillis now = clock_.now_ms();
  const auto snapshot = subscriptions_.snapshot();
  std::vector<WindowItem*> ended;
  for (auto& [id, item] : items_) {
    const Delivery& d = item.delivery;
    if (item.in_flight || lane(d.subscription_id).circuit.state() == CircuitState::closed) continue;
    const auto sub = snapshot->find(d.subscription_id);
    if (!sub || !sub->enabled) continue;  // a disabled subscription's windows do not run
    // Not attempted yet: its window starts when it became due (created or redriven).
    const UnixMillis start = (d.window_start != 0 ? d.window_start : d.next_attempt_at) + paused_since(d, sub.get(), now);
    if (start + effective_policy(options_.retry, sub->retry).window_ms > now) continue;
    ended.push_back(&item);
  }
  for (WindowItem* item : ended) {
    // Marked in flight until the write lands: neither dispatched nor evicted meanwhile.
    item->in_flight = true;
    waiting_.erase({item->delivery.next_attempt_at, item->delivery.id});
    auto updated = std::make_shared<Delivery>();
    record(item->delivery,
           [waiting = item->delivery, now, updated](WriteTxn& txn) {
             return mutations::expire_delivery(txn, waiting, "window_expired", now, *updated);
           },
           updated);
  }
}

void DeliveryScheduler::arm_timer(UnixMillis wake_at) {
  wake_at_ = wake_at;
  const auto delay = std::chrono::milliseconds(std::max<std::int64_t>(0, wake_at - clock_.now_ms()));
  wake_timer_.expires_after(delay);
  wake_timer_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
    if (ec || !*alive) return;
    wake_at_ = 0;
    pump();
  });
}

void DeliveryScheduler::tick() {
  expire_ended_windows();
  fit_lanes_to_budgets();  // loads too
  request_pump();
  tick_timer_.expires_after(std::chrono::milliseconds(kTickMs));
  tick_timer_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
    if (!ec && *alive) tick();
  });
}

void DeliveryScheduler::drain(std::chrono::milliseconds grace, std::function<void()> done) {
  draining_ = true;
  drained_ = std::move(done);
  tick_timer_.cancel();
  wake_timer_.cancel();
  drain_timer_.expires_after(grace);
  drain_timer_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
    if (ec || !*alive || !drained_) return;
    logger_.warn("shutdown grace expired; cancelling attempts in flight", {{"in_flight", in_flight_}});
    egress_.cancel_all();  // cancelled attempts are not recorded; they stay pending on disk
    finish_drain_if_idle();
  });
  finish_drain_if_idle();
}

void DeliveryScheduler::finish_drain_if_idle() {
  if (!draining_ || in_flight_ != 0 || recording_ != 0 || !drained_) return;
  drain_timer_.cancel();
  auto done = std::move(drained_);
  drained_ = nullptr;
  asio::post(io_, std::move(done));
}

}  // namespace relay
