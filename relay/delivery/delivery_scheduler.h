#pragma once
// DeliveryScheduler: decides which delivery is attempted when, runs the attempts through an
// Egress, and records each outcome through the CommitPipeline. Lives on the event loop
// (single-threaded ownership, no locks).
//
// Memory stays bounded however many retries are scheduled: the `schedule` column family is
// the queue, and only a window of it is in memory (schedule_window.h states the invariant and
// holds the cursor). New deliveries below the cursor go straight to memory, so a fresh event is
// attempted at once, without a polling delay.
//
// Isolation at any backlog size. A lane (lane.h) keeps in memory only what it can dispatch soon,
// its *budget*. A lane that finds itself above its budget (its circuit opened, its subscriber
// stalled, it was disabled) is cut back on the next tick: its latest-due deliveries not in flight
// leave memory and it parks at the first of them (their schedule keys stay on disk); once it has
// drained to half its budget a lane reload reads them back. Loads compute each subscription's
// room from its budget, after a restart too (from its stored settings), so the deliveries of
// lanes that cannot dispatch never fill memory and never keep the loader from the deliveries of
// lanes that can: a healthy subscription's next delivery waits at most for one load.
//
// Dispatch takes turns between subscriptions (one attempt per lane per pass), bounded by the
// global --max-in-flight and each lane's max_in_flight, token bucket and circuit breaker.
// Disabled subscriptions and open circuits hold their deliveries without using up attempts.
// Requests and records are built by attempt_builder.h; the depth gauges are DeliveryGauges'.
// An outcome's record is one batch with what it sets off (storage/delivery_outcomes.h): the
// subscription's failure streak, its automatic disabling, and operational events, whose
// deliveries the scheduler takes in like an ingest's once the batch is durable.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "relay/core/clock.h"
#include "relay/core/periodic_task.h"
#include "relay/core/logger.h"
#include "relay/delivery/delivery_gauges.h"
#include "relay/delivery/egress.h"
#include "relay/delivery/lane.h"
#include "relay/delivery/payload_cache.h"
#include "relay/delivery/retry_policy.h"
#include "relay/delivery/schedule_window.h"
#include "relay/model/delivery.h"
#include "relay/subscriptions/subscription_registry.h"
#include "storage/commit_pipeline.h"
#include "storage/delivery_outcomes.h"
#include "storage/failure_streaks.h"
#include "storage/keys.h"
#include "storage/ordering_queue.h"
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
  // What a lane that cannot dispatch keeps in memory beyond its running attempts (see lane.h).
  std::size_t blocked_lane_memory_limit = 32;
  // A lane whose max_in_flight is full counts as stalled after this long without an answer.
  std::int64_t stall_ms = 1'000;
  // --disable-after: a subscription whose attempts have all failed this long is disabled; 0: never.
  std::int64_t disable_after_ms = 5 * 86'400'000LL;
};

class DeliveryScheduler {
 public:
  // `ids` mints operational events; `streaks` is the writer thread's, shared with the API.
  DeliveryScheduler(boost::asio::io_context& io, SchedulerOptions options, const Clock& clock, Logger& logger,
                    Store& store, CommitPipeline& pipeline, SubscriptionRegistry& subscriptions,
                    Egress& egress, RelayMetrics& metrics, boost::asio::thread_pool& blocking_pool,
                    keys::IdGenerator& ids, FailureStreaks& streaks);
  ~DeliveryScheduler();

  // Counts what is on disk and starts loading due deliveries. `ready` runs on the event loop
  // once the counts are known.
  void start(std::function<void()> ready);

  // Where deliveries handed to enqueue() come from, for the depth gauges.
  enum class Origin { created, rescheduled_pending, redriven_dead };
  // Deliveries that are durable and pending (new, retried or redriven). `payload` may be null:
  // it is then read from the event on the blocking pool. Waiting ones (behind the head of their
  // ordering queue) are skipped: they are scheduled when their queue advances to them.
  void enqueue(std::vector<Delivery> deliveries, std::shared_ptr<const std::string> payload,
               Origin origin = Origin::created);
  // A subscription was created, changed or deleted: its series exist from now on (while it is in
  // the registry), and its lane's budget changed, so that lane is fitted to it again.
  void subscription_changed(const std::string& subscription_id);
  // Called on the event loop after the scheduler disabled a subscription (disable_after), once
  // that is durable here: cluster mode writes the change to etcd, so every shard stops.
  void on_auto_disabled(std::function<void(const Subscription&)> hook) { on_auto_disabled_ = std::move(hook); }
  // Cluster mode: the live shards, which share each subscription's max_in_flight and
  // rate_limit_per_second (lane.h, shard_share). A single node never calls it (1).
  void set_shards(std::size_t live_shards);
  // Dead deliveries were removed (discarded or expired).
  void dead_removed(std::size_t count);

  bool is_in_flight(const std::string& delivery_id) const;
  // Deliveries held in memory (waiting, ready or in flight); at most memory_limit plus those
  // handed in directly by enqueue() while memory had room.
  std::size_t held_in_memory() const { return items_.size(); }
  // Unfinished deliveries (pending, scheduled, in flight, held, waiting in an ordering queue), for
  // --max-pending-deliveries.
  std::uint64_t pending_deliveries() const { return counts_.unfinished(); }

  // For DeliveryGauges: started and not draining; the counts of keys on disk; attempts from their
  // dispatch until their record is written; a subscription's circuit (closed without a lane).
  bool dispatching() const { return started_ && !draining_; }
  const ScheduleCounts& counts() const { return counts_; }
  std::uint64_t attempts_unrecorded() const { return std::uint64_t{in_flight_} + recording_; }
  CircuitState circuit_state(const std::string& subscription_id) const;
  // Every lane's circuit; a subscription without a lane has never been attempted: closed.
  void for_each_circuit(const std::function<void(const std::string& subscription_id, CircuitState)>& visit) const;

