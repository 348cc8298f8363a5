#pragma once
// EtcdClusterStore: ClusterStore over etcd v3's JSON gateway (POST /v3/kv/range, /v3/kv/txn,
// /v3/lease/*, /v3/watch), the production implementation (docs/architecture.md, "etcd client").
//
// Unary calls are HTTP requests through an EgressThread of the store's own (its own curl multi
// handle and thread, answers back on the home io_context), so a slow etcd never blocks the
// home thread. Every watch runs on a thread of its own (EtcdWatch).
//
// Failover: a call goes first to the endpoint that answered last, and on a connect error, a
// timeout or a 5xx answer (etcd's "no leader", "request timed out") to the next, each endpoint
// at most once per call; Errc::unavailable when none answered. Any healthy member serves any
// call: followers forward writes to the leader. A call that timed out may still have been
// applied: commits are meant to be compare-and-swap, so repeating one is refused rather than
// applied twice.
//
// Deadline: request_timeout bounds a whole call, its tries on every endpoint and an
// authentication included. A try may use all the time left for its answer, but connecting
// (TCP and the TLS handshake) gets only its share: the time left divided by the endpoints not
// tried yet, this one included, so that a member that does not accept connections leaves time
// for the others. A try that used up the time ends the call; the next call starts at the
// endpoint after the one that did not answer.
//
// Security (EtcdOptions::tls, ::credentials): https:// endpoints are verified against the CA
// file (or the system's CAs), never without; a client certificate is offered when configured.
// With credentials, a call without a token first authenticates (/v3/auth/authenticate), then
// sends the token in the Authorization header. When etcd refuses the token (expired, invalid),
// the call authenticates once more and is sent again. Credentials etcd refuses make the call
// Errc::unavailable and reachable() false, logged as an error.
//
// Errors: Errc::not_found when etcd says a lease is unknown (keep_alive after expiry, a Put
// with an expired lease), Errc::internal for any other refusal or an answer that makes no
// sense. revoke_lease succeeds when the lease is gone afterwards, including when it already was.

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "relay/cluster/cluster_store.h"
#include "relay/cluster/etcd_endpoints.h"
#include "relay/cluster/etcd_session.h"
#include "relay/core/logger.h"
#include "relay/delivery/egress_thread.h"

namespace relay::cluster {

struct EtcdOptions {
  std::vector<std::string> endpoints;               // base URLs: "http://10.0.0.5:2379", "https://..."
  std::chrono::milliseconds request_timeout{2000};  // --cluster-timeout: a whole call's deadline
  EtcdTls tls;                                      // for https:// endpoints
  EtcdCredentials credentials;                      // empty user: no authentication
};

class EtcdClusterStore final : public ClusterStore {
 public:
  // Throws std::invalid_argument when `options` names no endpoint (a startup error).
  EtcdClusterStore(boost::asio::io_context& io, EtcdOptions options, Logger& logger);
  // Calls still awaiting an answer are abandoned; watches have their own handles.
  ~EtcdClusterStore() override;
  EtcdClusterStore(const EtcdClusterStore&) = delete;
  EtcdClusterStore& operator=(const EtcdClusterStore&) = delete;

  // ClusterStore
  boost::asio::awaitable<Result<RangeResult>> range(std::string key, bool prefix) override;
  boost::asio::awaitable<Result<TxnResult>> commit(Txn txn) override;
  boost::asio::awaitable<Result<std::int64_t>> grant_lease(std::chrono::seconds ttl) override;
  boost::asio::awaitable<Status> keep_alive(std::int64_t lease) override;
  boost::asio::awaitable<Status> revoke_lease(std::int64_t lease) override;
  std::unique_ptr<WatchHandle> watch(std::string prefix, std::int64_t from_revision, WatchCallback on_batch) override;
  bool reachable() const override;

 private:
  using Deadline = std::chrono::steady_clock::time_point;
  struct Sent;

  // POSTs `body` to `path` (a literal) with failover, authenticating when needed; the answer's
  // body when etcd answered 2xx. `streaming`: the path is a streaming call, whose errors come
  // as a 200 with {"error": ...}.
  boost::asio::awaitable<Result<std::string>> call(std::string_view path, std::string body, bool streaming);
  // One pass over the endpoints with `token`, until `deadline`.
  boost::asio::awaitable<Sent> send(std::string_view path, std::shared_ptr<const std::string> body, bool streaming,
                                    const std::string& token, Deadline deadline);
  // Gets a token into the session (or learns that etcd has authentication off).
  boost::asio::awaitable<Status> authenticate(Deadline deadline);

  boost::asio::io_context& io_;
  Logger& logger_;
  const std::chrono::milliseconds timeout_;
  const EtcdTls tls_;
  std::shared_ptr<EtcdEndpoints> endpoints_;
  std::shared_ptr<EtcdSession> session_;
  EgressThread egress_;
};

}  // namespace relay::cluster
