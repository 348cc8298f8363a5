#include "storage/operational_events.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "relay/core/duration.h"
#include "relay/core/time.h"
#include "relay/model/event_type.h"
#include "storage/mutations.h"

namespace relay::operational_events {

namespace {

// Members in the order they are written: the order docs/api.md shows.
using ordered_json = nlohmann::ordered_json;

ordered_json text_or_null(const std::string& text) { return text.empty() ? ordered_json(nullptr) : ordered_json(text); }

// Stores the event and its deliveries when it reaches any subscription but `skip`.
void publish(WriteTxn& txn, const Publisher& publisher, std::string_view type, const std::string& tenant,
             std::string payload, UnixMillis now, const std::string& skip, std::vector<Published>& out) {
  mutations::NewEvent input{"", std::string(type), std::make_shared<const std::string>(std::move(payload)), tenant};
  Event routed;
  routed.type = input.type;
  routed.tenant = tenant;
  routed.payload = input.payload;
  auto targets = publisher.route(routed);
  if (!skip.empty()) std::erase_if(targets, [&skip](const auto& sub) { return sub->id == skip; });
  if (targets.empty()) return;
  mutations::IngestedEvent ingested;
  // Without a client id an ingest reads nothing and cannot fail.
  if (!mutations::ingest(txn, input, targets, publisher.ids, now, ingested)) return;
  out.push_back(Published{std::move(ingested.event), std::move(ingested.deliveries)});
}

}  // namespace

std::string delivery_dead_payload(const Delivery& dead) {
  const ordered_json payload = {{"delivery_id", dead.id},
                                {"event_id", dead.event_id},
                                {"event_type", dead.event_type},
                                {"subscription_id", dead.subscription_id},
                                {"tenant", text_or_null(dead.tenant)},
                                {"attempts", dead.attempts},
                                {"last_error", text_or_null(dead.last_error)},
                                {"dead_at", format_time(dead.completed_at)}};
  return payload.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}

std::string subscription_disabled_payload(const Subscription& disabled, UnixMillis failing_since,
                                          std::int64_t disable_after_ms) {
  const ordered_json payload = {{"subscription_id", disabled.id},
                                {"tenant", text_or_null(disabled.tenant)},
                                {"reason", disabled_reason_name(DisabledReason::failing)},
                                {"failing_since", format_time(failing_since)},
                                {"disabled_at", format_time(disabled.disabled_at)},
                                {"disable_after", format_duration(disable_after_ms)}};
  return payload.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}

void delivery_dead(WriteTxn& txn, const Publisher& publisher, const Delivery& dead, UnixMillis now,
                   const std::string& skip, std::vector<Published>& out) {
  if (is_reserved_event_type(dead.event_type)) return;  // no loops
  publish(txn, publisher, kDeliveryDead, dead.tenant, delivery_dead_payload(dead), now, skip, out);
}

void subscription_disabled(WriteTxn& txn, const Publisher& publisher, const Subscription& disabled,
                           UnixMillis failing_since, std::int64_t disable_after_ms, UnixMillis now,
                           std::vector<Published>& out) {
  publish(txn, publisher, kSubscriptionDisabled, disabled.tenant,
          subscription_disabled_payload(disabled, failing_since, disable_after_ms), now, disabled.id, out);
}

}  // namespace relay::operational_events
