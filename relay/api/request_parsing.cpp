#include "relay/api/request_parsing.h"

#include <algorithm>
#include <boost/beast/core/string.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include "relay/api/json_scanner.h"
#include "relay/core/duration.h"
#include "relay/delivery/signature.h"
#include "relay/model/event_type.h"

namespace relay {

using nlohmann::json;

namespace {

constexpr std::size_t kMaxClientIdLength = 256;
constexpr std::size_t kMaxBatchEvents = 1000;
constexpr std::size_t kMaxDescriptionLength = 1024;
constexpr std::size_t kMaxEventTypesPerSubscription = 64;
constexpr std::uint32_t kMaxPerSubscriptionInFlight = 10'000;

Error field_error(const std::string& field, const std::string& what) {
  return make_error(Errc::invalid_field, "field '" + field + "' " + what);
}

bool is_token_char(char c) {
  // RFC 9110 tchar
  return std::isalnum(static_cast<unsigned char>(c)) != 0 ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_header_name(std::string_view name) {
  return !name.empty() && name.size() <= 128 && std::all_of(name.begin(), name.end(), is_token_char);
}

bool is_header_value(std::string_view value) {
  return value.size() <= 4096 &&
         std::none_of(value.begin(), value.end(), [](char c) { return c == '\r' || c == '\n' || c == '\0'; });
}

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

// Headers relay sets itself; a subscription may not override them.
bool is_reserved_header(std::string_view name) {
  const std::string n = lower(name);
  return n == "content-type" || n == "content-length" || n == "host" || n == "user-agent" || n == "connection" ||
         n == "transfer-encoding" || n.rfind("webhook-", 0) == 0 || n.rfind("x-relay-", 0) == 0;
}

Result<std::int64_t> duration_field(const json& value, const std::string& field) {
  if (!value.is_string()) return field_error(field, "must be a duration string such as \"5s\"");
  const auto ms = parse_duration_ms(value.get<std::string>());
  if (!ms || *ms <= 0)
    return field_error(field,
                       "must be a positive duration such as \"500ms\", "
                       "\"5s\", \"10m\", \"1h\"");
  return *ms;
}

Status validate_url(const std::string& url) {
  auto parsed = boost::urls::parse_absolute_uri(url);
  if (!parsed) return field_error("url", "must be an absolute http or https URL");
  const std::string scheme = lower(parsed->scheme());
  if (scheme != "http" && scheme != "https") return field_error("url", "must use http or https");
  if (parsed->encoded_host().empty()) return field_error("url", "must name a host");
  if (parsed->has_userinfo()) return field_error("url", "must not carry credentials");
  if (parsed->has_fragment()) return field_error("url", "must not have a fragment");
  return Ok{};
}

// Deepest nesting of arrays and objects accepted. JSON parsing is iterative, but serializing
// and comparing nested values recurse: without a bound, a 1 MiB body of brackets would
// overflow the stack.
constexpr int kMaxJsonDepth = 256;

bool nested_too_deep(std::string_view text) {
  int depth = 0;
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
      if (++depth > kMaxJsonDepth) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

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
};

Result<mutations::NewEvent> build_event(EventFields&& fields, std::string_view idempotency_key) {
  mutations::NewEvent event;
  if (!fields.type) return field_error("type", "is required and must be a string");
  event.type = std::move(*fields.type);
  if (!is_valid_event_type(event.type)) return field_error("type", "must be 1-128 characters of [A-Za-z0-9._:-]");
  if (!fields.payload) return field_error("payload", "is required (any JSON value)");
  event.payload = std::move(fields.payload);
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

Status check_media_type(const HttpRequest& request) {
  const std::string_view content_type = request[boost::beast::http::field::content_type];
  if (content_type.empty()) return Ok{};
  const std::string_view media = content_type.substr(0, content_type.find(';'));
  // curl -d sends application/x-www-form-urlencoded unless told otherwise; its body is still
  // parsed as JSON so that copy-pasted commands work. Any other media type is refused.
  const bool is_json = media == "application/json" || boost::beast::iequals(media, "application/json") ||
                       boost::beast::iequals(media, "application/x-www-form-urlencoded") ||
                       (media.size() > 5 && boost::beast::iequals(media.substr(media.size() - 5), "+json"));
  if (!is_json) return make_error(Errc::unsupported_media_type, "Content-Type must be application/json");
  return Ok{};
}

Error too_deep_error() { return make_error(Errc::invalid_json, "the request body nests deeper than 256 levels"); }
Error not_json_error() { return make_error(Errc::invalid_json, "the request body is not valid JSON"); }
Error not_object_error() { return make_error(Errc::invalid_json, "the request body must be a JSON object"); }

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
  return build_event(std::move(fields), idempotency_key);
}

// The errors of a body that is not a valid JSON object, in parse_json_object's order: that
// checks the depth of all of the body first; the scan checked the depth of what it read, and a
// valid text has no deeper part. A NUL byte ends the JSON text for the scanner (as for
// nlohmann): what follows makes the body invalid like any other trailing byte.
std::optional<Error> body_error(const ScannedBody& scan, std::string_view body) {
  if (!scan.read_to_end && nested_too_deep(body)) return too_deep_error();  // never on the hot path
  if (!scan.read_to_end) return not_json_error();
  if (scan.shape == BodyShape::other_value) return not_object_error();
  return std::nullopt;
}

}  // namespace

Result<json> parse_json_object(const HttpRequest& request) {
  if (auto checked = check_media_type(request); !checked) return checked.error();
  if (nested_too_deep(request.body())) return too_deep_error();
  // nlohmann stops reading at a NUL byte; valid JSON text holds none (not even in a string).
  if (request.body().find('\0') != std::string::npos) return not_json_error();
  json body = json::parse(request.body(), nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) return not_json_error();
  if (!body.is_object()) return not_object_error();
  return body;
}

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
    } else {
      return field_error(key, "is not a known event field");
    }
  }
  return build_event(std::move(fields), idempotency_key);
}

