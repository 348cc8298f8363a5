#include "relay/delivery/delivery_scheduler.h"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <limits>
#include <mutex>

#include "metrics/relay_metrics.h"
#include "relay/core/async_bridge.h"
#include "relay/delivery/signature.h"
#include "storage/keys.h"
#include "storage/mutations.h"
#include "storage/queries.h"
#include "storage/records.h"

namespace relay {

namespace asio = boost::asio;

namespace {

constexpr UnixMillis kNever = std::numeric_limits<UnixMillis>::max();
constexpr std::int64_t kTickMs = 1'000;
// After a failed write of an attempt record the delivery is tried again this much later.
constexpr std::int64_t kStorageRetryMs = 5'000;

// How long the delivery's subscription has been disabled since the delivery's window started.
std::int64_t paused_since(const Delivery& d, const Subscription* sub, UnixMillis now) {
  return sub ? std::max<std::int64_t>(0, paused_ms(*sub, now) - d.window_pause_mark) : 0;
}

std::string successor(std::string key) {
  key.push_back('\0');
  return key;
}

}  // namespace

struct DeliveryScheduler::Lane {
  std::deque<std::string> ready;  // due delivery ids, oldest first; may hold forgotten ids
  std::uint32_t in_flight = 0;    // requests awaiting the subscriber's answer
  double tokens = 0;
  UnixMillis tokens_at = 0;
  std::uint32_t consecutive_failures = 0;
  CircuitState circuit = CircuitState::closed;
  UnixMillis probe_at = 0;
  UnixMillis last_progress_at = 0;  // last answer, or the dispatch that found the lane idle
  bool in_turn_order = false;
  std::size_t held = 0;                    // deliveries of this subscription in memory
  std::optional<std::string> parked_from;  // its smallest schedule key left on disk, if any
  bool reload_queued = false;              // in lanes_to_reload_
  std::optional<SubscriptionSigner> signer;  // rebuilt when the subscription's secrets change
};

// What the loader reads from `schedule` on the blocking pool. A global load reads [lower, upper)
// for every subscription; a lane reload reads the parked deliveries of one subscription below the
// cursor. Either way a subscription without room in memory costs a key comparison per key, not a
// record decode: its first key left on disk is reported so that it parks there.
struct DeliveryScheduler::LoadRequest {
  std::string lower;
  std::string upper;
  std::size_t room = 0;  // items to read at most
  std::size_t lane_limit = 0;
  std::unordered_map<std::string, std::size_t> lane_room;  // by stored subscription key; absent: lane_limit
  std::optional<std::string> only_subscription;            // stored key of the lane being reloaded
};

// Event payloads read on the blocking pool, by loads and by insert_with_payloads. Ten subscriptions
// to one event park and reload separately: without it each reload reads (and for an older
// backlog, decompresses) the same event again.
// Bounded in bytes (payloads go up to --max-body); those still held by in-memory deliveries
// are shared with them, not copied.
class DeliveryScheduler::PayloadCache {
 public:
  std::shared_ptr<const std::string> get(Store& store, const std::string& event_id) {
    {
      std::lock_guard lock(mutex_);
      if (const auto it = by_event_.find(event_id); it != by_event_.end()) return it->second;
    }
    // Read without the lock: loads and insert_with_payloads run on the pool at the same time.
    auto event = queries::event(store, event_id);
    auto payload = event ? event->payload : std::make_shared<const std::string>("null");
    std::lock_guard lock(mutex_);
    if (!by_event_.emplace(event_id, payload).second) return payload;  // read twice meanwhile
    order_.push_back(event_id);
    bytes_ += payload->size();
    while (bytes_ > kCapacityBytes && order_.size() > 1) {
      const auto oldest = by_event_.find(order_.front());
      bytes_ -= oldest->second->size();
      by_event_.erase(oldest);
      order_.pop_front();
    }
    return payload;
  }

