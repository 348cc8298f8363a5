#include "relay/api/event_parsing.h"

#include <memory>
#include <optional>
#include <string>

#include "relay/api/json_scanner.h"
#include "relay/api/request_parsing.h"
#include "relay/model/event_type.h"

namespace relay {

using nlohmann::json;

namespace {

constexpr std::size_t kMaxClientIdLength = 256;
constexpr std::size_t kMaxOrderingKeyLength = 256;
constexpr std::size_t kMaxBatchEvents = 1000;

// Well-formed UTF-8 (Unicode table 3-7: no overlong forms, no surrogates, nothing above
// U+10FFFF), as JSON strings must be.
bool is_utf8(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* const end = p + text.size();
  while (p != end) {
    const unsigned char lead = *p;
    if (lead < 0x80) {
      ++p;
      continue;
    }
    int length = 0;
    unsigned char second_low = 0x80, second_high = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3;
      if (lead == 0xE0) second_low = 0xA0;
      if (lead == 0xED) second_high = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4;
      if (lead == 0xF0) second_low = 0x90;
      if (lead == 0xF4) second_high = 0x8F;
    } else {
      return false;
    }
    if (end - p < length || p[1] < second_low || p[1] > second_high) return false;
    for (int i = 2; i < length; ++i) {
      if (p[i] < 0x80 || p[i] > 0xBF) return false;
    }
    p += length;
  }
  return true;
}

// The members of an event as found in a body, before validation.
struct EventFields {
  std::optional<std::string> type;             // set when the member is a string
  std::shared_ptr<const std::string> payload;  // compact JSON; null when the member is missing
  bool has_id = false;                         // the member is present and not null
  std::optional<std::string> id;               // set when the member is a string
  // Optional strings: absent or null is none; `present` and not a string is an error.
  struct OptionalText {
    bool present = false;
    std::optional<std::string> text;
  };
  OptionalText tenant;
  OptionalText ordering_key;
};

Result<mutations::NewEvent> build_event(EventFields&& fields, std::string_view idempotency_key) {
  mutations::NewEvent event;
  if (!fields.type) return field_error("type", "is required and must be a string");
  event.type = std::move(*fields.type);
  if (!is_valid_event_type(event.type)) return field_error("type", "must be 1-128 characters of [A-Za-z0-9._:-]");
  if (is_reserved_event_type(event.type)) {
    return field_error("type", "must not begin with \"relay.\": that prefix is reserved for relay's own events");
  }
  if (!fields.payload) return field_error("payload", "is required (any JSON value)");
  event.payload = std::move(fields.payload);
  if (fields.tenant.present) {
    if (!fields.tenant.text || !is_valid_tenant(*fields.tenant.text)) {
      return field_error("tenant", "must be 1-128 characters of [A-Za-z0-9._:-]");
    }
    event.tenant = std::move(*fields.tenant.text);
  }
  if (fields.ordering_key.present) {
    if (!fields.ordering_key.text || fields.ordering_key.text->empty() ||
        fields.ordering_key.text->size() > kMaxOrderingKeyLength) {
      return field_error("ordering_key", "must be a string of 1-256 characters");
    }
    event.ordering_key = std::move(*fields.ordering_key.text);
  }
  if (fields.has_id) {
    if (!fields.id) return field_error("id", "must be a string");
    event.client_id = std::move(*fields.id);
    if (event.client_id.empty() || event.client_id.size() > kMaxClientIdLength) {
      return field_error("id", "must be 1-256 characters");
    }
  }
  if (!idempotency_key.empty()) {
    if (idempotency_key.size() > kMaxClientIdLength) {
      return make_error(Errc::invalid_field, "header 'Idempotency-Key' must be 1-256 characters");
    }
    // The `id` member is UTF-8 by JSON's rules; the header is raw bytes, and a client id that is
    // not UTF-8 could only be shown back altered (U+FFFD), never as the client sent it.
    if (!is_utf8(idempotency_key)) {
      return make_error(Errc::invalid_field, "header 'Idempotency-Key' must be UTF-8 text");
    }
    if (!event.client_id.empty() && event.client_id != idempotency_key) {
      return make_error(Errc::invalid_field, "field 'id' and header 'Idempotency-Key' differ");
    }
    event.client_id = std::string(idempotency_key);
  }
  return event;
}

// A JSON string as written (quotes included, already validated), decoded.
std::string decode_string(std::string_view quoted) {
  const std::string_view content = quoted.substr(1, quoted.size() - 2);
  if (content.find('\\') == std::string_view::npos) return std::string(content);
  return json::parse(quoted).get<std::string>();
}

// A decoded member name: escapes are rare, so only a name written with one is decoded.
bool is_member(std::string_view quoted_name, std::string_view name) {
  const std::string_view content = quoted_name.substr(1, quoted_name.size() - 2);
  if (content.find('\\') == std::string_view::npos) return content == name;
  return decode_string(quoted_name) == name;
}

// What a body is, and where the members of an event object are in it (raw JSON text).
enum class BodyShape { object, other_value, invalid };

struct EventMembers {
  std::optional<std::string_view> type;
  std::optional<std::string_view> id;
  std::optional<std::string_view> tenant;
  std::optional<std::string_view> ordering_key;
  std::optional<std::string_view> unknown_name;  // the first member name that is none of these
  std::string payload;                           // compacted, when has_payload
  bool has_payload = false;
};

struct ScannedBody {
  BodyShape shape;
  bool read_to_end;  // false when invalid, or when a NUL byte ended the JSON text (as for nlohmann)
};

constexpr ScannedBody kInvalidBody{BodyShape::invalid, false};

// After the scan of a whole value of `text`.
ScannedBody scanned(BodyShape valid_shape, std::string_view text, JsonScanner& scanner) {
  if (!scanner.at_end()) return kInvalidBody;
  return {valid_shape, scanner.offset() == text.size()};
}

// The members of an object, the scanner just past its '{': `on_member(quoted_name)` reads each
// value. False when the text is not valid.
template <typename OnMember>
bool scan_members(JsonScanner& scanner, OnMember&& on_member) {
  if (scanner.consume('}')) return true;
  do {
    const auto name = scanner.string();
    if (!name || !scanner.consume(':')) return false;
    if (!on_member(*name)) return false;
  } while (scanner.consume(','));
  return scanner.consume('}');
}

// One pass over a body that should be an object: validates all of it, `on_member` reading the
// members' values.
template <typename OnMember>
ScannedBody scan_object_body(std::string_view body, OnMember&& on_member) {
  JsonScanner scanner(body);
  if (!scanner.consume('{')) {
    // nlohmann skips a leading byte order mark; JsonScanner does not.
    constexpr std::string_view kByteOrderMark = "\xEF\xBB\xBF";
    const std::string_view text = body.starts_with(kByteOrderMark) ? body.substr(kByteOrderMark.size()) : body;
    JsonScanner scanner_after_mark(text);
    if (!scanner_after_mark.value(kMaxJsonDepth)) return kInvalidBody;
    return scanned(BodyShape::other_value, text, scanner_after_mark);
  }
  if (!scan_members(scanner, [&](std::string_view name) { return on_member(name, scanner); })) return kInvalidBody;
  return scanned(BodyShape::object, body, scanner);
}

// One member of an event object, its value at most `member_depth` deep: the payload is
// compacted, the other members recorded, so that nothing but `type` and `id` is ever decoded.
bool scan_event_member(JsonScanner& scanner, std::string_view name, int member_depth, EventMembers& members) {
  // A repeated member counts with its last value, as in a parsed object.
  if (is_member(name, "payload")) {
    if (!scanner.value(member_depth, members.payload)) return false;
    members.has_payload = true;
    return true;
  }
  const auto value = scanner.value(member_depth);
  if (!value) return false;
  if (is_member(name, "type")) {
    members.type = value;
  } else if (is_member(name, "id")) {
    members.id = value;
  } else if (is_member(name, "tenant")) {
    members.tenant = value;
  } else if (is_member(name, "ordering_key")) {
    members.ordering_key = value;
  } else if (!members.unknown_name) {
    members.unknown_name = name;
  }
  return true;
}

// The members of an event object, the scanner just past its '{'.
bool scan_event_members(JsonScanner& scanner, int member_depth, EventMembers& members) {
  return scan_members(scanner,
                      [&](std::string_view name) { return scan_event_member(scanner, name, member_depth, members); });
}

// An optional string member as written (absent or null: not present).
EventFields::OptionalText optional_text(const std::optional<std::string_view>& value) {
  EventFields::OptionalText out;
  if (!value || *value == "null") return out;
  out.present = true;
  if (value->front() == '"') out.text = decode_string(*value);
  return out;
}

// The event of scanned, valid members.
Result<mutations::NewEvent> event_from_members(EventMembers&& members, std::string_view idempotency_key) {
  if (members.unknown_name) return field_error(decode_string(*members.unknown_name), "is not a known event field");
  EventFields fields;
  if (members.type && members.type->front() == '"') fields.type = decode_string(*members.type);
  if (members.has_payload) fields.payload = std::make_shared<const std::string>(std::move(members.payload));
  if (members.id && *members.id != "null") {
    fields.has_id = true;
    if (members.id->front() == '"') fields.id = decode_string(*members.id);
  }
  fields.tenant = optional_text(members.tenant);
  fields.ordering_key = optional_text(members.ordering_key);
  return build_event(std::move(fields), idempotency_key);
}

// The errors of a body that is not a valid JSON object, as parse_json_object answers them. A NUL
// byte ends the JSON text for the scanner (as for nlohmann): what follows makes the body invalid
// like any other trailing byte.
std::optional<Error> body_error(const ScannedBody& scan, std::string_view body) {
  if (!scan.read_to_end) return json_body_error(body, /*valid_text=*/false);  // never on the hot path
  if (scan.shape == BodyShape::other_value) return json_body_error(body, /*valid_text=*/true);
  return std::nullopt;
}

}  // namespace

