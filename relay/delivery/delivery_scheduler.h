#pragma once
// DeliveryScheduler: decides which delivery is attempted when, runs the attempts through an
// Egress, and records each outcome through the CommitPipeline. Lives on the event loop
// (single-threaded ownership, no locks).
//
// Memory stays bounded however many retries are scheduled: the `schedule` column family is
// the queue, and only a window of it is in memory. Invariant: every schedule key below
// `cursor_` is in memory (waiting, ready or in flight), except those of a parked subscription,
// whose keys from its `parked_from` key on may be on disk only; a lane reload reads them back,
// in due order, from `parked_from` up to the cursor once the lane has drained to half its
// budget. Keys at or above the cursor live on disk only and are loaded, in key (= due time)
// order, by a bounded scan on the blocking pool when memory has room and their due time is near.
// Both scans skip the keys of a lane without room by the subscription stored in the key's
// value, without decoding a record. New deliveries below the cursor go straight to memory, so a
// fresh event is attempted at once, without a polling delay.
//
// Isolation at any backlog size. A lane keeps in memory only what it can dispatch soon, its
// *budget*: lane_memory_limit for a lane that can dispatch; none for a disabled subscription;
// blocked_lane_memory_limit beyond the attempts it has running for a lane with an open (or
// half-open) circuit, or whose max_in_flight is full with no answer for stall_ms; and about two
// seconds of its rate for a rate-limited one. A lane that finds itself above its budget (its
// circuit opened, its subscriber stalled, it was disabled) is cut back on the next tick: its
// latest-due deliveries not in flight leave memory and it parks at the first of them (their
// schedule keys stay on disk). Loads compute each subscription's room from its budget, after a
// restart too (from its stored settings), so the deliveries of lanes that cannot dispatch never
// fill memory and never keep the loader from the deliveries of lanes that can: a healthy
// subscription's next delivery waits at most for one load, whatever the backlog.
//
// Each subscription has its own ready queue, in-flight count, token bucket
// (rate_limit_per_second) and circuit breaker; dispatch takes turns between subscriptions,
// bounded by the global --max-in-flight. Disabled subscriptions and open circuits hold their
// deliveries without using up attempts.

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <optional>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "relay/core/clock.h"
#include "relay/core/logger.h"
#include "relay/delivery/egress.h"
#include "relay/delivery/retry_policy.h"
#include "relay/model/delivery.h"
#include "relay/subscriptions/subscription_registry.h"
#include "storage/commit_pipeline.h"
#include "storage/queries.h"
#include "storage/store.h"

namespace relay {

class RelayMetrics;

struct SchedulerOptions {
  RetryPolicy retry;                          // --retry-initial / --retry-max-delay / --retry-window
  std::int64_t attempt_timeout_ms = 15'000;   // --attempt-timeout, unless the subscription sets one
  std::uint32_t max_in_flight = 4096;         // --max-in-flight
  std::size_t memory_limit = 20'000;          // deliveries held in memory at most
  std::size_t lane_memory_limit = 4'000;      // of which one subscription may hold at most
  std::int64_t lookahead_ms = 30'000;         // how far ahead of now the loader reads
  std::uint32_t circuit_failure_threshold = 20;
  std::int64_t circuit_probe_interval_ms = 30'000;
  // What a lane that cannot dispatch keeps in memory beyond its running attempts (see above).
  std::size_t blocked_lane_memory_limit = 32;
  // A lane whose max_in_flight is full counts as stalled after this long without an answer.
  std::int64_t stall_ms = 1'000;
};

enum class CircuitState { closed = 0, half_open = 1, open = 2 };

class DeliveryScheduler {
 public:
  DeliveryScheduler(boost::asio::io_context& io, SchedulerOptions options, const Clock& clock, Logger& logger,
                    Store& store, CommitPipeline& pipeline, SubscriptionRegistry& subscriptions,
                    Egress& egress, RelayMetrics& metrics, boost::asio::thread_pool& blocking_pool);
  ~DeliveryScheduler();

  // Counts what is on disk and starts loading due deliveries. `ready` runs on the event loop
  // once the counts are known.
  void start(std::function<void()> ready);

  // Where deliveries handed to enqueue() come from, for the depth gauges.
  enum class Origin { created, rescheduled_pending, redriven_dead };
  // Deliveries that are durable and pending (new, retried or redriven). `payload` may be null:
  // it is then read from the event on the blocking pool.
  void enqueue(std::vector<Delivery> deliveries, std::shared_ptr<const std::string> payload,
               Origin origin = Origin::created);
  // A subscription was created, changed or deleted: held deliveries may move again.
  void subscription_changed(const std::string& subscription_id);
  // Dead deliveries were removed (discarded or expired).
  void dead_removed(std::size_t count);

  bool is_in_flight(const std::string& delivery_id) const;
  // Deliveries held in memory (waiting, ready or in flight); at most memory_limit plus those
  // handed in directly by enqueue() while memory had room.
  std::size_t held_in_memory() const { return items_.size(); }
  // Unfinished deliveries (keys in `schedule`: pending, scheduled, in flight, held), for --max-pending-deliveries.
  std::uint64_t pending_deliveries() const { return scheduled_total_; }

  // Stops starting attempts; `done` runs when every running attempt is recorded, or after
  // `grace`, when the rest are cancelled (they stay pending on disk and resume on restart).
  void drain(std::chrono::milliseconds grace, std::function<void()> done);

 private:
  struct Item {
    Delivery delivery;
    std::shared_ptr<const std::string> payload;
    bool in_flight = false;  // from dispatch until the attempt's record is written
  };
  struct Lane;  // per-subscription dispatch state
  struct LoadRequest;
  struct LoadResult;
  class PayloadCache;

