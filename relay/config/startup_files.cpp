#include "relay/config/startup_files.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "relay/config/config.h"

namespace relay {
namespace {

// Certificates, keys and passwords are small; a larger file is the wrong file.
constexpr long kMaxFileBytes = 1 << 20;

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct FileClose {
  void operator()(std::FILE* file) const { std::fclose(file); }
};

[[noreturn]] void refuse(const std::string& flag, const std::string& path, const std::string& why) {
  ERR_clear_error();  // what OpenSSL queued about the file is said here
  throw ConfigError("--" + flag + " " + path + ": " + why);
}

std::string read_file(const std::string& flag, const std::string& path) {
  std::unique_ptr<std::FILE, FileClose> file(std::fopen(path.c_str(), "rb"));
  if (file == nullptr) refuse(flag, path, std::string("cannot read it: ") + std::strerror(errno));
  std::string text;
  char buffer[8192];
  for (;;) {
    const std::size_t n = std::fread(buffer, 1, sizeof buffer, file.get());
    text.append(buffer, n);
    if (text.size() > static_cast<std::size_t>(kMaxFileBytes)) refuse(flag, path, "over 1 MiB, not a PEM file");
    if (n < sizeof buffer) break;
  }
  if (std::ferror(file.get()) != 0) refuse(flag, path, std::string("cannot read it: ") + std::strerror(errno));
  return text;
}

std::unique_ptr<BIO, BioFree> memory_bio(const std::string& text) {
  return std::unique_ptr<BIO, BioFree>(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// Never prompts for a passphrase: an encrypted key is refused instead.
int no_passphrase(char*, int, int, void*) { return -1; }

std::unique_ptr<X509, X509Free> first_certificate(const std::string& flag, const std::string& path) {
  const std::string text = read_file(flag, path);
  const auto bio = memory_bio(text);
  std::unique_ptr<X509, X509Free> cert(
      bio == nullptr ? nullptr : PEM_read_bio_X509(bio.get(), nullptr, &no_passphrase, nullptr));
  if (cert == nullptr) refuse(flag, path, "holds no PEM certificate");
  return cert;
}

}  // namespace

void check_pem_certificates(const std::string& flag, const std::string& path) { first_certificate(flag, path); }

void check_pem_key_pair(const std::string& cert_flag, const std::string& cert_path, const std::string& key_flag,
                        const std::string& key_path) {
  const std::unique_ptr<X509, X509Free> cert = first_certificate(cert_flag, cert_path);
  const std::string text = read_file(key_flag, key_path);
  const auto bio = memory_bio(text);
  const std::unique_ptr<EVP_PKEY, KeyFree> key(
      bio == nullptr ? nullptr : PEM_read_bio_PrivateKey(bio.get(), nullptr, &no_passphrase, nullptr));
  if (key == nullptr) refuse(key_flag, key_path, "holds no unencrypted PEM private key");
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    refuse(key_flag, key_path, "is not the key of the certificate in --" + cert_flag + " " + cert_path);
  }
}

std::string read_secret_file(const std::string& flag, const std::string& path) {
  std::string text = read_file(flag, path);
  if (text.ends_with('\n')) text.pop_back();
  if (text.ends_with('\r')) text.pop_back();
  if (text.empty()) refuse(flag, path, "is empty");
  return text;
}

}  // namespace relay