  // Stops starting attempts; `done` runs when every running attempt is recorded, or after
  // `grace`, when the rest are cancelled (they stay pending on disk and resume on restart).
  void drain(std::chrono::milliseconds grace, std::function<void()> done);

 private:
  boost::asio::awaitable<void> count_schedule(std::function<void()> ready);
  boost::asio::awaitable<void> insert_with_payloads(std::vector<Delivery> deliveries);
  void insert(Delivery delivery, std::shared_ptr<const std::string> payload);
  void place(WindowItem& item);
  // Appends a due delivery to its lane and gives the lane a turn.
  void make_ready(const Delivery& delivery);
  void request_pump();
  void pump();
  bool try_dispatch(Lane& lane, const Subscription& sub, UnixMillis now, UnixMillis& wake_at);
  void attempt(WindowItem& item, const Subscription& sub);
  void on_attempt_done(const std::string& delivery_id, const std::string& subscription_id, UnixMillis started_at,
                       const EgressResponse& response);
  // What an attempt record or an expiry wrote: the delivery, what its ordering queue did, the
  // operational events it published and the subscription it disabled.
  using Recorded = outcomes::Recorded;
  // Submits an attempt record or an expiry; on_recorded follows on the event loop.
  void record(const Delivery& delivery, CommitPipeline::Command command, std::shared_ptr<Recorded> recorded);
  void on_recorded(const std::string& delivery_id, const std::string& subscription_id, UnixMillis old_due,
                   const Status& status, const Delivery& updated);
  // Takes in the deliveries of the operational events a record published, and reports a
  // subscription it disabled.
  void published(Recorded& recorded);
  // Hands what an ordering queue's step scheduled to memory, counts what it superseded, and runs
  // the next step of an unfinished one.
  void advanced(ordering_queue::Advance advance);
  void advance_queue(ordering_queue::QueueRef queue);
  void record_circuit(Lane& lane, const std::string& subscription_id, bool success, UnixMillis now);
  void discard_orphans(Lane& lane, const std::string& subscription_id);
  void maybe_load();
  boost::asio::awaitable<void> load(LoadRequest request, std::optional<std::string> reloaded_lane);
  void on_loaded(LoadResult result);
  void arm_timer(UnixMillis wake_at);
  // Every second from the start until the drain: ends lanes' memory windows, fits lanes to
  // their budgets, pumps.
  void tick();
  void finish_drain_if_idle();
  Lane& lane(const std::string& subscription_id);
  void forget(const std::string& delivery_id);
  // Admits a delivery to memory if its subscription has room, else parks it on disk.
  bool admit(const Delivery& delivery, const keys::ScheduleKey& key);
  // Leaves a lane's deliveries from `key` on on disk; they come back by a reload of the lane.
  void park(Lane& lane, const std::string& subscription_id, const keys::ScheduleKey& key, std::size_t budget);
  void maybe_queue_reload(Lane& lane, const std::string& subscription_id, std::size_t budget);
  std::size_t lane_budget(const Lane& lane, const std::string& subscription_id, UnixMillis now) const;
  // Cuts every lane above its budget back to it (evicting its latest-due deliveries to disk) and
  // queues reloads for parked lanes whose budget has room again; `only`: just that lane.
  void fit_lanes_to_budgets(const std::string* only = nullptr);
  // The retry window keeps running while a circuit is open: a waiting delivery of such a lane
  // whose window has ended goes dead without an attempt.
  void expire_ended_windows();

  boost::asio::io_context& io_;
  SchedulerOptions options_;
  LaneLimits lane_limits_;
  std::function<void(const Subscription&)> on_auto_disabled_;
  CircuitOptions circuit_options_;
  const Clock& clock_;
  Logger& logger_;
  Store& store_;
  CommitPipeline& pipeline_;
  SubscriptionRegistry& subscriptions_;
  Egress& egress_;
  RelayMetrics& metrics_;
  boost::asio::thread_pool& blocking_pool_;
  // For the commands of attempt records and expiries, on the writer thread.
  outcomes::Context outcome_context_;

  std::unordered_map<std::string, WindowItem> items_;            // every delivery in memory
  std::set<std::pair<UnixMillis, std::string>> waiting_;         // not yet due: (due, id)
  std::unordered_map<std::string, std::unique_ptr<Lane>> lanes_; // by subscription id
  std::list<std::string> turn_order_;                            // subscriptions, round robin
  std::deque<std::string> lanes_to_reload_;                      // parked lanes with room again
  ScheduleWindow window_;
  bool load_awaits_room_ = false;  // the last global load was put off until memory has room
  // Requests awaiting the subscriber's answer: what --max-in-flight (and a lane's max_in_flight)
  // bound. An answered attempt frees its slot at once, not after its record's fsync, so that a
  // subscriber's throughput is not capped at max_in_flight per commit latency.
  std::uint32_t in_flight_ = 0;
  std::uint32_t recording_ = 0;  // answered attempts whose record is not written yet
  bool pump_requested_ = false;
  bool started_ = false;
  bool draining_ = false;
  std::function<void()> drained_;
  ScheduleCounts counts_;
  boost::asio::steady_timer wake_timer_;
  UnixMillis wake_at_ = 0;
  PeriodicTask tick_task_;
  boost::asio::steady_timer drain_timer_;
  std::mt19937_64 random_;
  std::shared_ptr<PayloadCache> payload_cache_;  // used on the blocking pool
  // Completions from other threads (egress answers, commits) and resumed coroutines check it:
  // the scheduler may be gone while the loop still runs.
  std::shared_ptr<bool> alive_;
};

}  // namespace relay