  void insert(Delivery delivery, std::shared_ptr<const std::string> payload);
  void insert_with_payloads(std::vector<Delivery> deliveries);
  void place(Item& item);
  // Appends a due delivery to its lane and gives the lane a turn.
  void make_ready(const Delivery& delivery);
  void request_pump();
  void pump();
  bool try_dispatch(Lane& lane, const Subscription& sub, UnixMillis now, UnixMillis& wake_at);
  void attempt(Item& item, const Subscription& sub);
  void on_attempt_done(const std::string& delivery_id, const std::string& subscription_id, UnixMillis started_at,
                       const EgressResponse& response);
  void on_recorded(const std::string& delivery_id, const std::string& subscription_id, UnixMillis old_due,
                   const Status& status,
                   const Delivery& updated);
  void record_circuit(Lane& lane, const std::string& subscription_id, bool success, UnixMillis now);
  void discard_orphans(Lane& lane, const std::string& subscription_id);
  void maybe_load();
  void load(LoadRequest request, std::optional<std::string> reloaded_lane);
  // Runs on the blocking pool; touches nothing of the scheduler.
  static LoadResult read_schedule(Store& store, PayloadCache& payloads, LoadRequest& request);
  void on_loaded(LoadResult result);
  void arm_timer(UnixMillis wake_at);
  void tick();
  void publish_gauges();
  // Counts the due keys on disk on the blocking pool, for the depth gauges.
  void count_due();
  // Keys in `schedule` came (+) or went (-) for a subscription.
  void count_scheduled(const std::string& subscription_id, std::int64_t delta);
  void finish_drain_if_idle();
  Lane& lane(const std::string& subscription_id);
  void forget(const std::string& delivery_id);
  // Admits a delivery to memory if its subscription has room, else parks it on disk.
  bool admit(const Delivery& delivery, const std::string& key, const SubscriptionSet& subscriptions);
  // Leaves a lane's deliveries from `key` on on disk; they come back by a reload of the lane.
  void park(Lane& lane, const std::string& subscription_id, const std::string& key, std::size_t budget);
  void maybe_queue_reload(Lane& lane, const std::string& subscription_id, std::size_t budget);
  // How many of its deliveries a lane may hold in memory: what it can dispatch soon. `lane` may
  // be null (no state yet), `sub` too (deleted: its deliveries are discarded when due).
  std::size_t lane_budget(const Lane* lane, const Subscription* sub, UnixMillis now) const;
  std::size_t lane_budget(const Lane& lane, const std::string& subscription_id, UnixMillis now) const;
  // Cuts every lane above its budget back to it (evicting its latest-due deliveries to disk) and
  // queues reloads for parked lanes whose budget has room again.
  void fit_lanes_to_budgets();
  // The retry window keeps running while a circuit is open: a waiting delivery of such a lane
  // whose window has ended goes dead without an attempt.
  void expire_ended_windows();
  void lower_cursor(const std::string& key);

  boost::asio::io_context& io_;
  SchedulerOptions options_;
  const Clock& clock_;
  Logger& logger_;
  Store& store_;
  CommitPipeline& pipeline_;
  SubscriptionRegistry& subscriptions_;
  Egress& egress_;
  RelayMetrics& metrics_;
  boost::asio::thread_pool& blocking_pool_;

  std::unordered_map<std::string, Item> items_;                  // every delivery in memory
  std::set<std::pair<UnixMillis, std::string>> waiting_;         // not yet due: (due, id)
  std::unordered_map<std::string, std::unique_ptr<Lane>> lanes_; // by subscription id
  std::list<std::string> turn_order_;                            // subscriptions, round robin
  std::deque<std::string> lanes_to_reload_;                      // parked lanes with room again
  std::string cursor_;                                           // schedule keys below are in memory
  bool loading_ = false;
  bool load_awaits_room_ = false;  // the last global load was put off until memory has room
  // While a load runs, what changed in the range it reads: schedule keys that went away, and
  // items that were left on disk because they were not below the old cursor.
  std::unordered_set<std::string> removed_while_loading_;
  std::vector<std::pair<std::string, Item>> arrived_while_loading_;
  std::optional<std::string> lowered_while_loading_;
  // Requests awaiting the subscriber's answer: what --max-in-flight (and a lane's max_in_flight)
  // bound. An answered attempt frees its slot at once, not after its record's fsync, so that a
  // subscriber's throughput is not capped at max_in_flight per commit latency.
  std::uint32_t in_flight_ = 0;
  std::uint32_t recording_ = 0;  // answered attempts whose record is not written yet
  bool pump_requested_ = false;
  bool started_ = false;
  bool draining_ = false;
  std::function<void()> drained_;
  std::uint64_t scheduled_total_ = 0;  // keys in `schedule`
  std::unordered_map<std::string, std::uint64_t> scheduled_by_subscription_;  // the same, by subscription
  queries::DueSchedule due_;   // the last count of due keys on disk
  bool counting_due_ = false;
  UnixMillis due_counted_at_ = 0;
  std::uint64_t dead_total_ = 0;       // keys in `dead_letters`
  boost::asio::steady_timer wake_timer_;
  UnixMillis wake_at_ = 0;
  boost::asio::steady_timer tick_timer_;
  boost::asio::steady_timer drain_timer_;
  std::mt19937_64 random_;
  std::shared_ptr<PayloadCache> payload_cache_;  // used on the blocking pool
  std::shared_ptr<bool> alive_;  // lets completions from other threads see that we are gone
};

}  // namespace relay
