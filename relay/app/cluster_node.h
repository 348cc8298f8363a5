#pragma once
// ClusterNode: a shard's cluster parts (spec section 7, docs/cluster.md), built and started in
// the order a shard's start needs, and ended on shutdown:
//
//   constructor  the store's shard identity checked against --shard, the shard number from etcd
//                (or from the data directory when etcd does not answer), claimed in the store;
//                nothing may make an id before. Throws ConfigError (startup only).
//   start()      the subscription mirror follows etcd, the shard joins the live set, and the
//                scheduler and metrics follow the live shards and etcd's reachability. It
//                returns once the shard has read the live shards and the subscriptions from
//                etcd (at most --cluster-timeout; not at all when etcd did not answer the
//                constructor): the scheduler starts after it, so that a shard that starts never
//                delivers with subscriptions deleted or disabled while it was away, nor with the
//                whole of a limit the live shards split.
//   leave()      SIGTERM: the shard leaves the live set at once (its lease revoked).
//   finish()     after the io_context stopped: the background coroutines end.
//
// It owns the etcd client, the shard directory, the mirror, the subscription writes through
// etcd, and what the API's cluster layer needs (the cluster view and the peer client).
//
// Threading: the io_context's thread.

#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <string>

#include "metrics/relay_metrics.h"
#include "relay/cluster/cluster_view.h"
#include "relay/cluster/directory_view.h"
#include "relay/cluster/egress_peer_client.h"
#include "relay/cluster/etcd_cluster_store.h"
#include "relay/cluster/mirrored_subscription_writes.h"
#include "relay/cluster/shard_directory.h"
#include "relay/cluster/subscription_mirror.h"
#include "relay/cluster/subscription_writes.h"
#include "relay/config/config.h"
#include "relay/core/clock.h"
#include "relay/core/logger.h"
#include "relay/core/periodic_task.h"
#include "storage/commit_pipeline.h"
#include "storage/failure_streaks.h"
#include "storage/store.h"

namespace relay {

class ClusterNode {
 public:
  struct Hooks {
    // A subscription changed on this shard (from etcd): created or changed, or removed.
    std::function<void(const std::string& id, bool removed)> subscription_changed;
    // The number of live shards changed (this one included).
    std::function<void(std::size_t live)> live_shards;
  };

  ClusterNode(boost::asio::io_context& io, const Config& config, Store& store, CommitPipeline& pipeline,
              SubscriptionRegistry& registry, FailureStreaks& streaks, const Clock& clock, Logger& logger,
              RelayMetrics& metrics);
  ~ClusterNode();
  ClusterNode(const ClusterNode&) = delete;
  ClusterNode& operator=(const ClusterNode&) = delete;

  void start(Hooks hooks);
  void leave();
  // Runs `io` (stopped) until the background coroutines have ended, for at most the cluster
  // timeout and a second.
  void finish();

  relay::SubscriptionWrites& subscription_writes() { return writes_; }
  const cluster::ClusterView& view() const { return view_; }
  cluster::PeerClient& peers() { return peers_; }
  // Writes `change` to the subscription in etcd in the background, retrying while etcd does
  // not answer (automatic disabling: the change must reach every shard).
  void write_in_background(std::string subscription_id, relay::SubscriptionWrites::Change change);

 private:
  void publish_state();
  // Runs the io_context until the directory and the mirror have read etcd once (start()).
  void await_first_view();

  boost::asio::io_context& io_;
  const Config& config_;
  Logger& logger_;
  RelayMetrics& metrics_;
  cluster::EtcdClusterStore etcd_;
  cluster::ShardDirectory directory_;
  Hooks hooks_;
  cluster::SubscriptionMirror mirror_;
  cluster::SubscriptionWrites etcd_writes_;
  cluster::MirroredSubscriptionWrites writes_;
  cluster::DirectoryView view_;
  cluster::EgressPeerClient peers_;
  PeriodicTask reachability_;  // relay_cluster_etcd_up, every second
  int background_ = 0;  // write_in_background coroutines running
  bool stopped_ = false;
  bool etcd_answered_ = false;  // the constructor had the shard number from etcd
};

}  // namespace relay
