#pragma once
// The API's JSON representations of the domain types (spec section 3): RFC 3339 times, durations
// as text, secrets only where the contract shows them. The stored form of a subscription is
// storage/records.h's.

#include <nlohmann/json.hpp>
#include <string>

#include "relay/model/delivery.h"
#include "relay/model/event.h"
#include "relay/model/event_type_stats.h"
#include "relay/model/job.h"
#include "relay/model/subscription.h"

namespace relay {

// An event as JSON text: its members, `extra` (more members, such as its deliveries), and the
// payload's stored bytes spliced in verbatim, so that keys keep their order and numbers and
// escapes stay as published (a tree would sort and rewrite them).
std::string to_api_text(const Event& event, nlohmann::json extra);
nlohmann::json to_api(const Subscription& sub);
nlohmann::json to_api(const Delivery& delivery);
nlohmann::json to_api(const Attempt& attempt);
nlohmann::json to_api(const EventTypeStats& stats);
// A job as GET /v1/jobs/{id} shows it: its cursor is internal and not shown.
nlohmann::json to_api(const Job& job);

}  // namespace relay
