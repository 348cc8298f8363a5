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
#include "relay/core/logger.h"
#include "relay/delivery/egress_thread.h"

namespace relay::cluster {

struct EtcdOptions {
  std::vector<std::string> endpoints;               // base URLs: "http://10.0.0.5:2379"
  std::chrono::milliseconds request_timeout{2000};  // --cluster-timeout, per endpoint tried
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
  // POSTs `body` to `path` (a literal) with failover; the answer's body when etcd answered 2xx.
  // `streaming`: the path is a streaming call, whose errors come as a 200 with {"error": ...}.
  boost::asio::awaitable<Result<std::string>> call(std::string_view path, std::string body, bool streaming);

  boost::asio::io_context& io_;
  const std::chrono::milliseconds timeout_;
  std::shared_ptr<EtcdEndpoints> endpoints_;
  EgressThread egress_;
};

}  // namespace relay::cluster