 private:
  static constexpr std::size_t kCapacityBytes = 8 << 20;
  std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<const std::string>> by_event_;
  std::deque<std::string> order_;  // oldest first
  std::size_t bytes_ = 0;
};

struct DeliveryScheduler::LoadResult {
  std::vector<std::pair<std::string, Item>> items;  // (schedule key, item)
  std::string next_cursor;                          // global load: where the next one starts
  bool reached_end = true;
  std::optional<std::string> reloaded_lane;         // subscription id of a lane reload
  std::vector<std::pair<std::string, std::string>> parked;  // (subscription id, first key left on disk)
};

DeliveryScheduler::DeliveryScheduler(asio::io_context& io, SchedulerOptions options, const Clock& clock,
                                     Logger& logger, Store& store, CommitPipeline& pipeline,
                                     SubscriptionRegistry& subscriptions, Egress& egress, RelayMetrics& metrics,
                                     asio::thread_pool& blocking_pool)
    : io_(io),
      options_(options),
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
  // Pool and writer-thread work captures what it uses by reference to long-lived parts, never
  // `this`: only the part posted back to the event loop touches the scheduler, after `alive`.
  asio::post(blocking_pool_, [this, &io = io_, &store = store_, alive = alive_, ready = std::move(ready)]() mutable {
    auto by_subscription = queries::count_schedule_by_subscription(store);
    const std::uint64_t dead = queries::count_keys(store, Family::dead_letters);
    asio::post(io, [this, alive, by_subscription = std::move(by_subscription), dead, ready = std::move(ready)] {
      if (!*alive) return;
      std::uint64_t scheduled = 0;
      for (const auto& [subscription_id, count] : by_subscription) {
        scheduled += count;
        count_scheduled(subscription_id, static_cast<std::int64_t>(count));
      }
      dead_total_ += dead;
      for (const auto& [id, sub] : subscriptions_.snapshot()->all()) metrics_.add_subscription(id);
      started_ = true;
      logger_.info("delivery scheduler started", {{"scheduled", scheduled}, {"dead", dead}});
      maybe_load();
      tick();
      if (ready) ready();
    });
  });
}

void DeliveryScheduler::enqueue(std::vector<Delivery> deliveries, std::shared_ptr<const std::string> payload,
                                Origin origin) {
  if (origin != Origin::rescheduled_pending) {
    for (const auto& d : deliveries) count_scheduled(d.subscription_id, 1);
  }
  if (origin == Origin::redriven_dead) dead_total_ -= std::min<std::uint64_t>(dead_total_, deliveries.size());
  if (!payload) {
    insert_with_payloads(std::move(deliveries));
    return;
  }
  for (auto& d : deliveries) insert(std::move(d), payload);
  maybe_load();
  request_pump();
}

void DeliveryScheduler::insert_with_payloads(std::vector<Delivery> deliveries) {
  asio::post(blocking_pool_, [this, &io = io_, &store = store_, alive = alive_, cache = payload_cache_,
                               deliveries = std::move(deliveries)]() mutable {
    std::vector<std::shared_ptr<const std::string>> payloads;
    payloads.reserve(deliveries.size());
    for (const auto& d : deliveries) payloads.push_back(cache->get(store, d.event_id));
    asio::post(io, [this, alive, deliveries = std::move(deliveries), payloads = std::move(payloads)]() mutable {
      if (!*alive) return;
      for (std::size_t i = 0; i < deliveries.size(); ++i) insert(std::move(deliveries[i]), payloads[i]);
      maybe_load();
      request_pump();
    });
  });
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
  const std::string key = keys::schedule_key(delivery.next_attempt_at, id);
  if (key >= cursor_) {
    // Beyond what memory mirrors: the loader reads it from disk in due order.
    if (loading_) arrived_while_loading_.emplace_back(key, Item{std::move(delivery), std::move(payload), false});
    return;
  }
  if (items_.size() >= options_.memory_limit) {
    lower_cursor(key);
    return;
  }
  if (!admit(delivery, key, *subscriptions_.snapshot())) return;
  auto [it, inserted] = items_.emplace(id, Item{std::move(delivery), std::move(payload), false});
  place(it->second);
}

bool DeliveryScheduler::admit(const Delivery& delivery, const std::string& key, const SubscriptionSet& subscriptions) {
  Lane& l = lane(delivery.subscription_id);
  const auto sub = subscriptions.find(delivery.subscription_id);
  const std::size_t budget = lane_budget(&l, sub.get(), clock_.now_ms());
  // Once parked, a lane takes its deliveries in due order through reloads.
  if (l.held >= budget || l.parked_from) {
    park(l, delivery.subscription_id, key, budget);
    return false;
  }
  ++l.held;
  return true;
}

