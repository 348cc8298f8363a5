#include "relay/delivery/signature.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <iterator>
#include <memory>

#include <boost/algorithm/hex.hpp>

#include "relay/core/base64.h"

namespace relay {

namespace {

constexpr std::string_view kSecretPrefix = "whsec_";
constexpr std::size_t kSecretBytes = 32;
// Subscription's default; repeated here so that an empty configured name never yields a
// nameless header.
constexpr std::string_view kDefaultHexHeader = "X-Webhook-Signature";

using Digest = std::array<unsigned char, 32>;

struct MacDeleter {
  void operator()(EVP_MAC* mac) const { EVP_MAC_free(mac); }
  void operator()(EVP_MAC_CTX* ctx) const { EVP_MAC_CTX_free(ctx); }
};

// The HMAC implementation, looked up once: EVP_MAC_fetch takes a lock and searches the provider
// store, which cost a third of each signature. A fetched EVP_MAC is immutable and thread-safe.
EVP_MAC* hmac_algorithm() {
  static const std::unique_ptr<EVP_MAC, MacDeleter> mac(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
  return mac.get();
}

using MacContext = std::unique_ptr<EVP_MAC_CTX, MacDeleter>;

// An HMAC-SHA256 context with its key set; nullptr when OpenSSL refuses.
MacContext keyed_hmac(std::string_view key) {
  EVP_MAC* mac = hmac_algorithm();
  if (mac == nullptr) return nullptr;
  MacContext ctx(EVP_MAC_CTX_new(mac));
  if (!ctx) return nullptr;
  char digest_name[] = "SHA256";
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
      OSSL_PARAM_construct_end(),
  };
  // A null key pointer means "keep the previous key" to EVP_MAC_init, so an empty key must
  // still point somewhere.
  const auto* key_data = reinterpret_cast<const unsigned char*>(key.empty() ? "" : key.data());
  if (EVP_MAC_init(ctx.get(), key_data, key.size(), params) != 1) return nullptr;
  return ctx;
}

// HMAC over the concatenation of `parts`, fed piecewise so that a large body is not copied just
// to prepend the id and timestamp. `keyed` is duplicated, so it stays ready for the next call.
std::optional<Digest> hmac_sha256(const EVP_MAC_CTX& keyed, std::initializer_list<std::string_view> parts) {
  MacContext ctx(EVP_MAC_CTX_dup(&keyed));
  if (!ctx) return std::nullopt;
  for (std::string_view part : parts) {
    if (EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(part.data()), part.size()) != 1) {
      return std::nullopt;
    }
  }
  Digest digest{};
  std::size_t length = 0;
  if (EVP_MAC_final(ctx.get(), digest.data(), &length, digest.size()) != 1 || length != digest.size()) {
    return std::nullopt;
  }
  return digest;
}

// The key a secret signs with under `scheme`: standard decodes "whsec_" secrets; the hex
// scheme keys with the secret's raw bytes.
MacContext signing_key(SignatureScheme scheme, std::string_view secret) {
  if (scheme == SignatureScheme::hmac_sha256_hex) return keyed_hmac(secret);
  const std::optional<std::string> key = secret_key_bytes(secret);
  return key ? keyed_hmac(*key) : nullptr;
}

std::string standard_value(const EVP_MAC_CTX& key, std::string_view msg_id, std::int64_t timestamp_s,
                           std::string_view body) {
  const std::string timestamp = std::to_string(timestamp_s);
  const std::optional<Digest> digest = hmac_sha256(key, {msg_id, ".", timestamp, ".", body});
  if (!digest) return {};
  return "v1," + base64_encode(std::string_view(reinterpret_cast<const char*>(digest->data()), digest->size()));
}

std::string hex_value(const EVP_MAC_CTX& key, std::string_view body) {
  const std::optional<Digest> digest = hmac_sha256(key, {body});
  if (!digest) return {};
  std::string hex;
  hex.reserve(2 * digest->size());
  boost::algorithm::hex_lower(digest->begin(), digest->end(), std::back_inserter(hex));
  return hex;
}

}  // namespace

std::string generate_secret() {
  std::array<unsigned char, kSecretBytes> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
    // Only possible when the OS cannot seed OpenSSL's generator; a guessable secret would be
    // worse than stopping.
    std::fputs("relay: RAND_bytes failed, cannot generate a secret\n", stderr);
    std::abort();
  }
  return std::string(kSecretPrefix) +
         base64_encode(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

std::optional<std::string> secret_key_bytes(std::string_view secret) {
  std::optional<std::string> key;
  if (secret.starts_with(kSecretPrefix)) {
    key = base64_decode_canonical(secret.substr(kSecretPrefix.size()));
  } else {
    key = std::string(secret);
  }
  if (key && key->empty()) return std::nullopt;
  return key;
}

struct SubscriptionSigner::Keys {
  MacContext current;
  MacContext previous;
};

SubscriptionSigner::SubscriptionSigner(const Subscription& sub) : keys_(std::make_unique<Keys>()) {
  settings_.signature_scheme = sub.signature_scheme;
  settings_.signature_header = sub.signature_header;
  settings_.secret = sub.secret;
  settings_.previous_secret = sub.previous_secret;
  settings_.previous_secret_expires_at = sub.previous_secret_expires_at;
  keys_->current = signing_key(sub.signature_scheme, sub.secret);
  if (!sub.previous_secret.empty()) keys_->previous = signing_key(sub.signature_scheme, sub.previous_secret);
}

SubscriptionSigner::~SubscriptionSigner() = default;
SubscriptionSigner::SubscriptionSigner(SubscriptionSigner&&) noexcept = default;
SubscriptionSigner& SubscriptionSigner::operator=(SubscriptionSigner&&) noexcept = default;

bool SubscriptionSigner::signs_for(const Subscription& sub) const {
  return sub.signature_scheme == settings_.signature_scheme && sub.secret == settings_.secret &&
         sub.previous_secret == settings_.previous_secret &&
         sub.previous_secret_expires_at == settings_.previous_secret_expires_at &&
         sub.signature_header == settings_.signature_header;
}

void SubscriptionSigner::append_headers(std::string_view event_id, std::int64_t timestamp_s, std::string_view body,
                                        UnixMillis now, HeaderList& out) const {
  const bool rotating = keys_->previous && now < settings_.previous_secret_expires_at;
  if (settings_.signature_scheme == SignatureScheme::hmac_sha256_hex) {
    // One value, compared whole by its receivers: the old secret's until the grace period ends.
    const MacContext& key = rotating ? keys_->previous : keys_->current;
    std::string value = key ? hex_value(*key, body) : std::string();
    // No usable secret: sending no signature lets the receiver reject the delivery outright.
    if (value.empty()) return;
    out.emplace_back(settings_.signature_header.empty() ? std::string(kDefaultHexHeader) : settings_.signature_header,
                     std::move(value));
    return;
  }
  std::string value = keys_->current ? standard_value(*keys_->current, event_id, timestamp_s, body) : std::string();
  if (rotating) {
    const std::string previous = standard_value(*keys_->previous, event_id, timestamp_s, body);
    if (!previous.empty()) {
      if (!value.empty()) value += ' ';
      value += previous;
    }
  }
  if (value.empty()) return;
  out.emplace_back("webhook-signature", std::move(value));
}

}  // namespace relay
