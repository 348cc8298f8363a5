#include "tests/support/webhook_verifier.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace relay::test {

std::string base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string unbase64(std::string_view text) {
  std::string out(3 * (text.size() / 4), '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (n < 0) return {};
  out.resize(static_cast<std::size_t>(n));
  // EVP_DecodeBlock counts padding characters as zero bytes.
  for (auto it = text.rbegin(); it != text.rend() && *it == '='; ++it) out.pop_back();
  return out;
}

std::string hmac_sha256(std::string_view key, std::string_view message) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(message.data()),
       message.size(), mac, &length);
  return std::string(reinterpret_cast<const char*>(mac), length);
}

std::string hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (const unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

std::string standard_key(std::string_view secret) {
  return secret.starts_with("whsec_") ? unbase64(secret.substr(6)) : std::string(secret);
}

std::string standard_signature(std::string_view secret, std::string_view id, std::string_view timestamp,
                               std::string_view body) {
  std::string signed_text;
  signed_text.append(id).append(".").append(timestamp).append(".").append(body);
  return "v1," + base64(hmac_sha256(standard_key(secret), signed_text));
}

std::string hex_signature(std::string_view secret, std::string_view body) { return hex(hmac_sha256(secret, body)); }

}  // namespace relay::test
