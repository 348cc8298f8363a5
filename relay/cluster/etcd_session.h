#pragma once
// How relay talks to a secured etcd (docs/cluster.md, "A secured etcd"): the TLS files that
// verify etcd and identify relay (--cluster-etcd-ca, -cert, -key), etcd's user credentials
// (--cluster-etcd-user, --cluster-etcd-password-file), and EtcdSession, the authentication
// token that EtcdClusterStore and its watch threads share.
//
// etcd's tokens expire (--auth-token-ttl after their last use, or a JWT's lifetime) and are
// invalidated when the user's password or the auth store changes. Whoever sees a token refused
// (a call answered "invalid auth token", a watch cancelled for it) says so with refused(); the
// next call or watch attempt authenticates again and set()s the new token for everyone.
//
// Thread-safe: the store's io thread and every watch thread use it.

#include <mutex>
#include <optional>
#include <string>
#include <utility>

namespace relay::cluster {

struct EtcdTls {
  std::string ca_file;    // CAs that etcd's server certificate must chain to; empty: the system's
  std::string cert_file;  // client certificate (PEM) for etcd's --client-cert-auth; empty: none
  std::string key_file;   // its private key (PEM)
};

struct EtcdCredentials {
  std::string user;  // empty: relay does not authenticate
  std::string password;
};

class EtcdSession {
 public:
  explicit EtcdSession(EtcdCredentials credentials) : credentials_(std::move(credentials)) {}

  const EtcdCredentials& credentials() const { return credentials_; }
  bool authenticates() const { return !credentials_.user.empty(); }

  // True when a call must authenticate before it is sent: credentials are configured and there
  // is no token (none yet, or the last one was refused).
  bool needs_token() const {
    std::lock_guard lock(mutex_);
    return authenticates() && !token_;
  }
  // The token to send in the Authorization header; empty for none.
  std::string token() const {
    std::lock_guard lock(mutex_);
    return token_.value_or(std::string());
  }
  // A fresh token; "" when etcd has authentication off (calls then go without one until etcd
  // asks for it).
  void set(std::string token) {
    std::lock_guard lock(mutex_);
    token_ = std::move(token);
  }
  // etcd refused `stale` (or asked for a token when none was sent): forgotten, unless another
  // thread has already replaced it.
  void refused(const std::string& stale) {
    std::lock_guard lock(mutex_);
    if (token_ && *token_ == stale) token_.reset();
  }

 private:
  const EtcdCredentials credentials_;
  mutable std::mutex mutex_;
  std::optional<std::string> token_;
};

}  // namespace relay::cluster
