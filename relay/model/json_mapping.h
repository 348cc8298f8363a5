#pragma once
// The one place where domain types map to and from JSON. The same objects are the API's
// representations and, encoded as MessagePack by storage/records.h, the stored records.

#include <nlohmann/json.hpp>

#include "relay/model/delivery.h"
#include "relay/model/event.h"
#include "relay/model/event_type_stats.h"
#include "relay/model/subscription.h"

namespace relay {

// Times in the API are RFC 3339 UTC strings with milliseconds; stored records use integers.
std::string format_time(UnixMillis t);

// Stored form: every field, integer times, payload as its JSON text.
nlohmann::json to_record(const Event& event);
Event event_from_record(const nlohmann::json& j);
nlohmann::json to_record(const Subscription& sub);
Subscription subscription_from_record(const nlohmann::json& j);
nlohmann::json to_record(const Delivery& delivery);
Delivery delivery_from_record(const nlohmann::json& j);
nlohmann::json to_record(const Attempt& attempt);
Attempt attempt_from_record(const nlohmann::json& j);
nlohmann::json to_record(const EventTypeStats& stats);
EventTypeStats event_type_stats_from_record(const nlohmann::json& j);

// API form: RFC 3339 times, payload as JSON, secrets only where the contract shows them.
nlohmann::json to_api(const Event& event);
nlohmann::json to_api(const Subscription& sub);
nlohmann::json to_api(const Delivery& delivery);
nlohmann::json to_api(const Attempt& attempt);
nlohmann::json to_api(const EventTypeStats& stats);

}  // namespace relay
