#pragma once
// Operational events (spec section 6): relay publishes events of its own, of types under the
// reserved prefix "relay.", in the same batch as the state change they report:
// relay.delivery.dead when a delivery goes dead, relay.subscription.disabled when a subscription
// is disabled automatically. From then on they are ordinary events: stored, matched by the
// registry (where "*" does not match them), delivered, retried and dead-lettered like published
// ones. Each carries the tenant of what it reports (the dead delivery's event, the disabled
// subscription), so a tenant's own subscription to "relay.*" sees only its tenant's.
//
// Decided here, where the contract is silent:
// - An operational event that matches no subscription is not stored: nobody asked for it, and
//   for a subscriber that stays down it would add an event to the batch of every death.
// - A delivery of an operational event that goes dead publishes nothing (no loops), and a
//   disabled subscription is not sent the event of its own disabling.
// - The payload is a JSON object with its members in a fixed order (docs/api.md).

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "relay/core/clock.h"
#include "relay/model/delivery.h"
#include "relay/model/event.h"
#include "relay/model/subscription.h"
#include "storage/commit_pipeline.h"
#include "storage/keys.h"

namespace relay::operational_events {

inline constexpr std::string_view kDeliveryDead = "relay.delivery.dead";
inline constexpr std::string_view kSubscriptionDisabled = "relay.subscription.disabled";

// The enabled subscriptions an event goes to: the registry's matching (relay/subscriptions),
// which storage does not see. Called on the writer thread, as for an ingest.
using Router = std::function<std::vector<std::shared_ptr<const Subscription>>(const Event& event)>;

struct Publisher {
  keys::IdGenerator& ids;
  Router route;
};

// An operational event staged with its deliveries, for the scheduler once the batch is durable.
struct Published {
  Event event;
  std::vector<Delivery> deliveries;
};

// {"delivery_id", "event_id", "event_type", "subscription_id", "tenant", "attempts",
//  "last_error", "dead_at"}
std::string delivery_dead_payload(const Delivery& dead);
// {"subscription_id", "tenant", "reason": "failing", "failing_since", "disabled_at",
//  "disable_after"}
std::string subscription_disabled_payload(const Subscription& disabled, UnixMillis failing_since,
                                          std::int64_t disable_after_ms);

// `dead` went dead in this batch: stages relay.delivery.dead, created `now`, and its deliveries,
// except to `skip` (a subscription disabled in this batch; empty: none). Nothing for a delivery
// of an operational event.
void delivery_dead(WriteTxn& txn, const Publisher& publisher, const Delivery& dead, UnixMillis now,
                   const std::string& skip, std::vector<Published>& out);
// `disabled` was disabled automatically in this batch: stages relay.subscription.disabled and its
// deliveries (never to `disabled` itself).
void subscription_disabled(WriteTxn& txn, const Publisher& publisher, const Subscription& disabled,
                           UnixMillis failing_since, std::int64_t disable_after_ms, UnixMillis now,
                           std::vector<Published>& out);

}  // namespace relay::operational_events