Result<mutations::NewEvent> parse_new_event(const json& body, std::string_view idempotency_key) {
  if (!body.is_object()) return make_error(Errc::invalid_field, "an event must be a JSON object");
  EventFields fields;
  for (const auto& [key, value] : body.items()) {
    if (key == "type") {
      if (value.is_string()) fields.type = value.get<std::string>();
    } else if (key == "payload") {
      fields.payload = std::make_shared<const std::string>(value.dump());
    } else if (key == "id") {
      fields.has_id = !value.is_null();
      if (value.is_string()) fields.id = value.get<std::string>();
    } else if (key == "tenant" || key == "ordering_key") {
      auto& slot = key == "tenant" ? fields.tenant : fields.ordering_key;
      slot.present = !value.is_null();
      if (value.is_string()) slot.text = value.get<std::string>();
    } else {
      return field_error(key, "is not a known event field");
    }
  }
  return build_event(std::move(fields), idempotency_key);
}

Result<mutations::NewEvent> parse_event_body(const HttpRequest& request, std::string_view idempotency_key) {
  if (auto checked = check_json_content_type(request); !checked) return checked.error();
  const std::string_view body = request.body();
  EventMembers members;
  constexpr int kMemberDepth = kMaxJsonDepth - 1;  // inside the body object
  const ScannedBody scan = scan_object_body(body, [&](std::string_view name, JsonScanner& scanner) {
    return scan_event_member(scanner, name, kMemberDepth, members);
  });
  if (auto error = body_error(scan, body)) return *error;
  return event_from_members(std::move(members), idempotency_key);
}

