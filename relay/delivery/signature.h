#pragma once
// Webhook signatures (spec section 3): what lets a receiver prove that a delivery came from relay
// and was not altered. Two schemes:
//  - standard (Standard Webhooks): `webhook-signature: v1,BASE64(HMAC-SHA256(key,
//    "{webhook-id}.{webhook-timestamp}.{body}"))`, key = base64-decoded part after "whsec_", or
//    the secret's raw bytes when it has no such prefix.
//  - hmac_sha256_hex: lowercase HEX(HMAC-SHA256(secret's raw bytes, body)) in the subscription's
//    own header, the scheme many existing receivers check.
// During a secret rotation (until the grace period ends) the standard scheme carries two
// space-separated signatures, the new secret's first: Standard Webhooks receivers try every one.
// The hex scheme has no such convention: its receivers compare the whole header against one
// value, so it carries one signature, the old secret's until the grace period ends and the new
// one's from then on; a receiver rotates by accepting either secret during the grace period.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "relay/core/clock.h"
#include "relay/model/subscription.h"

namespace relay {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// A fresh secret: "whsec_" + base64 of 32 random bytes from OpenSSL's CSPRNG.
std::string generate_secret();

// The HMAC key of the standard scheme: the base64-decoded part after "whsec_", or the raw bytes
// of a secret without that prefix. nullopt when the "whsec_" part is not canonical base64, or when
// the key would be empty (an empty key makes signatures forgeable). The API validates secrets
// with this before storing them.
std::optional<std::string> secret_key_bytes(std::string_view secret);

// Signs the attempts of one subscription: the secrets are decoded and the HMAC keys set up once,
// which for a 1 KiB body was about half the cost of a signature. Not thread-safe; the scheduler
// keeps one per subscription on the event loop.
class SubscriptionSigner {
 public:
  explicit SubscriptionSigner(const Subscription& sub);
  ~SubscriptionSigner();
  SubscriptionSigner(SubscriptionSigner&&) noexcept;
  SubscriptionSigner& operator=(SubscriptionSigner&&) noexcept;

  // Appends the signature header(s) of one attempt: `webhook-signature` for the standard
  // scheme, only the subscription's signature_header (default X-Webhook-Signature) for the hex
  // scheme. While `now < previous_secret_expires_at`, the previous secret also signs (standard)
  // or signs instead of the new one (hex).
  void append_headers(std::string_view event_id, std::int64_t timestamp_s, std::string_view body, UnixMillis now,
                      HeaderList& out) const;
  // Whether `sub` still signs as this signer does (same secrets, scheme and header).
  bool signs_for(const Subscription& sub) const;

 private:
  struct Keys;
  Subscription settings_;  // only the signing fields are used
  std::unique_ptr<Keys> keys_;
};

}  // namespace relay
