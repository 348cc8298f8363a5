#pragma once
// FakeClusterStore: relay/cluster/cluster_store.h in memory, with etcd v3's semantics, so that
// the cluster logic (shard directory, subscription mirror, subscription writes) is unit-tested
// without etcd. What it keeps of etcd:
// - one revision counter, starting at 1, that every change increments once (a transaction's
//   operations share one revision; a transaction or revocation that changes nothing does not
//   move it); per key its create_revision and mod_revision;
// - transactions compare mod_revision (0: the key is absent), and all-or-nothing;
// - leases with a ttl on the injected Clock: they expire when a test says so (expire_lease), or
//   once the clock passed their deadline without a keep_alive (checked at every call and by
//   expire_due_leases); expiring deletes their keys at one new revision;
// - watches replay every change at or after their start revision (0: from now), one batch per
//   revision in revision order, always through the executor (asio::post, never inline from the
//   change that caused them); a start revision below the compaction point gets one `compacted`
//   batch and the watch ends;
// - set_reachable(false): every call answers Errc::unavailable and watches pause; when it is
//   true again they resume where they stopped, losing nothing (or get `compacted` if a
//   compaction passed them meanwhile), as EtcdClusterStore's reconnects do.
// another_client() makes a second client of the same fake etcd (keys, revisions and leases
// shared; reachability and watches its own), for several shards of one cluster in one test.
//
// Threading: like ClusterStore, everything on the executor's thread; the test controls too.

#include <boost/asio/any_io_executor.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "relay/cluster/cluster_store.h"
#include "relay/core/clock.h"

namespace relay::test {

class FakeClusterStore final : public cluster::ClusterStore {
 public:
  FakeClusterStore(boost::asio::any_io_executor executor, const Clock& clock);
  ~FakeClusterStore() override;

  // Another client of the same etcd, on the same executor.
  std::unique_ptr<FakeClusterStore> another_client() const;

  // ClusterStore
  boost::asio::awaitable<Result<cluster::RangeResult>> range(std::string key, bool prefix) override;
  boost::asio::awaitable<Result<cluster::TxnResult>> commit(cluster::Txn txn) override;
  boost::asio::awaitable<Result<std::int64_t>> grant_lease(std::chrono::seconds ttl) override;
  boost::asio::awaitable<Status> keep_alive(std::int64_t lease) override;
  boost::asio::awaitable<Status> revoke_lease(std::int64_t lease) override;
  std::unique_ptr<cluster::WatchHandle> watch(std::string prefix, std::int64_t from_revision,
                                              WatchCallback on_batch) override;
  bool reachable() const override;

  // What a test controls and inspects, directly (no suspension, whatever the reachability: as
  // another etcd client would see it).
  void set_reachable(bool reachable);
  // As if `lease` was not kept alive for its ttl: its keys go. False when there is no such lease.
  bool expire_lease(std::int64_t lease);
  // Expires the leases whose deadline the clock has passed.
  void expire_due_leases();
  // Forgets the changes before `revision`: watches from an older revision get `compacted`.
  void compact(std::int64_t revision);
  std::int64_t revision() const;
  // A put or delete by another client; the revision of the change (0: a delete of nothing).
  std::int64_t put(const std::string& key, const std::string& value, std::int64_t lease = 0);
  std::int64_t erase(const std::string& key);
  std::optional<cluster::KeyValue> get(const std::string& key) const;
  bool lease_exists(std::int64_t lease) const;
  // When the lease runs out on the clock unless kept alive; nullopt when it is gone.
  std::optional<UnixMillis> lease_deadline(std::int64_t lease) const;
  std::size_t lease_count() const;
  std::uint64_t keep_alives() const;     // successful keep_alive calls, all clients
  std::size_t active_watches() const;    // this client's

 private:
  struct Data;
  struct Client;
  struct WatchState;
  class Handle;

  FakeClusterStore(std::shared_ptr<Data> data, boost::asio::any_io_executor executor);
  // Lets the other coroutines and posted watch deliveries run before the call is answered, as
  // a network round trip would.
  boost::asio::awaitable<void> round_trip() const;
  static void schedule(const std::shared_ptr<WatchState>& watch);
  static void deliver(const std::shared_ptr<WatchState>& watch);

  std::shared_ptr<Data> data_;
  std::shared_ptr<Client> client_;
};

}  // namespace relay::test
