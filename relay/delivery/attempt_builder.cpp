#include "relay/delivery/attempt_builder.h"

#include <algorithm>
#include <optional>
#include <string_view>

namespace relay {

EgressRequest build_request(const Delivery& d, const Subscription& sub, std::shared_ptr<const std::string> payload,
                            const SubscriptionSigner& signer, UnixMillis started_at, std::int64_t default_timeout_ms) {
  const std::int64_t timestamp_s = started_at / 1000;
  EgressRequest request;
  request.url = sub.url;
  request.body = payload;
  request.timeout_ms = sub.timeout_ms.value_or(default_timeout_ms);
  request.headers.reserve(8 + sub.headers.size());
  request.headers.emplace_back("Content-Type", "application/json");
  request.headers.emplace_back("webhook-id", d.event_id);
  request.headers.emplace_back("webhook-timestamp", std::to_string(timestamp_s));
  signer.append_headers(d.event_id, timestamp_s, payload ? *payload : std::string_view(), started_at, request.headers);
  request.headers.emplace_back("X-Relay-Event-Type", d.event_type);
  request.headers.emplace_back("X-Relay-Delivery-Id", d.id);
  request.headers.emplace_back("X-Relay-Attempt", std::to_string(d.attempts + 1));
  for (const auto& [name, value] : sub.headers) request.headers.emplace_back(name, value);
  return request;
}

std::int64_t paused_since(const Delivery& d, const Subscription* sub, UnixMillis now) {
  return sub ? std::max<std::int64_t>(0, paused_ms(*sub, now) - d.window_pause_mark) : 0;
}

AttemptResult resolve_attempt(const Delivery& d, const Subscription* sub, const RetryPolicy& defaults,
                              UnixMillis started_at, const EgressResponse& response, double jitter_unit) {
  const RetryPolicy policy = sub ? effective_policy(defaults, sub->retry) : defaults;
  const UnixMillis finished_at = started_at + response.duration_ms;
  AttemptReply reply{response.http_status, std::nullopt};
  if (response.retry_after) reply.retry_after_ms = parse_retry_after_ms(*response.retry_after, finished_at);
  // Time the subscription spent disabled since the window started does not count against it.
  const UnixMillis window_start = d.window_start != 0 ? d.window_start + paused_since(d, sub, finished_at) : started_at;
  const RetryDecision decision =
      decide_after_attempt(policy, window_start, d.attempts + 1, finished_at, reply, jitter_unit);

  AttemptResult result;
  Attempt& attempt = result.attempt;
  attempt.number = d.attempts + 1;
  attempt.started_at = started_at;
  attempt.duration_ms = response.duration_ms;
  attempt.http_status = response.http_status;
  attempt.outcome = response.outcome;
  attempt.error = response.error;
  attempt.response_body = response.body_excerpt;
  mutations::Resolution& resolution = result.resolution;
  resolution.state = decision.kind == RetryDecision::succeeded ? DeliveryState::succeeded
                     : decision.kind == RetryDecision::dead    ? DeliveryState::dead
                                                               : DeliveryState::pending;
  resolution.next_attempt_at = decision.next_attempt_at;
  resolution.window_pause_mark = sub ? paused_ms(*sub, started_at) : 0;
  return result;
}

}  // namespace relay
