#pragma once
// EtcdWatch: one ClusterStore watch over etcd's gateway, on a thread of its own.
//
// /v3/watch answers with a response that never ends: one JSON message per line ("created",
// then batches of events, progress notifications, finally "canceled" or an error). The egress
// client keeps whole bodies, so a watch runs its own curl transfer in streaming mode on its own
// thread, and posts each batch of events to the home io_context, where the callback runs.
//
// Reconnection: when the stream ends or cannot be opened, the watch opens it again on the next
// endpoint, from the revision after the last one it delivered, after a pause of 50 ms that
// doubles up to 2 s while attempts fail (no stream, or one etcd cancelled). Requests carry gRPC's
// "hasleader" metadata, so a member that loses its leader (partitioned away) ends the stream
// instead of leaving it silent. TCP keepalive notices a peer that vanished without closing.
// When etcd reports the requested revision compacted, the watch delivers a batch with
// `compacted = true` and ends.
//
// Security: the same TLS files as the store's unary calls, and the session's token in the
// Authorization header. etcd checks the token when a watch is created and cancels it when the
// token is refused; the watch then forgets the token and, before its next attempt,
// authenticates on its own thread (a unary call bounded by `timeout`), so a watch never waits
// for the store's next call to renew the token.
//
// Threading: construct and destroy on the home io_context's thread. Destruction wakes the watch
// thread (curl_multi_wakeup) and joins it; no callback runs after it.

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "relay/cluster/cluster_store.h"
#include "relay/cluster/etcd_endpoints.h"
#include "relay/cluster/etcd_session.h"

namespace relay::cluster {

class EtcdWatch final : public WatchHandle {
 public:
  // `timeout` bounds connecting and the wait for etcd's "created" answer.
  EtcdWatch(boost::asio::io_context& home, std::shared_ptr<EtcdEndpoints> endpoints,
            std::shared_ptr<EtcdSession> session, EtcdTls tls, std::chrono::milliseconds timeout, std::string prefix,
            std::int64_t from_revision, ClusterStore::WatchCallback on_batch);
  ~EtcdWatch() override;
  EtcdWatch(const EtcdWatch&) = delete;
  EtcdWatch& operator=(const EtcdWatch&) = delete;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace relay::cluster
