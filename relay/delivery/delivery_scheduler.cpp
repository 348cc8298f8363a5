// DeliveryScheduler: start, enqueue, dispatch (fair turns, bucket and circuit), timers and drain.
// Filling the window (admission, parking, cut-backs, loads) is in delivery_scheduler_loads.cpp;
// what becomes of a delivery after its attempt (records, circuit, expiry, discards) in
// delivery_scheduler_outcomes.cpp.
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
#include "storage/queries.h"

namespace relay {

namespace asio = boost::asio;
using keys::ScheduleKey;

namespace {

constexpr UnixMillis kNever = std::numeric_limits<UnixMillis>::max();
constexpr std::int64_t kTickMs = 1'000;

}  // namespace

DeliveryScheduler::DeliveryScheduler(asio::io_context& io, SchedulerOptions options, const Clock& clock,
                                     Logger& logger, Store& store, CommitPipeline& pipeline,
                                     SubscriptionRegistry& subscriptions, Egress& egress, RelayMetrics& metrics,
                                     asio::thread_pool& blocking_pool, keys::IdGenerator& ids,
                                     FailureStreaks& streaks)
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
      outcome_context_{operational_events::Publisher{ids,
                                                     [&subscriptions](const Event& event) {
                                                       return subscriptions.matching(RoutedEvent{
                                                           event.tenant, event.type,
                                                           event.payload ? std::string_view(*event.payload) : ""});
                                                     }},
                       streaks, options.disable_after_ms},
      wake_timer_(io),
      tick_task_(io, std::chrono::milliseconds(kTickMs), [this] { tick(); }),
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
    ordering_queue::Survey queues;
  };
  const auto count = [&store = store_] {
    return Counted{queries::count_schedule_by_subscription(store), queries::count_keys(store, Family::dead_letters),
                   ordering_queue::survey(store)};
  };
  const Counted counted = co_await run_blocking(blocking_pool_, count, asio::use_awaitable);
  if (!*alive) co_return;
  std::uint64_t scheduled = 0;
  for (const auto& [subscription_id, n] : counted.by_subscription) {
    scheduled += n;
    counts_.count_scheduled(subscription_id, static_cast<std::int64_t>(n));
  }
  for (const auto& [subscription_id, n] : counted.queues.waiting_by_subscription) {
    counts_.count_waiting(subscription_id, static_cast<std::int64_t>(n));
  }
  counts_.dead += counted.dead;
  started_ = true;
  logger_.info("delivery scheduler started",
               {{"scheduled", scheduled}, {"waiting", counts_.waiting}, {"dead", counted.dead}});
  // Queues a crash left between two steps of coalescing go on.
  for (const auto& queue : counted.queues.headless) advance_queue(queue);
  maybe_load();
  tick_task_.start();  // the first tick at once
  if (ready) ready();
}

void DeliveryScheduler::enqueue(std::vector<Delivery> deliveries, std::shared_ptr<const std::string> payload,
                                Origin origin) {
  if (origin == Origin::redriven_dead) counts_.remove_dead(deliveries.size());
  // Waiting ones have no schedule key: counted as waiting, not held in memory.
  std::erase_if(deliveries, [this](const Delivery& d) {
    if (d.waiting) counts_.count_waiting(d.subscription_id, 1);
    return d.waiting;
  });
  if (deliveries.empty()) return;
  if (origin != Origin::rescheduled_pending) {
    for (const auto& d : deliveries) counts_.count_scheduled(d.subscription_id, 1);
  }
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
  ScheduleKey key = schedule_key_of(delivery);
  if (!window_.covers(key)) {
    // Beyond what memory mirrors: the loader reads it from disk in due order.
    window_.arrived(std::move(key), WindowItem{std::move(delivery), std::move(payload), false});
    return;
  }
  if (items_.size() >= options_.memory_limit) {
    window_.lower_cursor(key);
    return;
  }
  if (!admit(delivery, key)) return;
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

void DeliveryScheduler::for_each_circuit(
    const std::function<void(const std::string& subscription_id, CircuitState)>& visit) const {
  for (const auto& [subscription_id, l] : lanes_) visit(subscription_id, l->circuit.state());
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
  if (subscriptions_.find(subscription_id)) metrics_.add_subscription(subscription_id);
  // Disabled, enabled or re-paced: its budget changed, and only its own.
  if (started_) fit_lanes_to_budgets(&subscription_id);
  request_pump();
}

void DeliveryScheduler::set_shards(std::size_t live_shards) {
  if (live_shards == lane_limits_.shards) return;
  lane_limits_.shards = live_shards;
  if (started_) fit_lanes_to_budgets(nullptr);
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
      const auto sub = subscriptions_.find(*it);
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
  if (!sub.enabled || l.in_flight >= shard_share(sub.max_in_flight, lane_limits_.shards)) return false;
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
  const std::uint32_t rate = shard_share(sub.rate_limit_per_second, lane_limits_.shards);
  if (rate > 0 && !l.bucket.try_take(rate, now, retry_at)) {
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
}

void DeliveryScheduler::drain(std::chrono::milliseconds grace, std::function<void()> done) {
  draining_ = true;
  drained_ = std::move(done);
  tick_task_.stop();
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
