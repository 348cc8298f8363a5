#pragma once
// One subscription's dispatch state in the scheduler: its ready queue, the attempts it has
// running, its token bucket and circuit breaker, and how much of the schedule it may hold in
// memory (its budget). The bucket, the breaker and the budget rule are pure: time comes in as
// `now`, so that they are unit-tested with plain millisecond values, as retry_policy is.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include "relay/core/clock.h"
#include "relay/delivery/signature.h"
#include "relay/model/subscription.h"
#include "storage/keys.h"

namespace relay {

// rate_limit_per_second: starts with one second of burst, refills continuously.
class TokenBucket {
 public:
  // Takes a token if one is there at `now`; otherwise sets `retry_at` to when one will be.
  bool try_take(std::uint32_t rate_per_second, UnixMillis now, UnixMillis& retry_at);

 private:
  double tokens_ = 0;
  UnixMillis refilled_at_ = 0;  // 0: never used
};

enum class CircuitState { closed = 0, half_open = 1, open = 2 };

struct CircuitOptions {
  std::uint32_t failure_threshold = 20;  // consecutive failures that open the circuit
  std::int64_t probe_interval_ms = 30'000;
};

// Opens after `failure_threshold` consecutive failures; while open, one probe may start every
// probe interval (half-open); a success closes it, a failed probe opens it again.
class CircuitBreaker {
 public:
  // Whether an attempt may start at `now` with `running` attempts of the lane running. An open
  // circuit whose probe time has come turns half-open: the attempt allowed is the probe.
  // When the answer is no because of the probe time, `retry_at` is set to it.
  bool allows(std::uint32_t running, UnixMillis now, UnixMillis& retry_at);

  enum class Change { none, closed, opened, reopened };
  // Records an attempt's answer at `now`; says how the state changed.
  Change record(bool success, UnixMillis now, const CircuitOptions& options);

  CircuitState state() const { return state_; }
  std::uint32_t consecutive_failures() const { return consecutive_failures_; }
  UnixMillis probe_at() const { return probe_at_; }

 private:
  CircuitState state_ = CircuitState::closed;
  std::uint32_t consecutive_failures_ = 0;
  UnixMillis probe_at_ = 0;
};

// What bounds a lane's budget: SchedulerOptions' lane_memory_limit, blocked_lane_memory_limit
// and stall_ms.
struct LaneLimits {
  std::size_t full = 4'000;    // a lane that can dispatch
  std::size_t blocked = 32;    // beyond its running attempts, a lane that cannot
  std::int64_t stall_ms = 1'000;
  std::size_t shards = 1;      // cluster mode: the live shards that share each subscription's limits
};

// A per-subscription limit (max_in_flight, rate_limit_per_second) split evenly over the shards
// that deliver to it (spec section 7): each takes ceil(limit / shards). 0 (unlimited) stays 0;
// a single node (1) or no count yet (0) takes the whole limit.
std::uint32_t shard_share(std::uint32_t limit, std::size_t shards);

struct Lane {
  std::deque<std::string> ready;  // due delivery ids, oldest first; may hold forgotten ids
  std::uint32_t in_flight = 0;    // requests awaiting the subscriber's answer
  TokenBucket bucket;
  CircuitBreaker circuit;
  UnixMillis last_progress_at = 0;  // last answer, or the dispatch that found the lane idle
  bool in_turn_order = false;
  std::size_t held = 0;                            // deliveries of this subscription in memory
  std::optional<keys::ScheduleKey> parked_from;    // its smallest schedule key left on disk, if any
  bool reload_queued = false;                      // queued for a lane reload
  std::optional<SubscriptionSigner> signer;        // rebuilt when the subscription's secrets change
};

// How many of its deliveries a lane may hold in memory: what it can dispatch soon. All of
// `limits.full` while it can dispatch; none while its subscription is disabled; `blocked` beyond
// its running attempts while its circuit is not closed or its max_in_flight is full with no answer
// for stall_ms; about two seconds of its rate when rate-limited. `lane` may be null (no state yet,
// as after a restart), `sub` too (deleted: its deliveries are discarded as they come due).
std::size_t lane_budget(const Lane* lane, const Subscription* sub, UnixMillis now, const LaneLimits& limits);

// Whether a parked lane has drained enough (to half its budget) to read its deliveries back.
bool wants_reload(const Lane& lane, std::size_t budget);

}  // namespace relay
