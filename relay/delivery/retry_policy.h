#pragma once
// When to try a delivery again, and when to give up (spec section 3, "Backoff"). Pure functions:
// time comes in as UnixMillis and jitter as a number in [0, 1), so that a whole retry hour can be
// replayed in a unit test in microseconds and the scheduler alone owns the clock and the RNG.

#include <cstdint>
#include <optional>
#include <string_view>

#include "relay/core/clock.h"
#include "relay/model/subscription.h"

namespace relay {

struct RetryPolicy {
  std::int64_t initial_ms = 5'000;      // delay before attempt 2
  std::int64_t max_delay_ms = 600'000;  // cap of the doubling delay (before jitter)
  std::int64_t window_ms = 3'600'000;   // no attempt starts later than first attempt + window
};

// The relayd-wide defaults with the subscription's "retry" overrides applied field by field.
RetryPolicy effective_policy(const RetryPolicy& defaults, const RetryOverrides& sub_overrides);

// Delay before attempt k+1 after k = `attempts_made` attempts: min(initial * 2^(k-1), max_delay)
// scaled by a jitter factor in [0.8, 1.2) that `jitter_unit` in [0, 1) maps onto linearly (0.5 is
// no jitter; values outside [0, 1) are clamped). The jitter spreads a burst of failures to one
// subscriber over time instead of retrying them in lockstep; it applies after the cap, so a capped
// delay varies too. 0 for k = 0 (attempt 1 is immediate). Saturates instead of overflowing.
std::int64_t backoff_delay_ms(const RetryPolicy& policy, std::uint32_t attempts_made, double jitter_unit);

// A Retry-After header value as a delay from `now`: delay-seconds ("120") or an HTTP date
// (IMF-fixdate, or the obsolete RFC 850 / asctime forms, parsed by curl_getdate). A date in the
// past is a delay of 0; negative numbers, fractions and anything unparsable are nullopt. Huge
// values saturate, so that they push the delivery past its window rather than being ignored.
std::optional<std::int64_t> parse_retry_after_ms(std::string_view value, UnixMillis now);

// What an attempt told us, as far as retrying is concerned. The outcome class (timeout, DNS,
// TLS...) does not change the decision, so it is not part of it: every failure is retried.
struct AttemptReply {
  int http_status = 0;                        // 0 when no response was received
  std::optional<std::int64_t> retry_after_ms;  // parsed Retry-After, if the response had one
};

struct RetryDecision {
  enum Kind { succeeded, retry, dead } kind = dead;
  UnixMillis next_attempt_at = 0;  // meaningful for retry only
};

// The fate of a delivery after its attempt number `attempts_made` (1-based, so >= 1) finished at
// `attempt_finished_at`; `window_start` is when its first attempt started. Any 2xx succeeds,
// 410 Gone is dead at once, everything else (3xx included: redirects are not followed) is retried
// after backoff_delay_ms, or at least Retry-After for 429/503, unless that start would fall after
// window_start + window, which makes it dead.
RetryDecision decide_after_attempt(const RetryPolicy& policy, UnixMillis window_start, std::uint32_t attempts_made,
                                   UnixMillis attempt_finished_at, const AttemptReply& reply, double jitter_unit);

}  // namespace relay
