#pragma once
// Files that flags name and relayd reads at startup (TLS material, a password file), checked
// at once so that a wrong file is a clear startup error naming the flag and the file, instead
// of a TLS failure at the first connection or a refusal from the server later.
//
// Each function throws ConfigError.

#include <string>

namespace relay {

// `path` (given as --`flag`) holds at least one PEM certificate, such as a CA bundle.
void check_pem_certificates(const std::string& flag, const std::string& path);

// `cert_path` holds a PEM certificate and `key_path` an unencrypted PEM private key that
// belongs to it (relayd runs unattended: nothing would type a passphrase).
void check_pem_key_pair(const std::string& cert_flag, const std::string& cert_path, const std::string& key_flag,
                        const std::string& key_path);

// The contents of a secret file without its final line break ("echo pw > file"); an empty
// secret is refused.
std::string read_secret_file(const std::string& flag, const std::string& path);

}  // namespace relay
