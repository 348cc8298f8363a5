#pragma once
// A subscription with every field set away from its default, for the tests of its stored form
// (records_test.cpp) and its API form (api_json_test.cpp). Created at 2026-11-26T10:00:00.123Z.

#include "relay/model/subscription.h"

namespace relay {

inline Subscription full_subscription() {
  constexpr UnixMillis kT = 1'795'687'200'123;  // 2026-11-26T10:00:00.123Z
  Subscription s;
  s.id = "sub_0000019abcdef0123456789abcdef012";
  s.url = "https://example.com/hook?token=abc";
  s.event_types = {"meeting.*", "calendar.sync_events"};
  s.secret = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX";
  s.previous_secret = "old-secret-1";
  s.previous_secret_expires_at = kT + 86'400'000;
  s.signature_scheme = SignatureScheme::hmac_sha256_hex;
  s.signature_header = "X-MeetingBaas-Signature";
  s.headers = {{"X-Static", "v"}, {"X-Other", "w x"}};
  s.enabled = false;
  s.disabled_reason = DisabledReason::failing;
  s.disabled_at = kT + 3'600'000;
  s.disable_after_ms = 2 * 86'400'000;
  s.description = "déscription ✓";
  s.retry = {1'500, 600'000, 7'200'000};
  s.timeout_ms = 30'000;
  s.max_in_flight = 10;
  s.rate_limit_per_second = 5;
  s.created_at = kT;
  s.updated_at = kT + 1;
  s.disabled_ms = 4'000;
  return s;
}

}  // namespace relay
