#pragma once
// Base64 (RFC 4648, standard alphabet, padded) over OpenSSL's EVP_EncodeBlock/EVP_DecodeBlock:
// webhook secrets ("whsec_...") and the keys and values of etcd's JSON gateway.

#include <optional>
#include <string>
#include <string_view>

namespace relay {

std::string base64_encode(std::string_view bytes);

// The bytes `text` encodes, or nullopt unless `text` is their one canonical spelling (padded,
// no whitespace, zero bits after the last byte): each value has exactly one accepted form.
std::optional<std::string> base64_decode_canonical(std::string_view text);

}  // namespace relay
