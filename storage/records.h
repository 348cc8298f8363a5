#pragma once
// Stored records: the JSON mapping of relay/model/json_mapping.h encoded as MessagePack,
// which is smaller and faster to parse than JSON text.

#include <optional>
#include <string>

#include "relay/model/json_mapping.h"

namespace relay::records {

std::string encode(const nlohmann::json& record);
// nullopt for bytes that are not a record (never written by relay; logged by the caller).
std::optional<nlohmann::json> decode(std::string_view bytes);

template <typename T>
std::string encode_record(const T& value) {
  return encode(to_record(value));
}

std::optional<Event> decode_event(std::string_view bytes);
std::optional<Delivery> decode_delivery(std::string_view bytes);
std::optional<Subscription> decode_subscription(std::string_view bytes);
std::optional<Attempt> decode_attempt(std::string_view bytes);
std::optional<EventTypeStats> decode_event_type_stats(std::string_view bytes);

}  // namespace relay::records
