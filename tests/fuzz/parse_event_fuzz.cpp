// Fuzz target: an arbitrary POST /v1/events (or batch) body through parse_json_object and
// parse_new_event. An input that starts with "Idempotency-Key: ...\n" sends that header too.
// Properties: no crash; an accepted event has a valid type, a compact JSON payload and a
// client id of 1-256 characters (or none), and survives the stored-record round trip.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "relay/api/request_parsing.h"
#include "relay/model/event_type.h"
#include "storage/records.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using relay::fuzz::check;

void check_event(const nlohmann::json& body, std::string_view idempotency_key) {
  auto event = relay::parse_new_event(body, idempotency_key);
  if (!event.ok()) {
    check(!event.error().message.empty(), "an error has a message");
    return;
  }
  check(relay::is_valid_event_type(event->type), "the type is valid");
  check(event->payload != nullptr, "the payload is set");
  const auto payload = nlohmann::json::parse(*event->payload, nullptr, /*allow_exceptions=*/false);
  check(!payload.is_discarded(), "the payload is JSON");
  check(payload.dump() == *event->payload, "the payload is compact");
  check(event->client_id.size() <= 256, "the client id has at most 256 characters");
  if (!idempotency_key.empty()) check(event->client_id == idempotency_key, "the header is the client id");

  relay::Event stored;
  stored.id = "evt_00000000000000000000000000000000";
  stored.client_id = event->client_id;
  stored.type = event->type;
  stored.payload = event->payload;
  const auto decoded = relay::records::decode_event(relay::records::encode_record(stored));
  check(decoded.has_value(), "the stored event decodes");
  check(*decoded->payload == *event->payload, "the stored payload is byte for byte the same");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string_view idempotency_key;
  constexpr std::string_view kHeader = "Idempotency-Key: ";
  if (input.starts_with(kHeader)) {
    const auto eol = input.find('\n');
    if (eol == std::string_view::npos) return 0;
    idempotency_key = input.substr(kHeader.size(), eol - kHeader.size());
    input.remove_prefix(eol + 1);
  }

  relay::HttpRequest request{boost::beast::http::verb::post, "/v1/events", 11};
  request.set(boost::beast::http::field::content_type, "application/json");
  request.body() = std::string(input);
  auto body = relay::parse_json_object(request);
  if (!body.ok()) {
    check(body.error().code == relay::Errc::invalid_json, "a bad body is invalid_json");
    return 0;
  }
  check(body->is_object(), "an accepted body is an object");
  check_event(*body, idempotency_key);
  // The batch endpoint parses each element of "events" the same way, without the header.
  if (auto events = body->find("events"); events != body->end() && events->is_array()) {
    for (const auto& element : *events) check_event(element, "");
  }
  return 0;
}
