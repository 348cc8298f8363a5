#include "storage/records.h"

namespace relay::records {

namespace {

template <typename T>
std::optional<T> decode_as(std::string_view bytes, T (*from_record)(const nlohmann::json&)) {
  auto record = decode(bytes);
  if (!record || !record->is_object()) return std::nullopt;
  // relay stores no floating-point fields; one here is corruption, and converting it to an
  // integer field could be out of range.
  for (const auto& [key, value] : record->items()) {
    if (value.is_number_float()) return std::nullopt;
  }
  try {
    return from_record(*record);
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

}  // namespace

std::string encode(const nlohmann::json& record) {
  std::string out;
  nlohmann::json::to_msgpack(record, out);
  return out;
}

std::optional<nlohmann::json> decode(std::string_view bytes) {
  auto record = nlohmann::json::from_msgpack(bytes.begin(), bytes.end(), /*strict=*/true, /*allow_exceptions=*/false);
  if (record.is_discarded()) return std::nullopt;
  return record;
}

std::optional<Event> decode_event(std::string_view bytes) { return decode_as(bytes, &event_from_record); }
std::optional<Delivery> decode_delivery(std::string_view bytes) { return decode_as(bytes, &delivery_from_record); }
std::optional<Subscription> decode_subscription(std::string_view bytes) {
  return decode_as(bytes, &subscription_from_record);
}
std::optional<Attempt> decode_attempt(std::string_view bytes) { return decode_as(bytes, &attempt_from_record); }
std::optional<EventTypeStats> decode_event_type_stats(std::string_view bytes) {
  return decode_as(bytes, &event_type_stats_from_record);
}

}  // namespace relay::records
