#pragma once
// Signatures as a receiver computes them, written here with OpenSSL alone, independently of
// relay's signer: what relay sends must equal what these give.

#include <cstdint>
#include <string>
#include <string_view>

namespace relay::test {

std::string base64(std::string_view bytes);
std::string unbase64(std::string_view text);
std::string hmac_sha256(std::string_view key, std::string_view message);
std::string hex(std::string_view bytes);

// The Standard Webhooks key of a secret: the base64-decoded part after "whsec_", else the raw bytes.
std::string standard_key(std::string_view secret);
// "v1," + base64 HMAC-SHA256 over "{id}.{timestamp}.{body}".
std::string standard_signature(std::string_view secret, std::string_view id, std::string_view timestamp,
                               std::string_view body);
// Lowercase hex HMAC-SHA256 of the body keyed with the secret's raw bytes (scheme hmac-sha256-hex).
std::string hex_signature(std::string_view secret, std::string_view body);

}  // namespace relay::test
