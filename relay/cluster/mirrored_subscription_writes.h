#pragma once
// MirroredSubscriptionWrites: the API's SubscriptionWrites (relay/subscriptions/
// subscription_writes.h) in cluster mode. A change is written to etcd with compare-and-swap
// (cluster::SubscriptionWrites) and answered once this shard's SubscriptionMirror has applied
// the revision it made, so that a read through this shard right after the write sees it (the
// other shards follow within their watch's delay). The scheduler and the metrics hear of the
// change from the mirror, on every shard alike.
//
// etcd out of reach: the write answers 503 (Errc::unavailable) and nothing changed. A write
// that etcd took but the mirror has not applied within `apply_timeout` still answers success
// (the change is made and every shard will apply it); this is logged.
//
// Threading: the io_context's thread.

#include <chrono>

#include "relay/cluster/subscription_mirror.h"
#include "relay/cluster/subscription_writes.h"
#include "relay/core/logger.h"
#include "relay/subscriptions/subscription_writes.h"

namespace relay::cluster {

class MirroredSubscriptionWrites final : public relay::SubscriptionWrites {
 public:
  MirroredSubscriptionWrites(cluster::SubscriptionWrites& etcd, SubscriptionMirror& mirror, Logger& logger,
                             std::chrono::milliseconds apply_timeout)
      : etcd_(etcd), mirror_(mirror), logger_(logger), apply_timeout_(apply_timeout) {}

  boost::asio::awaitable<Result<Subscription>> create(Subscription subscription) override;
  boost::asio::awaitable<Result<Subscription>> update(std::string id, Change change) override;
  boost::asio::awaitable<Status> remove(std::string id) override;

 private:
  boost::asio::awaitable<void> applied(std::int64_t revision, std::string id);

  cluster::SubscriptionWrites& etcd_;
  SubscriptionMirror& mirror_;
  Logger& logger_;
  std::chrono::milliseconds apply_timeout_;
};

}  // namespace relay::cluster
