// DeliveryScheduler, what becomes of deliveries: an attempt's answer updates the lane's circuit
// and is recorded through the pipeline (attempt_builder.h builds the record;
// storage/delivery_outcomes.h adds what the outcome sets off); a recorded delivery moves in the
// window or leaves it; deliveries of open circuits whose window ended expire; those of deleted
// subscriptions are discarded; operational events' deliveries are taken in.
#include <algorithm>
#include <boost/asio/post.hpp>
#include <random>

#include "metrics/relay_metrics.h"
#include "relay/delivery/attempt_builder.h"
#include "relay/core/duration.h"
#include "relay/delivery/delivery_scheduler.h"
#include "storage/delivery_outcomes.h"
#include "storage/keys.h"
#include "storage/mutations.h"

namespace relay {

namespace asio = boost::asio;
using keys::ScheduleKey;

namespace {

// After a failed write of an attempt record the delivery is tried again this much later.
constexpr std::int64_t kStorageRetryMs = 5'000;

// The subscription of a delivery in an ordering queue, looked up when its command runs on the
// writer thread; nullptr for one in no queue or of a deleted subscription.
std::shared_ptr<const Subscription> queue_subscription(const SubscriptionRegistry& subscriptions, const Delivery& d) {
  if (d.queue_seq == 0) return nullptr;
  return subscriptions.find(d.subscription_id);
}

}  // namespace

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
  const auto sub = subscriptions_.find(subscription_id);
  const AttemptResult result = resolve_attempt(d, sub.get(), options_.retry, started_at, response,
                                               std::uniform_real_distribution<double>(0.0, 1.0)(random_));
  auto recorded = std::make_shared<Recorded>();
  record(d,
         [&subscriptions = subscriptions_, &context = outcome_context_, attempted = d, result, current = sub,
          recorded](WriteTxn& txn) {
           const auto queue_sub = queue_subscription(subscriptions, attempted);
           return outcomes::record_attempt(txn, context, attempted, result.attempt, result.resolution,
                                           queue_sub.get(), current.get(), *recorded);
         },
         recorded);
  request_pump();  // the lane has a free slot again
}

void DeliveryScheduler::record(const Delivery& d, CommitPipeline::Command command, std::shared_ptr<Recorded> recorded) {
  ++recording_;
  pipeline_.submit(
      std::move(command),
      [this, &io = io_, &registry = subscriptions_, alive = alive_, id = d.id, sub_id = d.subscription_id,
       old_due = d.next_attempt_at, recorded](const Status& status) {
        // A subscription disabled in the batch: the registry follows right after the commit, on
        // the writer thread, in commit order (as for an API change).
        if (status && recorded->disabled) registry.upsert(*recorded->disabled);
        asio::post(io, [=, this] {
          if (!*alive) return;
          on_recorded(id, sub_id, old_due, status, recorded->updated);
          if (!status) return;
          advanced(std::move(recorded->advance));
          published(*recorded);
        });
      },
      CommitPipeline::Priority::background);
}

void DeliveryScheduler::published(Recorded& recorded) {
  std::uint64_t created = 0;
  for (auto& event : recorded.published) {
    created += event.deliveries.size();
    enqueue(std::move(event.deliveries), event.event.payload);
  }
  if (created != 0) metrics_.deliveries_created(created);
  if (recorded.disabled) {
    const Subscription& sub = *recorded.disabled;
    metrics_.subscription_auto_disabled();
    logger_.warn("subscription disabled: its attempts all failed for its disable_after",
                 {{"subscription", sub.id},
                  {"disable_after", format_duration(effective_disable_after(sub, options_.disable_after_ms))}});
    subscription_changed(sub.id);
    if (on_auto_disabled_) on_auto_disabled_(sub);
  }
}

void DeliveryScheduler::advanced(ordering_queue::Advance advance) {
  // What a step scheduled or superseded was waiting in its queue.
  if (advance.superseded != 0) {
    metrics_.deliveries_superseded(advance.subscription_id, advance.superseded);
    counts_.count_waiting(advance.subscription_id, -static_cast<std::int64_t>(advance.superseded));
  }
  for (const auto& d : advance.promoted) counts_.count_waiting(d.subscription_id, -1);
  if (!advance.promoted.empty()) enqueue(std::move(advance.promoted), nullptr);
  if (advance.unfinished) advance_queue(std::move(*advance.unfinished));
}

void DeliveryScheduler::advance_queue(ordering_queue::QueueRef queue) {
  auto out = std::make_shared<ordering_queue::Advance>();
  pipeline_.submit(
      [&subscriptions = subscriptions_, &clock = clock_, queue, out](WriteTxn& txn) -> Status {
        const auto sub = subscriptions.find(queue.subscription_id);
        ordering_queue::advance(txn, queue, sub.get(), clock.now_ms(), *out);
        return Ok{};
      },
      [this, &io = io_, alive = alive_, out](const Status& status) {
        if (!status) return;  // a storage failure; the next start finds the queue headless
        asio::post(io, [this, alive, out] {
          if (*alive) advanced(std::move(*out));
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
    ScheduleKey key = schedule_key_of(updated);
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
    window_.removed(schedule_key_of(it->second.delivery));
    forget(id);
  }
  l.ready.clear();
  if (ids->empty()) return;
  counts_.count_scheduled(subscription_id, -static_cast<std::int64_t>(ids->size()));
  logger_.info("discarding deliveries of a deleted subscription",
               {{"subscription", subscription_id}, {"deliveries", ids->size()}});
  // Their ordering queues are released (ordering_queue.h): what that schedules comes here too.
  auto advance = std::make_shared<ordering_queue::Advance>();
  pipeline_.submit(
      [ids, advance, now = clock_.now_ms()](WriteTxn& txn) -> Status {
        for (const auto& id : *ids) mutations::remove_delivery(txn, id, now, advance.get());
        return Ok{};
      },
      [this, &io = io_, alive = alive_, advance](const Status& status) {
        if (!status) return;
        asio::post(io, [this, alive, advance] {
          if (*alive) advanced(std::move(*advance));
        });
      });
}

void DeliveryScheduler::expire_ended_windows() {
  const bool any_open = std::any_of(lanes_.begin(), lanes_.end(), [](const auto& entry) {
    return entry.second->circuit.state() != CircuitState::closed && entry.second->held != 0;
  });
  if (!any_open || draining_) return;
  const UnixMillis now = clock_.now_ms();
  std::vector<WindowItem*> ended;
  for (auto& [id, item] : items_) {
    const Delivery& d = item.delivery;
    if (item.in_flight || lane(d.subscription_id).circuit.state() == CircuitState::closed) continue;
    const auto sub = subscriptions_.find(d.subscription_id);
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
    auto recorded = std::make_shared<Recorded>();
    record(item->delivery,
           [&subscriptions = subscriptions_, &context = outcome_context_, waiting = item->delivery, now,
            recorded](WriteTxn& txn) {
             const auto queue_sub = queue_subscription(subscriptions, waiting);
             return outcomes::expire_delivery(txn, context, waiting, "window_expired", now, queue_sub.get(),
                                              *recorded);
           },
           recorded);
  }
}

}  // namespace relay
