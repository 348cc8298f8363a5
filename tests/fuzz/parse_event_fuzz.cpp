// Fuzz target: an arbitrary POST /v1/events body through parse_json_object and parse_new_event
// (the tree reference), through parse_event_body (the ingest hot path, no tree), and, as the
// one element of a batch, through parse_event_batch_body. An input that starts with
// "Idempotency-Key: ...\n" sends that header too.
// Properties: no crash; an accepted event has a valid type, a compact JSON payload and a
// client id of 1-256 characters (or none), and survives the stored-record round trip;
// parse_event_body accepts the same events as the tree (same type, client id, and a payload of
// equal value) and refuses the others with the same error (the same message, but for which
// unknown member it names first: the tree sorts them), except a body after a byte order mark,
// which it refuses; a body that is valid JSON is, as a batch element, the same event with the
// same payload bytes, or refused with the same error.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "relay/api/event_parsing.h"
#include "relay/api/request_parsing.h"
#include "relay/model/event_type.h"
#include "storage/records.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using nlohmann::json;
using relay::fuzz::check;

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// JSON text without whitespace outside its strings.
bool is_compact(std::string_view text) {
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (in_string) {
      if (text[i] == '\\') {
        ++i;
      } else if (text[i] == '"') {
        in_string = false;
      }
    } else if (text[i] == '"') {
      in_string = true;
    } else if (is_space(text[i])) {
      return false;
    }
  }
  return true;
}

void check_accepted(const relay::mutations::NewEvent& event, std::string_view idempotency_key) {
  check(relay::is_valid_event_type(event.type), "the type is valid");
  check(!relay::is_reserved_event_type(event.type), "no producer's event has a relay. type");
  check(event.payload != nullptr, "the payload is set");
  const auto payload = json::parse(*event.payload, nullptr, /*allow_exceptions=*/false);
  check(!payload.is_discarded(), "the payload is JSON");
  check(is_compact(*event.payload), "the payload is compact");
  check(event.client_id.size() <= 256, "the client id has at most 256 characters");
  if (!idempotency_key.empty()) check(event.client_id == idempotency_key, "the header is the client id");

  relay::Event stored;
  stored.id = "evt_00000000000000000000000000000000";
  stored.client_id = event.client_id;
  stored.type = event.type;
  stored.payload = event.payload;
  const auto decoded = relay::records::decode_event(relay::records::encode_record(stored));
  check(decoded.has_value(), "the stored event decodes");
  check(*decoded->payload == *event.payload, "the stored payload is byte for byte the same");
}

using EventResult = relay::Result<relay::mutations::NewEvent>;

EventResult check_event(const json& body, std::string_view idempotency_key) {
  auto event = relay::parse_new_event(body, idempotency_key);
  if (!event.ok()) {
    check(!event.error().message.empty(), "an error has a message");
    return event;
  }
  check(json::parse(*event->payload).dump() == *event->payload, "the payload is dumped by nlohmann");
  check_accepted(*event, idempotency_key);
  return event;
}

bool names_unknown_member(const relay::Error& error) { return error.message.ends_with("is not a known event field"); }

// parse_event_body against what the tree parser made of the same request.
void check_same_event(const relay::HttpRequest& request, std::string_view idempotency_key, const EventResult& tree) {
  const EventResult event = relay::parse_event_body(request, idempotency_key);
  check(event.ok() == tree.ok(), "parse_event_body accepts what the tree parser accepts");
  if (!event.ok()) {
    check(event.error().code == tree.error().code, "parse_event_body refuses with the same code");
    check(event.error().message == tree.error().message ||
              (names_unknown_member(event.error()) && names_unknown_member(tree.error())),
          "parse_event_body refuses with the same message");
    return;
  }
  check_accepted(*event, idempotency_key);
  check(event->type == tree->type, "parse_event_body reads the same type");
  check(event->client_id == tree->client_id, "parse_event_body reads the same client id");
  check(json::parse(*event->payload) == json::parse(*tree->payload), "parse_event_body keeps a payload of equal value");
}

// The deepest nesting of arrays and objects in valid JSON text.
int nesting_depth(std::string_view text) {
  int depth = 0, deepest = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

// `body` as the one element of a batch, against parse_event_body's answer for it.
void check_same_in_batch(std::string_view body) {
  const std::string_view kByteOrderMark = "\xEF\xBB\xBF";
  relay::HttpRequest single_request{boost::beast::http::verb::post, "/v1/events", 11};
  single_request.body() = std::string(body);
  const EventResult single = relay::parse_event_body(single_request, "");
  const bool not_object = !single.ok() && single.error().message == "the request body must be a JSON object";
  // Only a text that is one JSON value: another could close the array, and the batch, itself.
  if ((!single.ok() && single.error().code == relay::Errc::invalid_json && !not_object) ||
      body.starts_with(kByteOrderMark)) {
    return;
  }
  relay::HttpRequest batch_request{boost::beast::http::verb::post, "/v1/events/batch", 11};
  batch_request.body() = R"({"events":[)" + std::string(body) + "]}";
  const auto batch = relay::parse_event_batch_body(batch_request);
  // The batch object and its array hold the element two levels deeper.
  if (nesting_depth(body) > 256 - 2) {
    check(!batch.ok() && batch.error().message == "the request body nests deeper than 256 levels",
          "a batch element nested too deep refuses the batch");
    return;
  }
  check(batch.ok() && batch->size() == 1, "a JSON value is a batch of one element");
  const EventResult& item = batch->front();
  if (single.ok()) {
    check(item.ok(), "the batch accepts what the single route accepts");
    check(*item->payload == *single->payload, "the batch stores the single route's payload bytes");
    check(item->type == single->type, "the batch reads the same type");
    check(item->client_id == single->client_id, "the batch reads the same client id");
    check_accepted(*item, "");
  } else if (not_object) {
    check(!item.ok() && item.error().message == "an event must be a JSON object", "a batch element is an object");
  } else {
    check(!item.ok() && item.error().code == single.error().code && item.error().message == single.error().message,
          "the batch refuses an element with the single route's error");
  }
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
    check_same_event(request, idempotency_key, body.error());
    check_same_in_batch(input);
    return 0;
  }
  check(body->is_object(), "an accepted body is an object");
  const EventResult event = check_event(*body, idempotency_key);
  if (input.starts_with("\xEF\xBB\xBF")) {
    const EventResult fast = relay::parse_event_body(request, idempotency_key);
    check(!fast.ok() && fast.error().message == "the request body must be a JSON object",
          "parse_event_body refuses a byte order mark");
  } else {
    check_same_event(request, idempotency_key, event);
  }
  check_same_in_batch(input);
  // The input as a batch body of its own: each accepted element within the bounds.
  if (const auto batch = relay::parse_event_batch_body(request); batch.ok()) {
    check(!batch->empty() && batch->size() <= 1000, "a batch holds 1 to 1000 events");
    for (const EventResult& item : *batch) {
      if (item.ok()) check_accepted(*item, "");
    }
  }
  return 0;
}
