#pragma once
// Stored records: the values of storage/keys.h's families.
//
// Events, deliveries, attempts and event-type counts are written and read on every ingest and
// attempt, so they have a compact binary layout made for speed: a first byte naming the kind of
// record and its version, then each field in a fixed order, integers as varints (signed ones
// zigzag-encoded) and strings as a varint length and the bytes. Subscriptions, rarely written,
// are their JSON record (to_record below) encoded as MessagePack.
//
// Decoding takes any bytes: what is not one whole, valid record of the expected kind is nullopt
// (never written by relay; logged by the caller). A length is checked against the bytes left
// before anything is allocated.

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "relay/model/delivery.h"
#include "relay/model/event.h"
#include "relay/model/event_type_stats.h"
#include "relay/model/subscription.h"

namespace relay::records {

// An event without a payload is stored with the payload "null", its JSON meaning.
std::string encode_record(const Event& event);
std::string encode_record(const Delivery& delivery);
std::string encode_record(const Attempt& attempt);
std::string encode_record(const Subscription& subscription);
// The value of an event_types key: count and last_seen. The type is the key and is not stored.
std::string encode_record(const EventTypeStats& stats);

std::optional<Event> decode_event(std::string_view bytes);
std::optional<Delivery> decode_delivery(std::string_view bytes);
std::optional<Attempt> decode_attempt(std::string_view bytes);
std::optional<Subscription> decode_subscription(std::string_view bytes);
// `type` is the record's key.
std::optional<EventTypeStats> decode_event_type_stats(std::string_view type, std::string_view bytes);

// The stored form of a subscription before MessagePack: every field, integer times. Fields
// added later are optional when read, so records written before them still decode.
nlohmann::json to_record(const Subscription& subscription);
// Throws nlohmann::json::exception for a missing or mistyped field (decode_subscription
// answers nullopt).
Subscription subscription_from_record(const nlohmann::json& record);

}  // namespace relay::records