void DeliveryScheduler::park(Lane& l, const std::string& subscription_id, const std::string& key, std::size_t budget) {
  l.parked_from = std::min(l.parked_from.value_or(key), key);
  maybe_queue_reload(l, subscription_id, budget);
}

void DeliveryScheduler::maybe_queue_reload(Lane& l, const std::string& subscription_id, std::size_t budget) {
  if (!l.parked_from || l.reload_queued || l.held >= budget || l.held > budget / 2) return;
  l.reload_queued = true;
  lanes_to_reload_.push_back(subscription_id);
}

std::size_t DeliveryScheduler::lane_budget(const Lane* l, const Subscription* sub, UnixMillis now) const {
  // How far ahead a rate-limited lane keeps deliveries: reloads take milliseconds.
  constexpr std::size_t kRateSeconds = 2;
  const std::size_t full = options_.lane_memory_limit;
  if (!sub) return full;  // deleted: its deliveries are discarded as they come due
  if (!sub->enabled) return 0;
  const std::size_t running = l ? l->in_flight : 0;
  const std::size_t blocked = std::min(full, options_.blocked_lane_memory_limit + running);
  if (l && l->circuit != CircuitState::closed) return blocked;
  if (l && running >= sub->max_in_flight && now - l->last_progress_at >= options_.stall_ms) return blocked;
  if (sub->rate_limit_per_second > 0) {
    return std::min(full, std::max<std::size_t>(options_.blocked_lane_memory_limit,
                                                std::size_t{sub->rate_limit_per_second} * kRateSeconds) + running);
  }
  return full;
}

std::size_t DeliveryScheduler::lane_budget(const Lane& l, const std::string& subscription_id, UnixMillis now) const {
  const auto sub = subscriptions_.snapshot()->find(subscription_id);
  return lane_budget(&l, sub.get(), now);
}

void DeliveryScheduler::fit_lanes_to_budgets() {
  const UnixMillis now = clock_.now_ms();
  const auto snapshot = subscriptions_.snapshot();
  struct Cut {
    Lane* lane;
    std::size_t budget;
    std::size_t running = 0;                                  // in memory and in flight
    std::vector<std::pair<std::string, std::string>> idle;  // (schedule key, id), not in flight
  };
  std::unordered_map<std::string, Cut> cuts;  // by subscription id
  for (auto& [subscription_id, l] : lanes_) {
    const auto sub = snapshot->find(subscription_id);
    const std::size_t budget = lane_budget(l.get(), sub.get(), now);
    if (l->held > budget) {
      cuts.emplace(subscription_id, Cut{l.get(), budget, 0, {}});
    } else {
      maybe_queue_reload(*l, subscription_id, budget);
    }
  }
  if (!cuts.empty()) {
    for (const auto& [id, item] : items_) {
      const auto cut = cuts.find(item.delivery.subscription_id);
      if (cut == cuts.end()) continue;
      if (item.in_flight) {
        ++cut->second.running;
      } else {
        cut->second.idle.emplace_back(keys::schedule_key(item.delivery.next_attempt_at, id), id);
      }
    }
    for (auto& [subscription_id, cut] : cuts) {
      // The earliest-due deliveries stay; the rest wait on disk, where their keys still are.
      const std::size_t keep = cut.budget > cut.running ? cut.budget - cut.running : 0;
      if (cut.idle.size() <= keep) continue;
      std::sort(cut.idle.begin(), cut.idle.end());
      Lane& l = *cut.lane;
      for (std::size_t i = keep; i < cut.idle.size(); ++i) {
        const auto it = items_.find(cut.idle[i].second);
        waiting_.erase({it->second.delivery.next_attempt_at, it->first});
        items_.erase(it);
        --l.held;
      }
      l.parked_from = std::min(l.parked_from.value_or(cut.idle[keep].first), cut.idle[keep].first);
      std::erase_if(l.ready, [&](const std::string& id) { return items_.count(id) == 0; });
      logger_.debug("lane cut back to its budget",
                    {{"subscription", subscription_id}, {"evicted", cut.idle.size() - keep}, {"budget", cut.budget}});
    }
  }
  maybe_load();
}

void DeliveryScheduler::lower_cursor(const std::string& key) {
  cursor_ = std::min(cursor_, key);
  if (loading_) lowered_while_loading_ = std::min(lowered_while_loading_.value_or(key), key);
}