Result<mutations::NewEvent> parse_event_body(const HttpRequest& request, std::string_view idempotency_key) {
  if (auto checked = check_media_type(request); !checked) return checked.error();
  const std::string_view body = request.body();
  EventMembers members;
  constexpr int kMemberDepth = kMaxJsonDepth - 1;  // inside the body object
  const ScannedBody scan = scan_object_body(body, [&](std::string_view name, JsonScanner& scanner) {
    return scan_event_member(scanner, name, kMemberDepth, members);
  });
  if (auto error = body_error(scan, body)) return *error;
  return event_from_members(std::move(members), idempotency_key);
}

Result<std::vector<Result<mutations::NewEvent>>> parse_event_batch_body(const HttpRequest& request) {
  if (auto checked = check_media_type(request); !checked) return checked.error();
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
    count = 0;
    has_events = scanner.consume('[');
    if (!has_events) return scanner.value(kMaxJsonDepth - 1).has_value();
    if (scanner.consume(']')) return true;
    do {
      // Past the limit the elements are only validated: the request is refused as a whole.
      if (++count > kMaxBatchEvents) {
        if (!scanner.value(kElementDepth)) return false;
      } else if (scanner.consume('{')) {
        EventMembers members;
        if (!scan_event_members(scanner, kEventMemberDepth, members)) return false;
        events.push_back(event_from_members(std::move(members), ""));
      } else {
        if (!scanner.value(kElementDepth)) return false;
        events.push_back(make_error(Errc::invalid_field, "an event must be a JSON object"));
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

Status apply_subscription_fields(const json& body, Subscription& target, bool creating) {
  Subscription sub = target;
  if (creating && !body.contains("url")) return field_error("url", "is required");
  for (const auto& [key, value] : body.items()) {
    if (key == "url") {
      if (!value.is_string()) return field_error("url", "must be a string");
      sub.url = value.get<std::string>();
      if (auto ok = validate_url(sub.url); !ok) return ok.error();
    } else if (key == "event_types") {
      if (!value.is_array() || value.empty() || value.size() > kMaxEventTypesPerSubscription) {
        return field_error("event_types", "must be a non-empty array of at most 64 patterns");
      }
      std::vector<std::string> patterns;
      for (const auto& pattern : value) {
        if (!pattern.is_string() || !is_valid_event_pattern(pattern.get<std::string>())) {
          return field_error("event_types",
                             "holds an invalid pattern: use an exact type, "
                             "\"*\" or a prefix ending in \".*\"");
        }
        patterns.push_back(pattern.get<std::string>());
      }
      sub.event_types = std::move(patterns);
    } else if (key == "secret") {
      if (value.is_null() && creating) continue;  // generated below
      if (!value.is_string()) return field_error("secret", "must be a string");
      const std::string secret = value.get<std::string>();
      const auto key_bytes = secret_key_bytes(secret);
      if (secret.size() < 8 || secret.size() > 256 || !key_bytes || key_bytes->size() < 8) {
        return field_error("secret",
                           "must be 8-256 characters (a whsec_ secret must be "
                           "valid base64 of at least 8 bytes)");
      }
      sub.secret = secret;
    } else if (key == "signature") {
      if (!value.is_object()) return field_error("signature", "must be an object");
      for (const auto& [skey, svalue] : value.items()) {
        if (skey == "scheme") {
          if (svalue == "standard")
            sub.signature_scheme = SignatureScheme::standard;
          else if (svalue == "hmac-sha256-hex")
            sub.signature_scheme = SignatureScheme::hmac_sha256_hex;
          else
            return field_error("signature.scheme", "must be \"standard\" or \"hmac-sha256-hex\"");
        } else if (skey == "header") {
          if (!svalue.is_string() || !is_header_name(svalue.get<std::string>()) ||
              is_reserved_header(svalue.get<std::string>())) {
            return field_error("signature.header", "must be a valid header name that relay does not set itself");
          }
          sub.signature_header = svalue.get<std::string>();
        } else {
          return field_error("signature." + skey, "is not a known field");
        }
      }
    } else if (key == "headers") {
      if (!value.is_object() || value.size() > 32)
        return field_error("headers", "must be an object of at most 32 headers");
      std::map<std::string, std::string> headers;
      for (const auto& [name, header_value] : value.items()) {
        if (!is_header_name(name) || is_reserved_header(name)) {
          return field_error("headers", "has an invalid or reserved header name '" + name + "'");
        }
        if (!header_value.is_string() || !is_header_value(header_value.get<std::string>())) {
          return field_error("headers", "values must be strings without line breaks");
        }
        headers[name] = header_value.get<std::string>();
      }
      sub.headers = std::move(headers);
    } else if (key == "enabled") {
      if (!value.is_boolean()) return field_error("enabled", "must be true or false");
      sub.enabled = value.get<bool>();
    } else if (key == "description") {
      if (!value.is_string() || value.get<std::string>().size() > kMaxDescriptionLength) {
        return field_error("description", "must be a string of at most 1024 characters");
      }
      sub.description = value.get<std::string>();
    } else if (key == "retry") {
      if (!value.is_object()) return field_error("retry", "must be an object");
      for (const auto& [rkey, rvalue] : value.items()) {
        std::optional<std::int64_t>* slot = rkey == "initial"     ? &sub.retry.initial_ms
                                            : rkey == "max_delay" ? &sub.retry.max_delay_ms
                                            : rkey == "window"    ? &sub.retry.window_ms
                                                                  : nullptr;
        if (slot == nullptr) return field_error("retry." + rkey, "is not a known field");
        if (rvalue.is_null()) {
          slot->reset();
          continue;
        }
        auto ms = duration_field(rvalue, "retry." + rkey);
        if (!ms) return ms.error();
        *slot = *ms;
      }
    } else if (key == "timeout") {
      if (value.is_null()) {
        sub.timeout_ms.reset();
        continue;
      }
      auto ms = duration_field(value, "timeout");
      if (!ms) return ms.error();
      if (*ms > 300'000) return field_error("timeout", "must be at most 5m");
      sub.timeout_ms = *ms;
    } else if (key == "max_in_flight") {
      if (!value.is_number_integer() || value.get<std::int64_t>() < 1 ||
          value.get<std::int64_t>() > kMaxPerSubscriptionInFlight) {
        return field_error("max_in_flight", "must be an integer from 1 to 10000");
      }
      sub.max_in_flight = value.get<std::uint32_t>();
    } else if (key == "rate_limit_per_second") {
      if (!value.is_number_integer() || value.get<std::int64_t>() < 0 || value.get<std::int64_t>() > 1'000'000) {
        return field_error("rate_limit_per_second", "must be an integer from 0 (unlimited) to 1000000");
      }
      sub.rate_limit_per_second = value.get<std::uint32_t>();
    } else {
      return field_error(key, "is not a known subscription field");
    }
  }
  if (sub.retry.initial_ms && sub.retry.max_delay_ms && *sub.retry.initial_ms > *sub.retry.max_delay_ms) {
    return field_error("retry.initial", "must not exceed retry.max_delay");
  }
  target = std::move(sub);
  return Ok{};
}

Result<std::map<std::string, std::string>> parse_query(std::string_view target) {
  std::map<std::string, std::string> out;
  auto parsed = boost::urls::parse_origin_form(target);
  if (!parsed) return make_error(Errc::invalid_field, "the query string is malformed");
  for (const auto& param : parsed->params()) out[std::string(param.key)] = std::string(param.value);
  return out;
}

}  // namespace relay
