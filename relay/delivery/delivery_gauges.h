#pragma once
// The depth gauges of the delivery path (relay_deliveries{state}, relay_oldest_pending_age_seconds)
// and the subscription gauges (relay_subscriptions, relay_circuit_state). They count what is on
// disk, not what the scheduler holds in memory, and have nothing to do with scheduling: the
// scheduler only keeps ScheduleCounts up to date; DeliveryGauges publishes every second on the
// event loop and counts the due keys by subscription on the blocking pool every 5 s.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <algorithm>
#include <cstdint>
#include <string>
#include <unordered_map>

#include "relay/core/clock.h"
#include "relay/core/periodic_task.h"
#include "relay/subscriptions/subscription_registry.h"
#include "storage/queries.h"
#include "storage/store.h"

namespace relay {

class DeliveryScheduler;
class RelayMetrics;

// Keys in `schedule` (in total and by subscription), deliveries waiting in an ordering queue
// behind its head (no schedule key; storage/ordering_queue.h) and keys in `dead_letters`, counted
// at start and kept up to date as deliveries are created, promoted, superseded, redriven and
// finished.
struct ScheduleCounts {
  std::uint64_t scheduled = 0;
  std::unordered_map<std::string, std::uint64_t> scheduled_by_subscription;
  std::uint64_t waiting = 0;
  std::unordered_map<std::string, std::uint64_t> waiting_by_subscription;
  std::uint64_t dead = 0;

  // Keys in `schedule` came (+) or went (-) for a subscription.
  void count_scheduled(const std::string& subscription_id, std::int64_t delta);
  // Waiting deliveries of a subscription joined a queue (+), or were scheduled or superseded (-).
  void count_waiting(const std::string& subscription_id, std::int64_t delta);
  // Unfinished deliveries: scheduled and waiting (--max-pending-deliveries).
  std::uint64_t unfinished() const { return scheduled + waiting; }
  void remove_dead(std::uint64_t count) { dead -= std::min(dead, count); }
};

class DeliveryGauges {
 public:
  DeliveryGauges(boost::asio::io_context& io, const Clock& clock, Store& store, SubscriptionRegistry& subscriptions,
                 const DeliveryScheduler& scheduler, RelayMetrics& metrics, boost::asio::thread_pool& blocking_pool);

  // Creates every stored subscription's series and publishes from now on, once the scheduler has
  // counted the schedule and until it drains.
  void start();

 private:
  // Every second: publishes, and starts a count of the due keys when one is due.
  void refresh();
  boost::asio::awaitable<void> count_due(UnixMillis now);
  void publish();

  boost::asio::io_context& io_;
  const Clock& clock_;
  Store& store_;
  SubscriptionRegistry& subscriptions_;
  const DeliveryScheduler& scheduler_;
  RelayMetrics& metrics_;
  boost::asio::thread_pool& blocking_pool_;
  queries::DueSchedule due_;  // the last count of due keys on disk
  bool counting_due_ = false;
  UnixMillis due_counted_at_ = 0;
  std::int64_t due_count_every_ms_ = 0;  // at least 5 s; longer after a long pass (see count_due)
  PeriodicTask task_;  // last: its ticks use the members above
};

}  // namespace relay