void DeliveryScheduler::place(Item& item) {
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

DeliveryScheduler::Lane& DeliveryScheduler::lane(const std::string& subscription_id) {
  auto& slot = lanes_[subscription_id];
  if (!slot) slot = std::make_unique<Lane>();
  return *slot;
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
  // Disabled, enabled or re-paced: its budget changed.
  if (started_) fit_lanes_to_budgets();
  request_pump();
}

void DeliveryScheduler::dead_removed(std::size_t count) {
  dead_total_ -= std::min<std::uint64_t>(dead_total_, count);
}

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
  if (l.circuit == CircuitState::open) {
    if (now < l.probe_at) {
      wake_at = std::min(wake_at, l.probe_at);
      return false;
    }
    l.circuit = CircuitState::half_open;  // this attempt is the probe
  } else if (l.circuit == CircuitState::half_open && l.in_flight > 0) {
    return false;  // one probe at a time
  }
  while (!l.ready.empty()) {
    const auto it = items_.find(l.ready.front());
    if (it != items_.end() && !it->second.in_flight) break;
    l.ready.pop_front();  // forgotten or already running
  }
  if (l.ready.empty()) return false;
  if (sub.rate_limit_per_second > 0) {
    const double rate = sub.rate_limit_per_second;
    if (l.tokens_at == 0) l.tokens = rate;  // start with one second of burst
    l.tokens = std::min(rate, l.tokens + static_cast<double>(now - l.tokens_at) * rate / 1000.0);
    l.tokens_at = now;
    if (l.tokens < 1.0) {
      wake_at = std::min(wake_at, now + static_cast<UnixMillis>((1.0 - l.tokens) * 1000.0 / rate) + 1);
      return false;
    }
    l.tokens -= 1.0;
  }
  Item& item = items_.at(l.ready.front());
  l.ready.pop_front();
  attempt(item, sub);
  return true;
}

