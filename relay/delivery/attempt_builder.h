#pragma once
// Building an attempt and reading its answer, as pure functions: a delivery and its subscription
// become the EgressRequest (headers and signatures); the response and the retry decision become
// the Attempt record and the Resolution that mutations::record_attempt writes. Time, the signer
// and the jitter come in as arguments, so that the scheduler alone owns the clock and the RNG.

#include <cstdint>
#include <memory>
#include <string>

#include "relay/core/clock.h"
#include "relay/delivery/egress.h"
#include "relay/delivery/retry_policy.h"
#include "relay/delivery/signature.h"
#include "relay/model/delivery.h"
#include "relay/model/subscription.h"
#include "storage/mutations.h"

namespace relay {

// The POST of `delivery`'s attempt number attempts + 1, started at `started_at`: the payload, the
// webhook and X-Relay headers, the signature(s) of `signer` (made for `sub`), then the
// subscription's own headers. `default_timeout_ms` applies unless the subscription sets one.
EgressRequest build_request(const Delivery& delivery, const Subscription& sub,
                            std::shared_ptr<const std::string> payload, const SubscriptionSigner& signer,
                            UnixMillis started_at, std::int64_t default_timeout_ms);

// How long the delivery's subscription has been disabled since the delivery's window started:
// that time does not count against the retry window. 0 without a subscription.
std::int64_t paused_since(const Delivery& delivery, const Subscription* sub, UnixMillis now);

struct AttemptResult {
  Attempt attempt;
  mutations::Resolution resolution;
};

// The record of `delivery`'s attempt that started at `started_at` and got `response`, and what
// becomes of the delivery: decided by `defaults` with the subscription's overrides (`sub` may be
// null: deleted meanwhile) and `jitter_unit` in [0, 1).
AttemptResult resolve_attempt(const Delivery& delivery, const Subscription* sub, const RetryPolicy& defaults,
                              UnixMillis started_at, const EgressResponse& response, double jitter_unit);

}  // namespace relay
