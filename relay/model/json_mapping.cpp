#include "relay/model/json_mapping.h"

#include <ctime>

#include "relay/core/duration.h"

namespace relay {

using nlohmann::json;

namespace {

const char* scheme_name(SignatureScheme scheme) {
  return scheme == SignatureScheme::standard ? "standard" : "hmac-sha256-hex";
}

SignatureScheme scheme_from_name(const std::string& name) {
  return name == "hmac-sha256-hex" ? SignatureScheme::hmac_sha256_hex : SignatureScheme::standard;
}

json optional_ms(const std::optional<std::int64_t>& v) { return v ? json(*v) : json(nullptr); }
std::optional<std::int64_t> read_optional_ms(const json& j, const char* key) {
  if (!j.contains(key) || j.at(key).is_null()) return std::nullopt;
  return j.at(key).get<std::int64_t>();
}
json optional_duration(const std::optional<std::int64_t>& v) {
  return v ? json(format_duration(*v)) : json(nullptr);
}
json time_or_null(UnixMillis t) { return t > 0 ? json(format_time(t)) : json(nullptr); }

}  // namespace

std::string format_time(UnixMillis t) {
  const std::time_t seconds = static_cast<std::time_t>(t / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[40];
  const std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(t % 1000));
  return buf;
}

json to_record(const Subscription& s) {
  return {{"id", s.id},
          {"url", s.url},
          {"event_types", s.event_types},
          {"secret", s.secret},
          {"previous_secret", s.previous_secret},
          {"previous_secret_expires_at", s.previous_secret_expires_at},
          {"signature_scheme", scheme_name(s.signature_scheme)},
          {"signature_header", s.signature_header},
          {"headers", s.headers},
          {"enabled", s.enabled},
          {"disabled_at", s.disabled_at},
          {"disabled_ms", s.disabled_ms},
          {"description", s.description},
          {"retry_initial_ms", optional_ms(s.retry.initial_ms)},
          {"retry_max_delay_ms", optional_ms(s.retry.max_delay_ms)},
          {"retry_window_ms", optional_ms(s.retry.window_ms)},
          {"timeout_ms", optional_ms(s.timeout_ms)},
          {"max_in_flight", s.max_in_flight},
          {"rate_limit_per_second", s.rate_limit_per_second},
          {"created_at", s.created_at},
          {"updated_at", s.updated_at}};
}

Subscription subscription_from_record(const json& j) {
  Subscription s;
  s.id = j.at("id").get<std::string>();
  s.url = j.at("url").get<std::string>();
  s.event_types = j.at("event_types").get<std::vector<std::string>>();
  s.secret = j.at("secret").get<std::string>();
  s.previous_secret = j.at("previous_secret").get<std::string>();
  s.previous_secret_expires_at = j.at("previous_secret_expires_at").get<UnixMillis>();
  s.signature_scheme = scheme_from_name(j.at("signature_scheme").get<std::string>());
  s.signature_header = j.at("signature_header").get<std::string>();
  s.headers = j.at("headers").get<std::map<std::string, std::string>>();
  s.enabled = j.at("enabled").get<bool>();
  // Absent in records written before the pause was kept.
  s.disabled_at = j.value("disabled_at", UnixMillis{0});
  s.disabled_ms = j.value("disabled_ms", std::int64_t{0});
  s.description = j.at("description").get<std::string>();
  s.retry.initial_ms = read_optional_ms(j, "retry_initial_ms");
  s.retry.max_delay_ms = read_optional_ms(j, "retry_max_delay_ms");
  s.retry.window_ms = read_optional_ms(j, "retry_window_ms");
  s.timeout_ms = read_optional_ms(j, "timeout_ms");
  s.max_in_flight = j.at("max_in_flight").get<std::uint32_t>();
  s.rate_limit_per_second = j.at("rate_limit_per_second").get<std::uint32_t>();
  s.created_at = j.at("created_at").get<UnixMillis>();
  s.updated_at = j.at("updated_at").get<UnixMillis>();
  return s;
}

std::string to_api_text(const Event& e, json extra) {
  json members = std::move(extra);
  members["id"] = e.id;
  members["type"] = e.type;
  members["created_at"] = format_time(e.created_at);
  if (!e.client_id.empty()) members["client_id"] = e.client_id;
  std::string text = members.dump(-1, ' ', false, json::error_handler_t::replace);
  text.pop_back();  // the closing brace: the payload goes last
  text += R"(,"payload":)";
  text += e.payload ? std::string_view(*e.payload) : std::string_view("null");
  text += '}';
  return text;
}

json to_api(const Subscription& s) {
  json signature = {{"scheme", scheme_name(s.signature_scheme)}};
  if (s.signature_scheme == SignatureScheme::hmac_sha256_hex) signature["header"] = s.signature_header;
  json out = {{"id", s.id},
              {"url", s.url},
              {"event_types", s.event_types},
              {"secret", s.secret},
              {"signature", std::move(signature)},
              {"headers", s.headers},
              {"enabled", s.enabled},
              {"description", s.description},
              {"retry",
               {{"initial", optional_duration(s.retry.initial_ms)},
                {"max_delay", optional_duration(s.retry.max_delay_ms)},
                {"window", optional_duration(s.retry.window_ms)}}},
              {"timeout", optional_duration(s.timeout_ms)},
              {"max_in_flight", s.max_in_flight},
              {"rate_limit_per_second", s.rate_limit_per_second},
              {"created_at", format_time(s.created_at)},
              {"updated_at", format_time(s.updated_at)}};
  if (!s.previous_secret.empty()) out["previous_secret_expires_at"] = format_time(s.previous_secret_expires_at);
  return out;
}

json to_api(const Delivery& d) {
  return {{"id", d.id},
          {"event_id", d.event_id},
          {"subscription_id", d.subscription_id},
          {"event_type", d.event_type},
          {"state", delivery_state_name(d.state)},
          {"created_at", format_time(d.created_at)},
          {"next_attempt_at", d.state == DeliveryState::pending ? time_or_null(d.next_attempt_at) : json(nullptr)},
          {"attempt_count", d.attempts},
          {"completed_at", time_or_null(d.completed_at)},
          {"last_error", d.last_error.empty() ? json(nullptr) : json(d.last_error)}};
}

json to_api(const Attempt& a) {
  return {{"number", a.number},
          {"started_at", format_time(a.started_at)},
          {"duration_ms", a.duration_ms},
          {"http_status", a.http_status > 0 ? json(a.http_status) : json(nullptr)},
          {"outcome", attempt_outcome_name(a.outcome)},
          {"error", a.error.empty() ? json(nullptr) : json(a.error)},
          {"response_body", a.response_body}};
}

json to_api(const EventTypeStats& s) {
  return {{"type", s.type}, {"count", s.count}, {"last_seen", format_time(s.last_seen)}};
}

}  // namespace relay
