#include "relay/model/subscription.h"

#include <algorithm>

namespace relay {

const char* signature_scheme_name(SignatureScheme scheme) {
  return scheme == SignatureScheme::standard ? "standard" : "hmac-sha256-hex";
}

std::optional<SignatureScheme> parse_signature_scheme(std::string_view name) {
  if (name == "standard") return SignatureScheme::standard;
  if (name == "hmac-sha256-hex") return SignatureScheme::hmac_sha256_hex;
  return std::nullopt;
}

const char* ordering_name(Ordering ordering) { return ordering == Ordering::key ? "key" : "none"; }

std::optional<Ordering> parse_ordering(std::string_view name) {
  if (name == "none") return Ordering::none;
  if (name == "key") return Ordering::key;
  return std::nullopt;
}

const char* disabled_reason_name(DisabledReason reason) {
  switch (reason) {
    case DisabledReason::manual: return "manual";
    case DisabledReason::failing: return "failing";
    case DisabledReason::none: break;
  }
  return "";
}

std::optional<DisabledReason> parse_disabled_reason(std::string_view name) {
  if (name == "manual") return DisabledReason::manual;
  if (name == "failing") return DisabledReason::failing;
  if (name.empty()) return DisabledReason::none;
  return std::nullopt;
}

void set_enabled(Subscription& sub, bool enabled, UnixMillis now, DisabledReason reason) {
  if (sub.enabled == enabled) return;
  sub.enabled = enabled;
  if (!enabled) {
    sub.disabled_at = now;
    sub.disabled_reason = reason == DisabledReason::none ? DisabledReason::manual : reason;
  } else {
    sub.disabled_ms += std::max<std::int64_t>(0, now - sub.disabled_at);
    sub.disabled_at = 0;
    sub.disabled_reason = DisabledReason::none;
  }
}

void rotate_secret(Subscription& sub, const SecretRotation& rotation) {
  sub.previous_secret = rotation.grace_ms > 0 ? sub.secret : "";
  sub.previous_secret_expires_at = rotation.grace_ms > 0 ? rotation.now + rotation.grace_ms : 0;
  sub.secret = rotation.new_secret;
  sub.updated_at = rotation.now;
}

std::int64_t effective_disable_after(const Subscription& sub, std::int64_t default_ms) {
  return sub.disable_after_ms.value_or(default_ms);
}

std::int64_t paused_ms(const Subscription& sub, UnixMillis now) {
  const std::int64_t running = sub.enabled || sub.disabled_at == 0 ? 0 : std::max<std::int64_t>(0, now - sub.disabled_at);
  return sub.disabled_ms + running;
}

}  // namespace relay
