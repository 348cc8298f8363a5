#pragma once
// What the end of an attempt, or of a retry window without one, writes beyond the delivery
// itself, composed into the one batch of the delivery's record (spec section 6):
// - mutations::record_attempt or mutations::expire_delivery (the delivery, its keys, its
//   ordering queue);
// - for an attempt, the subscription's failure streak (failure_streaks.h) and, once its
//   attempts have all failed for its disable_after, its automatic disabling
//   (mutations::auto_disable_subscription) with a relay.subscription.disabled event;
// - for a delivery that went dead, a relay.delivery.dead event (operational_events.h).
// The scheduler's commands are these two calls: all of it commits, or none of it.
//
// An expiry is not an attempt: it neither starts nor ends a streak. A probe of an open circuit
// is an attempt like any other, so a subscriber that stays down is disabled at its first failed
// probe once disable_after has passed.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "relay/core/result.h"
#include "relay/model/delivery.h"
#include "relay/model/subscription.h"
#include "storage/commit_pipeline.h"
#include "storage/failure_streaks.h"
#include "storage/mutations.h"
#include "storage/operational_events.h"
#include "storage/ordering_queue.h"

namespace relay::outcomes {

struct Context {
  operational_events::Publisher publisher;
  FailureStreaks& streaks;
  std::int64_t default_disable_after_ms = 0;  // --disable-after; 0: never
};

// What the batch wrote, for the scheduler once it is durable.
struct Recorded {
  Delivery updated;
  ordering_queue::Advance advance;
  std::vector<operational_events::Published> published;
  std::optional<Subscription> disabled;  // disabled automatically in this batch, as stored
};

// mutations::record_attempt (`queue_sub` as there), then the streak and the events. `current` is
// the subscription as the caller last saw it (nullptr: deleted, then no streak is kept): its
// disable_after says whether the stored record is read to disable it.
Status record_attempt(WriteTxn& txn, const Context& ctx, const Delivery& attempted, Attempt attempt,
                      const mutations::Resolution& resolution, const Subscription* queue_sub,
                      const Subscription* current, Recorded& out);

// mutations::expire_delivery, then its relay.delivery.dead event.
Status expire_delivery(WriteTxn& txn, const Context& ctx, const Delivery& waiting, std::string reason,
                       UnixMillis now, const Subscription* queue_sub, Recorded& out);

}  // namespace relay::outcomes
