#pragma once
// SubscriptionMirror: keeps this shard's subscriptions (its RocksDB family and the in-memory
// registry) equal to etcd's P + "subscriptions/" (docs/cluster.md, "The subscription mirror").
//
// The store holds, with its subscriptions, the etcd revision they reflect (written in the same
// batch: storage/subscription_sync.h). At every start, a new shard's or a restart, the mirror
// reads the whole prefix at revision R and makes the store equal to it in one commit (local
// subscriptions absent from etcd are deleted) together with R: a watch resumed from the stored
// revision could not tell when it has caught up with what changed while the shard was away.
// Unchanged subscriptions are not written again. Then it watches from R + 1, each batch of
// changes applied in one commit with its revision. A compaction that passed the watch's
// revision (the watch reconnected after etcd compacted) makes the mirror read everything
// again. The stored revision serves a shard that starts while etcd is out of reach: it names
// what the stored subscriptions reflect until the first read. Each commit updates the
// registry from the writer thread once durable (as the API does: storage/async_commit.h), then
// the change hook is called per subscription that actually changed (the scheduler's
// subscription_changed, the metrics).
//
// While etcd does not answer, the shard keeps the subscriptions it has (the registry was built
// from RocksDB at startup) and the mirror retries in the background; the watch resumes after the
// last revision it delivered, so nothing is missed. A value that does not decode as a
// subscription record is logged once and skipped (the local copy, if any, stays).
//
// Read-your-writes: a write through etcd (subscription_writes.h) answers its revision;
// wait_applied(revision) returns once this shard's registry reflects it.
//
// Threading: everything on the executor's thread; registry changes on the writer thread.
// stop(), then run the io_context until idle() before destroying the mirror.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <set>
#include <string>

#include "relay/cluster/cluster_keys.h"
#include "relay/cluster/cluster_store.h"
#include "relay/core/logger.h"
#include "relay/subscriptions/subscription_registry.h"
#include "storage/commit_pipeline.h"
#include "storage/failure_streaks.h"
#include "storage/store.h"
#include "storage/subscription_sync.h"

namespace relay::cluster {

struct SubscriptionMirrorOptions {
  std::string prefix = "/relay/";               // --cluster-prefix
  std::chrono::milliseconds retry_delay{1000};  // after etcd did not answer or a commit failed
};

class SubscriptionMirror {
 public:
  // A subscription changed on this shard, already in the registry: stored anew (created or
  // changed) or removed. Called on the executor.
  using ChangeHook = std::function<void(const std::string& id, bool removed)>;

  // `streaks` is the writer thread's (shared with the scheduler's commands): a subscription
  // removed or enabled again loses its failure streak in the commit that applies the change.
  SubscriptionMirror(boost::asio::any_io_executor executor, ClusterStore& cluster, Store& store,
                     CommitPipeline& pipeline, SubscriptionRegistry& registry, FailureStreaks& streaks, Logger& logger,
                     SubscriptionMirrorOptions options, ChangeHook on_change);
  ~SubscriptionMirror();
  SubscriptionMirror(const SubscriptionMirror&) = delete;
  SubscriptionMirror& operator=(const SubscriptionMirror&) = delete;

  // Reads the stored revision (startup: a point read of RocksDB) and starts following etcd.
  void start();
  void stop();
  bool idle() const { return running_ == 0; }

  // The etcd revision the store and registry reflect (0: none yet).
  std::int64_t applied_revision() const { return applied_; }
  // Following etcd: a full read was applied since start(). Until then the shard serves with the
  // subscriptions it had (ClusterNode::start waits for this, up to --cluster-timeout, before the
  // scheduler starts).
  bool synced() const { return synced_; }
  // True once applied_revision() >= `revision`; false after `timeout` (or stop()).
  boost::asio::awaitable<bool> wait_applied(std::int64_t revision, std::chrono::milliseconds timeout);

 private:
  struct Waiter {
    std::int64_t revision = 0;
    boost::asio::steady_timer* timer = nullptr;
  };

  boost::asio::awaitable<void> run();
  // One full read of etcd applied in one commit; false when etcd or the store refused.
  boost::asio::awaitable<bool> reload();
  // Follows the watch from applied_ + 1 until a compaction (true: reload) or stop().
  boost::asio::awaitable<bool> follow();
  // Commits `sync_command` (filling `result`), updates the registry, then the revision, hooks
  // and waiters. False when the store refused the commit.
  boost::asio::awaitable<bool> commit(const CommitPipeline::Command& sync_command,
                                      const std::shared_ptr<mutations::SubscriptionSync>& result,
                                      std::int64_t revision);
  boost::asio::awaitable<void> pause(std::chrono::milliseconds delay);
  // The subscription in an etcd value, or nullopt (logged once per key) when it is none.
  std::optional<Subscription> decode(const KeyValue& kv);
  std::optional<std::string> id_of(const std::string& key);
  void advance(std::int64_t revision);
  // Logged once per outage.
  void unreachable(const Error& error);
  void reachable();
  void wake() { wake_.cancel(); }

  boost::asio::any_io_executor executor_;
  ClusterStore& cluster_;
  Store& store_;
  CommitPipeline& pipeline_;
  SubscriptionRegistry& registry_;
  FailureStreaks& streaks_;
  Logger& logger_;
  SubscriptionMirrorOptions options_;
  ChangeHook on_change_;
  ClusterKeys keys_;

  std::int64_t applied_ = 0;
  bool synced_ = false;
  bool stopped_ = false;
  int running_ = 0;
  boost::asio::steady_timer wake_;  // the run loop's pause, cancelled to wake it
  std::unique_ptr<WatchHandle> watch_;
  std::deque<WatchBatch> pending_;  // delivered by the watch, not applied yet
  std::list<Waiter> waiters_;
  std::set<std::string> unreadable_logged_;  // keys logged as undecodable
  bool unreachable_logged_ = false;
};

}  // namespace relay::cluster