void DeliveryScheduler::attempt(Item& item, const Subscription& sub) {
  item.in_flight = true;
  Lane& l = lane(sub.id);
  if (l.in_flight == 0) l.last_progress_at = clock_.now_ms();  // a stall is counted from here
  ++l.in_flight;
  ++in_flight_;
  if (!l.signer || !l.signer->signs_for(sub)) l.signer.emplace(sub);
  const Delivery& d = item.delivery;
  const UnixMillis started_at = clock_.now_ms();
  const std::int64_t timestamp_s = started_at / 1000;

  EgressRequest request;
  request.url = sub.url;
  request.body = item.payload;
  request.timeout_ms = sub.timeout_ms.value_or(options_.attempt_timeout_ms);
  request.headers.reserve(8 + sub.headers.size());
  request.headers.emplace_back("Content-Type", "application/json");
  request.headers.emplace_back("webhook-id", d.event_id);
  request.headers.emplace_back("webhook-timestamp", std::to_string(timestamp_s));
  l.signer->append_headers(d.event_id, timestamp_s, item.payload ? *item.payload : std::string_view(), started_at,
                           request.headers);
  request.headers.emplace_back("X-Relay-Event-Type", d.event_type);
  request.headers.emplace_back("X-Relay-Delivery-Id", d.id);
  request.headers.emplace_back("X-Relay-Attempt", std::to_string(d.attempts + 1));
  for (const auto& [name, value] : sub.headers) request.headers.emplace_back(name, value);

  egress_.send(std::move(request), [this, alive = alive_, id = d.id, sub_id = sub.id, started_at](EgressResponse r) {
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
  ++recording_;
  const Delivery& d = it->second.delivery;
  const auto sub = subscriptions_.snapshot()->find(subscription_id);
  const RetryPolicy policy = sub ? effective_policy(options_.retry, sub->retry) : options_.retry;
  const UnixMillis finished_at = started_at + response.duration_ms;
  AttemptReply reply{response.http_status, std::nullopt};
  if (response.retry_after) reply.retry_after_ms = parse_retry_after_ms(*response.retry_after, finished_at);
  // Time the subscription spent disabled since the window started does not count against it.
  const UnixMillis window_start = d.window_start != 0 ? d.window_start + paused_since(d, sub.get(), finished_at) : started_at;
  const RetryDecision decision = decide_after_attempt(policy, window_start, d.attempts + 1, finished_at, reply,
                                                      std::uniform_real_distribution<double>(0.0, 1.0)(random_));

  Attempt attempt;
  attempt.number = d.attempts + 1;
  attempt.started_at = started_at;
  attempt.duration_ms = response.duration_ms;
  attempt.http_status = response.http_status;
  attempt.outcome = response.outcome;
  attempt.error = response.error;
  attempt.response_body = response.body_excerpt;
  mutations::Resolution resolution;
  resolution.state = decision.kind == RetryDecision::succeeded ? DeliveryState::succeeded
                     : decision.kind == RetryDecision::dead    ? DeliveryState::dead
                                                               : DeliveryState::pending;
  resolution.next_attempt_at = decision.next_attempt_at;
  resolution.window_pause_mark = sub ? paused_ms(*sub, started_at) : 0;

  auto updated = std::make_shared<Delivery>();
  const UnixMillis old_due = d.next_attempt_at;
  pipeline_.submit(
      [attempted = d, attempt, resolution, updated](WriteTxn& txn) {
        return mutations::record_attempt(txn, attempted, attempt, resolution, *updated);
      },
      [this, &io = io_, alive = alive_, delivery_id, subscription_id, old_due, updated](const Status& status) {
        asio::post(io, [=, this] {
          if (*alive) on_recorded(delivery_id, subscription_id, old_due, status, *updated);
        });
      },
      CommitPipeline::Priority::background);
  request_pump();  // the lane has a free slot again
}

void DeliveryScheduler::on_recorded(const std::string& delivery_id, const std::string& subscription_id,
                                    UnixMillis old_due, const Status& status,
                                    const Delivery& updated) {
  --recording_;
  const UnixMillis now = clock_.now_ms();

  const auto it = items_.find(delivery_id);
  if (loading_) removed_while_loading_.insert(keys::schedule_key(old_due, delivery_id));
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
      count_scheduled(subscription_id, -1);
    }
  } else if (updated.state == DeliveryState::pending) {
    const std::string key = keys::schedule_key(updated.next_attempt_at, delivery_id);
    if (it != items_.end() && key < cursor_) {
      it->second.in_flight = false;
      it->second.delivery = updated;
      place(it->second);
    } else {
      if (loading_ && it != items_.end()) {
        arrived_while_loading_.emplace_back(key, Item{updated, it->second.payload, false});
      }
      forget(delivery_id);
    }
  } else {
    count_scheduled(subscription_id, -1);
    if (updated.state == DeliveryState::succeeded) {
      metrics_.delivery_succeeded(updated.subscription_id, static_cast<double>(now - updated.created_at) / 1000.0);
    } else {
      ++dead_total_;
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
  if (success) {
    if (l.circuit != CircuitState::closed) logger_.info("circuit closed", {{"subscription", subscription_id}});
    l.consecutive_failures = 0;
    l.circuit = CircuitState::closed;
    return;
  }
  ++l.consecutive_failures;
  if (l.circuit == CircuitState::half_open ||
      (l.circuit == CircuitState::closed && l.consecutive_failures >= options_.circuit_failure_threshold)) {
    if (l.circuit == CircuitState::closed) {
      logger_.warn("circuit opened", {{"subscription", subscription_id}, {"consecutive_failures", l.consecutive_failures}});
    }
    const bool opened = l.circuit == CircuitState::closed;
    l.circuit = CircuitState::open;
    l.probe_at = now + options_.circuit_probe_interval_ms;
    arm_timer(l.probe_at);
    if (opened) {
      asio::post(io_, [this, alive = alive_] {
        if (*alive) fit_lanes_to_budgets();
      });
    }
  }
}

void DeliveryScheduler::discard_orphans(Lane& l, const std::string& subscription_id) {
  // The subscription was deleted: its deliveries have nowhere to go.
  auto ids = std::make_shared<std::vector<std::string>>();
  for (const auto& id : l.ready) {
    const auto it = items_.find(id);
    if (it == items_.end() || it->second.in_flight) continue;
    ids->push_back(id);
    if (loading_) removed_while_loading_.insert(keys::schedule_key(it->second.delivery.next_attempt_at, id));
    forget(id);
  }
  l.ready.clear();
  if (ids->empty()) return;
  count_scheduled(subscription_id, -static_cast<std::int64_t>(ids->size()));
  logger_.info("discarding deliveries of a deleted subscription",
               {{"subscription", subscription_id}, {"deliveries", ids->size()}});
  pipeline_.submit(
      [ids](WriteTxn& txn) -> Status {
        for (const auto& id : *ids) mutations::remove_delivery(txn, id);
        return Ok{};
      },
      [](const Status&) {});
}

void DeliveryScheduler::maybe_load() {
  if (loading_ || !started_ || draining_) return;
  const std::size_t memory_room = options_.memory_limit - std::min(items_.size(), options_.memory_limit);
  while (!lanes_to_reload_.empty()) {
    if (memory_room == 0) {
      load_awaits_room_ = true;  // the lanes stay queued; forget() calls again
      return;
    }
    const std::string subscription_id = std::move(lanes_to_reload_.front());
    lanes_to_reload_.pop_front();
    Lane& l = lane(subscription_id);
    l.reload_queued = false;
    if (!l.parked_from) continue;
    const std::string from = std::move(*l.parked_from);
    l.parked_from.reset();
    if (from >= cursor_) continue;  // the global loader reads it anyway
    LoadRequest request;
    request.lower = from;
    request.upper = cursor_;
    const std::size_t budget = lane_budget(l, subscription_id, clock_.now_ms());
    request.room = std::min(budget - std::min(l.held, budget), memory_room);
    if (request.room == 0) {  // its budget shrank meanwhile; it stays parked
      l.parked_from = from;
      continue;
    }
    request.lane_limit = options_.lane_memory_limit;
    request.only_subscription = keys::subscription_key(subscription_id);
    request.lane_room.emplace(*request.only_subscription, request.room);
    load(std::move(request), subscription_id);
    return;
  }
  const std::size_t held = items_.size();
  load_awaits_room_ = held + options_.memory_limit / 4 > options_.memory_limit;
  if (load_awaits_room_) return;  // forget() calls again when there is room
  const std::string upper = keys::time_bound(clock_.now_ms() + options_.lookahead_ms);
  if (cursor_ >= upper) return;
  LoadRequest request;
  request.lower = cursor_;
  request.upper = upper;
  request.room = options_.memory_limit - held;
  request.lane_limit = options_.lane_memory_limit;
  // Every subscription's room is its budget (from its settings, for one without a lane yet, as
  // after a restart) less what it holds: lanes that cannot dispatch do not fill memory.
  const UnixMillis now = clock_.now_ms();
  const auto snapshot = subscriptions_.snapshot();
  for (const auto& [subscription_id, sub] : snapshot->all()) {
    const auto found = lanes_.find(subscription_id);
    const Lane* l = found == lanes_.end() ? nullptr : found->second.get();
    // A parked lane takes its deliveries in due order through its own reloads.
    const std::size_t budget = l && l->parked_from ? 0 : lane_budget(l, sub.get(), now);
    const std::size_t held_by_lane = l ? l->held : 0;
    request.lane_room.emplace(keys::subscription_key(subscription_id), budget - std::min(held_by_lane, budget));
  }
  for (const auto& [subscription_id, l] : lanes_) {
    if (snapshot->find(subscription_id) || (l->held == 0 && !l->parked_from)) continue;
    const std::size_t budget = l->parked_from ? 0 : options_.lane_memory_limit;
    request.lane_room.emplace(keys::subscription_key(subscription_id), budget - std::min(l->held, budget));
  }
  load(std::move(request), std::nullopt);
}

void DeliveryScheduler::load(LoadRequest request, std::optional<std::string> reloaded_lane) {
  loading_ = true;
  asio::post(blocking_pool_, [this, &io = io_, &store = store_, alive = alive_, payloads = payload_cache_,
                              request = std::move(request), reloaded_lane = std::move(reloaded_lane)]() mutable {
    LoadResult result = read_schedule(store, *payloads, request);
    result.reloaded_lane = std::move(reloaded_lane);
    asio::post(io, [this, alive, result = std::move(result)]() mutable {
      if (*alive) on_loaded(std::move(result));
    });
  });
}

DeliveryScheduler::LoadResult DeliveryScheduler::read_schedule(Store& store, PayloadCache& payloads,
                                                              LoadRequest& request) {
  // Bounds one load's time on the pool when most keys belong to lanes without room.
  constexpr std::size_t kMaxScannedKeys = 65'536;
  LoadResult result;
  std::unordered_set<std::string> parked;  // stored subscription keys already reported
  std::string last_key;
  std::size_t scanned = 0;
  std::size_t taken = 0;
  bool stopped = false;
  store.scan(Family::schedule, ScanRange{request.lower, request.upper}, [&](std::string_view key, std::string_view sub) {
    if (++scanned > kMaxScannedKeys) {
      stopped = true;
      return false;
    }
    last_key = key;
    if (request.only_subscription && sub != *request.only_subscription) return true;
    std::size_t& room = request.lane_room.try_emplace(std::string(sub), request.lane_limit).first->second;
    if (room == 0) {
      if (parked.emplace(sub).second) {
        result.parked.emplace_back(keys::format_id(keys::kSubscriptionPrefix, sub), std::string(key));
      }
      return !request.only_subscription;  // a lane reload ends at its first key left on disk
    }
    const auto timed = keys::decode_schedule_key(key);
    auto delivery = queries::delivery(store, timed.id);
    if (delivery && delivery->state == DeliveryState::pending && delivery->next_attempt_at == timed.time) {
      auto payload = payloads.get(store, delivery->event_id);
      result.items.emplace_back(std::string(key), Item{std::move(*delivery), std::move(payload), false});
      --room;
      if (++taken == request.room && !request.only_subscription) {
        stopped = true;
        return false;
      }
    }
    return true;
  });
  result.reached_end = !stopped;
  result.next_cursor = stopped ? successor(last_key) : request.upper;
  if (stopped && request.only_subscription && parked.empty()) {
    // The lane's keys past the scanned range were not looked at: it stays parked there.
    result.parked.emplace_back(keys::format_id(keys::kSubscriptionPrefix, *request.only_subscription),
                               result.next_cursor);
  }
  return result;
}

void DeliveryScheduler::on_loaded(LoadResult result) {
  loading_ = false;
  if (!result.reloaded_lane) cursor_ = std::max(cursor_, result.next_cursor);
  if (lowered_while_loading_) cursor_ = std::min(cursor_, *lowered_while_loading_);
  lowered_while_loading_.reset();
  const auto snapshot = subscriptions_.snapshot();
  for (auto& [key, item] : result.items) {
    if (removed_while_loading_.count(key) != 0 || items_.count(item.delivery.id) != 0) continue;
    if (key >= cursor_) break;
    if (!admit(item.delivery, key, *snapshot)) continue;
    auto [it, inserted] = items_.emplace(item.delivery.id, std::move(item));
    place(it->second);
  }
  for (const auto& [subscription_id, key] : result.parked) {
    if (key >= cursor_) continue;
    Lane& l = lane(subscription_id);
    park(l, subscription_id, key, lane_budget(l, subscription_id, clock_.now_ms()));
  }
  auto arrived = std::move(arrived_while_loading_);
  arrived_while_loading_.clear();
  removed_while_loading_.clear();
  for (auto& [key, item] : arrived) {
    if (key < cursor_) insert(std::move(item.delivery), std::move(item.payload));
  }
  if (!result.reached_end || !lanes_to_reload_.empty()) {
    asio::post(io_, [this, alive = alive_] {
      if (*alive) maybe_load();
    });
  }
  request_pump();
}

void DeliveryScheduler::expire_ended_windows() {
  const bool any_open = std::any_of(lanes_.begin(), lanes_.end(), [](const auto& entry) {
    return entry.second->circuit != CircuitState::closed && entry.second->held != 0;
  });
  if (!any_open || draining_) return;
  const UnixMillis now = clock_.now_ms();
  const auto snapshot = subscriptions_.snapshot();
  std::vector<Item*> ended;
  for (auto& [id, item] : items_) {
    const Delivery& d = item.delivery;
    if (item.in_flight || lane(d.subscription_id).circuit == CircuitState::closed) continue;
    const auto sub = snapshot->find(d.subscription_id);
    if (!sub || !sub->enabled) continue;  // a disabled subscription's windows do not run
    // Not attempted yet: its window starts when it became due (created or redriven).
    const UnixMillis start = (d.window_start != 0 ? d.window_start : d.next_attempt_at) + paused_since(d, sub.get(), now);
    if (start + effective_policy(options_.retry, sub->retry).window_ms > now) continue;
    ended.push_back(&item);
  }
  for (Item* item : ended) {
    // Marked in flight until the write lands: neither dispatched nor evicted meanwhile.
    item->in_flight = true;
    waiting_.erase({item->delivery.next_attempt_at, item->delivery.id});
    ++recording_;
    auto updated = std::make_shared<Delivery>();
    pipeline_.submit(
        [waiting = item->delivery, now, updated](WriteTxn& txn) {
          return mutations::expire_delivery(txn, waiting, "window_expired", now, *updated);
        },
        [this, &io = io_, alive = alive_, id = item->delivery.id, sub_id = item->delivery.subscription_id,
         old_due = item->delivery.next_attempt_at, updated](const Status& status) {
          asio::post(io, [=, this] {
            if (*alive) on_recorded(id, sub_id, old_due, status, *updated);
          });
        },
        CommitPipeline::Priority::background);
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
  count_due();
  publish_gauges();
  request_pump();
  tick_timer_.expires_after(std::chrono::milliseconds(kTickMs));
  tick_timer_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
    if (!ec && *alive) tick();
  });
}

void DeliveryScheduler::count_scheduled(const std::string& subscription_id, std::int64_t delta) {
  std::uint64_t& count = scheduled_by_subscription_[subscription_id];
  if (delta >= 0) {
    count += static_cast<std::uint64_t>(delta);
    scheduled_total_ += static_cast<std::uint64_t>(delta);
  } else {
    const std::uint64_t gone = std::min(count, static_cast<std::uint64_t>(-delta));
    count -= gone;
    scheduled_total_ -= std::min(scheduled_total_, gone);
    if (count == 0) scheduled_by_subscription_.erase(subscription_id);
  }
}

void DeliveryScheduler::count_due() {
  // Visits at most this many keys per pass: a backlog of millions costs a bounded scan every few
  // seconds on the pool, and the gauges then count the oldest million.
  constexpr std::size_t kDueScanBudget = 1'000'000;
  constexpr std::int64_t kDueCountEveryMs = 5'000;
  const UnixMillis now = clock_.now_ms();
  if (counting_due_ || now - due_counted_at_ < kDueCountEveryMs) return;
  counting_due_ = true;
  asio::post(blocking_pool_, [this, &io = io_, &store = store_, alive = alive_, now] {
    auto due = queries::due_by_subscription(store, now, kDueScanBudget);
    asio::post(io, [this, alive, now, due = std::move(due)]() mutable {
      if (!*alive) return;
      counting_due_ = false;
      due_counted_at_ = now;
      due_ = std::move(due);
      publish_gauges();
    });
  });
}

void DeliveryScheduler::publish_gauges() {
  // Counted from disk: the schedule's keys by subscription (kept up to date from the startup
  // count) and the due ones among them (the last periodic pass). A disabled subscription's
  // deliveries are `held`, in no other state and not in the oldest age.
  const UnixMillis now = clock_.now_ms();
  const auto snapshot = subscriptions_.snapshot();
  std::uint64_t held = 0;
  for (const auto& [subscription_id, count] : scheduled_by_subscription_) {
    const auto sub = snapshot->find(subscription_id);
    if (sub && !sub->enabled) held += count;
  }
  std::uint64_t due = 0;
  UnixMillis oldest_due = now;
  for (const auto& [subscription_id, d] : due_.by_subscription) {
    const auto sub = snapshot->find(subscription_id);
    if (!sub || !sub->enabled) continue;
    due += d.count;
    oldest_due = std::min(oldest_due, d.oldest);
  }
  // A delivery is in flight from its dispatch until its attempt is recorded; its key is due.
  const std::uint64_t in_flight = std::uint64_t{in_flight_} + recording_;
  const std::uint64_t pending = due > in_flight ? due - in_flight : 0;
  const std::uint64_t accounted = held + pending + in_flight;
  metrics_.set_deliveries(pending, scheduled_total_ > accounted ? scheduled_total_ - accounted : 0, in_flight,
                          dead_total_, held);
  metrics_.set_oldest_pending_age(pending == 0 ? 0.0 : static_cast<double>(now - oldest_due) / 1000.0);
  std::uint64_t enabled = 0, disabled = 0;
  for (const auto& [id, sub] : snapshot->all()) {
    (sub->enabled ? enabled : disabled)++;
    const auto l = lanes_.find(id);
    metrics_.set_circuit_state(id, l == lanes_.end() ? 0 : static_cast<int>(l->second->circuit));
  }
  metrics_.set_subscriptions(enabled, disabled);
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
