#pragma once
// The one place where domain types map to and from JSON: the API's representations, and the
// stored form of subscriptions. (Events, deliveries, attempts and event-type counts are stored in
// storage/records.h's binary layout, without JSON.)

#include <nlohmann/json.hpp>

#include "relay/model/delivery.h"
#include "relay/model/event.h"
#include "relay/model/event_type_stats.h"
#include "relay/model/subscription.h"

namespace relay {

// Times in the API are RFC 3339 UTC strings with milliseconds; stored records use integers.
std::string format_time(UnixMillis t);

// Stored form of a subscription (storage/records.h encodes it as MessagePack): every field,
// integer times.
nlohmann::json to_record(const Subscription& sub);
Subscription subscription_from_record(const nlohmann::json& j);

// API form: RFC 3339 times, secrets only where the contract shows them.
// An event as JSON text: its members, `extra` (more members, such as its deliveries), and the
// payload's stored bytes spliced in verbatim, so that keys keep their order and numbers and
// escapes stay as published (a tree would sort and rewrite them).
std::string to_api_text(const Event& event, nlohmann::json extra);
nlohmann::json to_api(const Subscription& sub);
nlohmann::json to_api(const Delivery& delivery);
nlohmann::json to_api(const Attempt& attempt);
nlohmann::json to_api(const EventTypeStats& stats);

}  // namespace relay
