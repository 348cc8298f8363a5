#pragma once
// A delivery is one event bound for one subscription; an attempt is one HTTP POST of it.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "relay/core/clock.h"

namespace relay {

// superseded (since 1.1): final, never attempted; a newer delivery of its ordering key replaced
// it (coalescing). New states go last: stored records hold the enumerator's number.
enum class DeliveryState { pending, in_flight, succeeded, dead, superseded };

// Whether a delivery in `state` is finished for good (nothing more is attempted unless an
// operator retries it).
inline bool is_final(DeliveryState state) {
  return state == DeliveryState::succeeded || state == DeliveryState::dead || state == DeliveryState::superseded;
}

const char* delivery_state_name(DeliveryState state);
std::optional<DeliveryState> parse_delivery_state(std::string_view name);

struct Delivery {
  std::string id;               // "dlv_..."
  std::string event_id;
  std::string subscription_id;
  std::string event_type;       // copied from the event so listings can filter without a join
  std::string tenant;           // copied from the event, likewise; empty: none
  std::string ordering_key;     // copied from the event; empty: none
  DeliveryState state = DeliveryState::pending;
  UnixMillis created_at = 0;    // when the event was ingested (or redelivered)
  UnixMillis next_attempt_at = 0;
  UnixMillis window_start = 0;  // first attempt of the current retry window; 0 before it
  // The subscription's paused_ms() when the window started (or the delivery was created): the
  // time it has been disabled since then extends the window.
  std::int64_t window_pause_mark = 0;
  std::uint32_t attempts = 0;   // attempts made so far
  UnixMillis completed_at = 0;  // when it reached succeeded or dead
  std::string last_error;       // outcome class of the last failed attempt
  // Its place in the ordering queue of (subscription, ordering key) while it is unfinished
  // there (storage/ordering_queue.h); 0: in none.
  std::uint64_t queue_seq = 0;
  // Pending behind the head of its ordering queue: not scheduled, not attempted until promoted
  // (next_attempt_at is 0 meanwhile).
  bool waiting = false;
};

// Why an attempt ended; the names are the `outcome` label of relay_delivery_attempts_total.
enum class AttemptOutcome {
  success,
  http_4xx,
  http_5xx,
  timeout,
  connect_error,
  dns_error,
  tls_error,
  blocked_destination,
  other,
};

const char* attempt_outcome_name(AttemptOutcome outcome);

struct Attempt {
  std::uint32_t number = 0;  // 1-based
  UnixMillis started_at = 0;
  std::int64_t duration_ms = 0;
  int http_status = 0;        // 0 when no response was received
  AttemptOutcome outcome = AttemptOutcome::other;
  std::string error;          // human-readable detail for failures without a status
  std::string response_body;  // at most 2 KiB
};

}  // namespace relay
