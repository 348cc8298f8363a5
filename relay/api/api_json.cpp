#include "relay/api/api_json.h"

#include "relay/core/duration.h"
#include "relay/core/time.h"

namespace relay {

using nlohmann::json;

namespace {

json optional_duration(const std::optional<std::int64_t>& v) {
  return v ? json(format_duration(*v)) : json(nullptr);
}
json time_or_null(UnixMillis t) { return t > 0 ? json(format_time(t)) : json(nullptr); }
json text_or_null(const std::string& text) { return text.empty() ? json(nullptr) : json(text); }
json disabled_reason_or_null(const Subscription& s) {
  if (s.enabled) return nullptr;
  // Only relay sets failing; a disabled subscription without a reason was disabled by hand.
  return disabled_reason_name(s.disabled_reason == DisabledReason::failing ? DisabledReason::failing
                                                                            : DisabledReason::manual);
}

}  // namespace

std::string to_api_text(const Event& e, json extra) {
  json members = std::move(extra);
  members["id"] = e.id;
  members["type"] = e.type;
  members["created_at"] = format_time(e.created_at);
  if (!e.client_id.empty()) members["client_id"] = e.client_id;
  if (!e.tenant.empty()) members["tenant"] = e.tenant;
  if (!e.ordering_key.empty()) members["ordering_key"] = e.ordering_key;
  std::string text = members.dump(-1, ' ', false, json::error_handler_t::replace);
  text.pop_back();  // the closing brace: the payload goes last
  text += R"(,"payload":)";
  text += e.payload ? std::string_view(*e.payload) : std::string_view("null");
  text += '}';
  return text;
}

json to_api(const Subscription& s) {
  json signature = {{"scheme", signature_scheme_name(s.signature_scheme)}};
  if (s.signature_scheme == SignatureScheme::hmac_sha256_hex) signature["header"] = s.signature_header;
  json out = {{"id", s.id},
              {"url", s.url},
              {"event_types", s.event_types},
              {"tenant", text_or_null(s.tenant)},
              // Stored as the compact text it was given as: valid JSON.
              {"filter", s.filter.empty() ? json(nullptr) : json::parse(s.filter)},
              {"ordering", ordering_name(s.ordering)},
              {"coalesce", s.coalesce},
              {"secret", s.secret},
              {"signature", std::move(signature)},
              {"headers", s.headers},
              {"enabled", s.enabled},
              {"disabled_reason", disabled_reason_or_null(s)},
              {"disabled_at", s.enabled ? json(nullptr) : time_or_null(s.disabled_at)},
              {"disable_after", optional_duration(s.disable_after_ms)},
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
          {"tenant", text_or_null(d.tenant)},
          {"ordering_key", text_or_null(d.ordering_key)},
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

json to_api(const Job& j) {
  json params;
  if (j.kind == JobKind::replay) {
    params = {{"subscription_id", j.replay.subscription_id},
              {"since", format_time(j.replay.since)},
              {"until", format_time(j.replay.until)},
              {"event_types", j.replay.event_types},
              {"only_failed", j.replay.only_failed}};
  } else {
    params = {{"subscription_id", text_or_null(j.dlq.subscription_id)},
              {"event_type", text_or_null(j.dlq.event_type)},
              {"since", time_or_null(j.dlq.since)},
              {"until", format_time(j.dlq.until)},
              {"limit", j.dlq.limit},
              {"tenant", text_or_null(j.dlq.tenant)}};
  }
  return {{"id", j.id},
          {"kind", job_kind_name(j.kind)},
          {"state", job_state_name(j.state)},
          {"params", std::move(params)},
          {"matched", j.matched},
          {"created", j.created},
          {"created_at", format_time(j.created_at)},
          {"finished_at", time_or_null(j.finished_at)},
          {"error", text_or_null(j.error)}};
}

}  // namespace relay
