#pragma once
// A subscriber endpoint, the event types it wants, and how relay signs and paces deliveries to it.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "relay/core/clock.h"

namespace relay {

enum class SignatureScheme { standard, hmac_sha256_hex };

// How deliveries to a subscription are ordered: not at all, or one at a time per ordering key.
enum class Ordering { none, key };

// The scheme's name in the API and in stored subscriptions: "standard" or "hmac-sha256-hex".
const char* signature_scheme_name(SignatureScheme scheme);
std::optional<SignatureScheme> parse_signature_scheme(std::string_view name);
// "none" or "key", in the API and in stored subscriptions.
const char* ordering_name(Ordering ordering);
std::optional<Ordering> parse_ordering(std::string_view name);

// Why a subscription is disabled: by an operator (PATCH or POST with `enabled: false`), or by
// relay because all its attempts failed for `disable_after` (spec section 6, "Automatic
// disabling"). none while it is enabled.
enum class DisabledReason { none, manual, failing };
// "manual" or "failing" in the API and in stored subscriptions; "" for none.
const char* disabled_reason_name(DisabledReason reason);
std::optional<DisabledReason> parse_disabled_reason(std::string_view name);

struct RetryOverrides {
  std::optional<std::int64_t> initial_ms;
  std::optional<std::int64_t> max_delay_ms;
  std::optional<std::int64_t> window_ms;
};

struct Subscription {
  std::string id;  // "sub_..."
  std::string url;
  std::vector<std::string> event_types{"*"};
  std::string tenant;  // receives only this tenant's events; empty: every tenant's
  // The payload filter as compact JSON text, empty for none. The registry compiles it
  // (relay/routing/payload_filter.h); the model only carries it.
  std::string filter;
  Ordering ordering = Ordering::none;
  // With Ordering::key: of several waiting deliveries of a key only the newest is attempted, the
  // older ones end superseded.
  bool coalesce = false;
  std::string secret;
  // Set during a rotation: the previous secret keeps signing until previous_secret_expires_at.
  std::string previous_secret;
  UnixMillis previous_secret_expires_at = 0;
  SignatureScheme signature_scheme = SignatureScheme::standard;
  std::string signature_header = "X-Webhook-Signature";  // used by hmac_sha256_hex only
  std::map<std::string, std::string> headers;
  bool enabled = true;
  DisabledReason disabled_reason = DisabledReason::none;  // none exactly while enabled
  // Time spent disabled does not count against a delivery's retry window (see paused_ms).
  UnixMillis disabled_at = 0;        // when it was last disabled; 0 while enabled
  std::int64_t disabled_ms = 0;      // total time disabled before disabled_at
  std::string description;
  RetryOverrides retry;
  std::optional<std::int64_t> timeout_ms;
  std::uint32_t max_in_flight = 64;
  std::uint32_t rate_limit_per_second = 0;  // 0 = unlimited
  // How long all of its attempts may fail, with no success in between, before relay disables it;
  // 0: never; nullopt: --disable-after.
  std::optional<std::int64_t> disable_after_ms;
  UnixMillis created_at = 0;
  UnixMillis updated_at = 0;
};

// Enables or disables `sub` at `now`, keeping the account of the time it spent disabled. A
// subscription disabled already keeps its reason and its disabled_at; enabling clears both.
void set_enabled(Subscription& sub, bool enabled, UnixMillis now, DisabledReason reason = DisabledReason::manual);

// The subscription's disable_after, or `default_ms` (--disable-after) when it has none. 0: never.
std::int64_t effective_disable_after(const Subscription& sub, std::int64_t default_ms);

// A new signing secret (POST /v1/subscriptions/{id}/rotate-secret).
struct SecretRotation {
  std::string new_secret;
  std::int64_t grace_ms = 0;  // 0: the current secret stops signing at once
  UnixMillis now = 0;
};
// The new secret replaces the current one, which keeps signing for the grace period. Applied to
// the stored state, so rotations chain: the previous secret is always the one signing until now.
void rotate_secret(Subscription& sub, const SecretRotation& rotation);

// The subscription's pause clock: how long it has been disabled in all, up to `now`. A delivery
// notes it when its window starts (Delivery::window_pause_mark); the difference since then is
// added to its window.
std::int64_t paused_ms(const Subscription& sub, UnixMillis now);

}  // namespace relay
