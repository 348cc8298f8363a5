// DeliveryScheduler, the part that fills its window of the schedule: admission of deliveries to
// their lanes' budgets, parking, lane cut-backs, and the loads and lane reloads that run on the
// blocking pool (schedule_window.h holds the cursor and the invariant). Dispatch, attempts and
// drain are in delivery_scheduler.cpp.
#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "relay/core/async_bridge.h"
#include "relay/delivery/delivery_scheduler.h"
#include "storage/keys.h"

namespace relay {

namespace asio = boost::asio;
using keys::ScheduleKey;

bool DeliveryScheduler::admit(const Delivery& delivery, const ScheduleKey& key) {
  Lane& l = lane(delivery.subscription_id);
  const auto sub = subscriptions_.find(delivery.subscription_id);
  const std::size_t budget = relay::lane_budget(&l, sub.get(), clock_.now_ms(), lane_limits_);
  // Once parked, a lane takes its deliveries in due order through reloads.
  if (l.held >= budget || l.parked_from) {
    park(l, delivery.subscription_id, key, budget);
    return false;
  }
  ++l.held;
  return true;
}

void DeliveryScheduler::park(Lane& l, const std::string& subscription_id, const ScheduleKey& key, std::size_t budget) {
  l.parked_from = std::min(l.parked_from.value_or(key), key);
  maybe_queue_reload(l, subscription_id, budget);
}

void DeliveryScheduler::maybe_queue_reload(Lane& l, const std::string& subscription_id, std::size_t budget) {
  if (!wants_reload(l, budget)) return;
  l.reload_queued = true;
  lanes_to_reload_.push_back(subscription_id);
}

std::size_t DeliveryScheduler::lane_budget(const Lane& l, const std::string& subscription_id, UnixMillis now) const {
  const auto sub = subscriptions_.find(subscription_id);
  return relay::lane_budget(&l, sub.get(), now, lane_limits_);
}

void DeliveryScheduler::fit_lanes_to_budgets(const std::string* only) {
  const UnixMillis now = clock_.now_ms();
  struct Cut {
    Lane* lane;
    std::size_t budget;
    std::size_t running = 0;                                // in memory and in flight
    std::vector<std::pair<ScheduleKey, std::string>> idle;  // (schedule key, id), not in flight
  };
  std::unordered_map<std::string, Cut> cuts;  // by subscription id
  for (auto& [subscription_id, l] : lanes_) {
    if (only && subscription_id != *only) continue;
    const auto sub = subscriptions_.find(subscription_id);
    const std::size_t budget = relay::lane_budget(l.get(), sub.get(), now, lane_limits_);
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
        cut->second.idle.emplace_back(schedule_key_of(item.delivery), id);
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

void DeliveryScheduler::maybe_load() {
  if (window_.loading() || !started_ || draining_) return;
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
    ScheduleKey from = std::move(*l.parked_from);
    l.parked_from.reset();
    if (!window_.covers(from)) continue;  // the global loader reads it anyway
    LoadRequest request;
    request.upper = window_.cursor();
    const std::size_t budget = lane_budget(l, subscription_id, clock_.now_ms());
    request.room = std::min(budget - std::min(l.held, budget), memory_room);
    if (request.room == 0) {  // its budget shrank meanwhile; it stays parked
      l.parked_from = std::move(from);
      continue;
    }
    request.lower = std::move(from);
    request.lane_limit = options_.lane_memory_limit;
    request.only_subscription = keys::subscription_key(subscription_id);
    request.lane_room.emplace(*request.only_subscription, request.room);
    asio::co_spawn(io_, load(std::move(request), subscription_id), asio::detached);
    return;
  }
  const std::size_t held = items_.size();
  load_awaits_room_ = held + options_.memory_limit / 4 > options_.memory_limit;
  if (load_awaits_room_) return;  // forget() calls again when there is room
  const ScheduleKey upper{clock_.now_ms() + options_.lookahead_ms, ""};
  if (window_.cursor() >= upper) return;
  LoadRequest request;
  request.lower = window_.cursor();
  request.upper = upper;
  request.room = options_.memory_limit - held;
  request.lane_limit = options_.lane_memory_limit;
  // Every subscription's room is its budget less what it holds: lanes that cannot dispatch do not
  // fill memory. A subscription without a lane yet (as after a restart) gets its budget from its
  // settings when the loader meets its first key, so that a load does not cost the number of
  // subscriptions (100,000 of them, spec section 6).
  const UnixMillis now = clock_.now_ms();
  for (const auto& [subscription_id, l] : lanes_) {
    const auto sub = subscriptions_.find(subscription_id);
    if (!sub && l->held == 0 && !l->parked_from) continue;
    // A parked lane takes its deliveries in due order through its own reloads.
    const std::size_t budget = l->parked_from ? 0
                               : sub          ? relay::lane_budget(l.get(), sub.get(), now, lane_limits_)
                                              : options_.lane_memory_limit;
    request.lane_room.emplace(keys::subscription_key(subscription_id), budget - std::min(l->held, budget));
  }
  request.room_of_unlisted = [&registry = subscriptions_, limits = lane_limits_, now](std::string_view stored_key) {
    const auto sub = registry.find(keys::format_id(keys::kSubscriptionPrefix, stored_key));
    return relay::lane_budget(nullptr, sub.get(), now, limits);
  };
  asio::co_spawn(io_, load(std::move(request), std::nullopt), asio::detached);
}

asio::awaitable<void> DeliveryScheduler::load(LoadRequest request, std::optional<std::string> reloaded_lane) {
  window_.begin_load();
  const auto alive = alive_;
  // Runs on the pool: touches the store and the payload cache, nothing of the scheduler.
  const auto read = [&store = store_, payloads = payload_cache_, &request] {
    return read_schedule(store, *payloads, std::move(request));
  };
  LoadResult result = co_await run_blocking(blocking_pool_, read, asio::use_awaitable);
  if (!*alive) co_return;
  result.reloaded_lane = std::move(reloaded_lane);
  on_loaded(std::move(result));
}

void DeliveryScheduler::on_loaded(LoadResult result) {
  const bool more = !result.reached_end;
  auto landed = window_.land(std::move(result));
  for (auto& [key, item] : landed.loaded) {
    if (items_.count(item.delivery.id) != 0) continue;
    if (!admit(item.delivery, key)) continue;
    auto [it, inserted] = items_.emplace(item.delivery.id, std::move(item));
    place(it->second);
  }
  for (const auto& [subscription_id, key] : landed.parked) {
    Lane& l = lane(subscription_id);
    park(l, subscription_id, key, lane_budget(l, subscription_id, clock_.now_ms()));
  }
  for (auto& item : landed.arrived) insert(std::move(item.delivery), std::move(item.payload));
  if (more || !lanes_to_reload_.empty()) {
    asio::post(io_, [this, alive = alive_] {
      if (*alive) maybe_load();
    });
  }
  request_pump();
}

}  // namespace relay