Result<std::vector<Result<mutations::NewEvent>>> parse_event_batch_body(const HttpRequest& request,
                                                                         std::vector<std::string_view>* texts) {
  if (auto checked = check_json_content_type(request); !checked) return checked.error();
  const std::string_view body = request.body();
  constexpr int kElementDepth = kMaxJsonDepth - 2;  // inside the body object and "events"
  constexpr int kEventMemberDepth = kElementDepth - 1;
  std::vector<Result<mutations::NewEvent>> events;
  std::size_t count = 0;
  bool has_events = false;      // the last "events" member is an array
  bool has_other_member = false;
  const ScannedBody scan = scan_object_body(body, [&](std::string_view name, JsonScanner& scanner) {
    if (!is_member(name, "events")) {
      has_other_member = true;
      return scanner.value(kMaxJsonDepth - 1).has_value();
    }
    // A repeated member counts with its last value, as in a parsed object.
    events.clear();
    if (texts != nullptr) texts->clear();
    count = 0;
    has_events = scanner.consume('[');
    if (!has_events) return scanner.value(kMaxJsonDepth - 1).has_value();
    if (scanner.consume(']')) return true;
    do {
      // Past the limit the elements are only validated: the request is refused as a whole.
      if (++count > kMaxBatchEvents) {
        if (!scanner.value(kElementDepth)) return false;
      } else if (scanner.consume('{')) {
        const std::size_t start = scanner.offset() - 1;
        EventMembers members;
        if (!scan_event_members(scanner, kEventMemberDepth, members)) return false;
        events.push_back(event_from_members(std::move(members), ""));
        if (texts != nullptr) texts->push_back(body.substr(start, scanner.offset() - start));
      } else {
        const auto value = scanner.value(kElementDepth);
        if (!value) return false;
        events.push_back(make_error(Errc::invalid_field, "an event must be a JSON object"));
        if (texts != nullptr) texts->push_back(*value);
      }
    } while (scanner.consume(','));
    return scanner.consume(']');
  });
  if (auto error = body_error(scan, body)) return *error;
  if (!has_events) return field_error("events", "is required and must be an array");
  if (count == 0 || count > kMaxBatchEvents) return field_error("events", "must hold 1 to 1000 events");
  if (has_other_member) return make_error(Errc::invalid_field, "a batch has only the field 'events'");
  return events;
}

}  // namespace relay
