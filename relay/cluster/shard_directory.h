#pragma once
// ShardDirectory: one shard's part in the cluster's shard registry in etcd (docs/cluster.md,
// "Shard numbers" and "Liveness"), and its view of the other shards.
//
// - allocate(): the shard's number, allocated once in etcd and kept forever for its name; the
//   number is the instance part of every id the shard makes (Store::claim_shard).
// - join(): registers the shard as live (shards/live/<name> on a 10 s lease) and keeps it so,
//   renewing the lease every ~3 s; a lease that expired anyway (etcd unreachable for longer
//   than its ttl) is granted again and the key put again. While etcd does not answer, the shard
//   keeps trying and keeps counting itself live: it still stores and delivers what it receives.
//   leave() revokes the lease, so the others see the shard go at once rather than 10 s later.
// - the view: the registry is read once and then watched from the read's revision + 1 (read
//   again after a compaction; through an outage the watch resumes by itself and the view stays
//   as it was): the live shards sorted by name, lookups by name and number, the number of shards
//   known but not live, and a change callback.
//
// Threading: everything on the executor's thread (the one io_context). Coroutines run in the
// background after join(); stop() ends them, and the directory must outlive the io_context's run
// until idle() (as JobRunner does).

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "relay/cluster/cluster_keys.h"
#include "relay/cluster/cluster_store.h"
#include "relay/core/clock.h"
#include "relay/core/logger.h"
#include "relay/core/result.h"

namespace relay::cluster {

struct ShardDirectoryOptions {
  std::string prefix = "/relay/";  // --cluster-prefix
  std::string name;                // --shard
  std::chrono::seconds lease_ttl{10};
  std::chrono::milliseconds keep_alive_interval{3000};
  std::chrono::milliseconds retry_delay{1000};  // after etcd did not answer
  int allocate_attempts = 64;                   // lost races before allocate() gives up
};

struct ShardCounts {
  std::size_t live = 0;  // relay_cluster_shards{state="live"}
  std::size_t down = 0;  // known (a name with a number) but not live: {state="down"}
};

class ShardDirectory {
 public:
  using ChangeCallback = std::function<void()>;

  ShardDirectory(boost::asio::any_io_executor executor, ClusterStore& store, const Clock& clock, Logger& logger,
                 ShardDirectoryOptions options);
  ~ShardDirectory();
  ShardDirectory(const ShardDirectory&) = delete;
  ShardDirectory& operator=(const ShardDirectory&) = delete;

  // The shard's number: names/<name>'s if it exists; else the smallest number >= 1 that no name
  // holds, taken with its name in one transaction (names/<name> and numbers/<N> both absent)
  // and tried again with the next candidate when another shard took it first. `known`: the
  // number the data directory already holds (Store::shard()); etcd must agree (a name it does
  // not know takes that number again, if no other name holds it), or conflict. unavailable when
  // etcd does not answer; invalid_field for a bad name.
  boost::asio::awaitable<Result<std::uint32_t>> allocate(std::uint32_t known = 0);
  // The number when etcd cannot be asked at startup but the data directory holds it.
  void set_number(std::uint32_t number);
  std::uint32_t number() const { return self_.number; }

  // Registers the shard as live at `advertise` and keeps it so until leave() or stop(); starts
  // watching the registry. Answers the first registration's status; on failure the registration
  // is retried in the background, every retry_delay. Needs the number (allocate, set_number).
  boost::asio::awaitable<Status> join(std::string advertise);
  // Graceful end: the shard leaves the live set now (its lease revoked; one try).
  boost::asio::awaitable<void> leave();
  // Ends the background coroutines without revoking anything (the lease runs out by itself).
  void stop();
  // No coroutine of the directory is running (after stop(): it may be destroyed).
  bool idle() const { return running_ == 0; }

  // The live shards, sorted by name. This shard is among them from join() to leave(), whatever
  // etcd says meanwhile (see above).
  const std::vector<LiveShard>& live() const { return view_; }
  std::vector<std::string> live_names() const;
  std::optional<LiveShard> find(std::string_view name) const;
  std::optional<LiveShard> find_by_number(std::uint32_t number) const;
  const LiveShard& self() const { return self_; }
  ShardCounts counts() const;
  // Every shard name with a number, live or not (from the registry as watched).
  const std::map<std::string, std::uint32_t, std::less<>>& numbers() const { return names_; }
  // The registry has been read at least once.
  bool loaded() const { return loaded_; }
  // Called on the executor after every change of live() or counts().
  void on_change(ChangeCallback callback) { on_change_ = std::move(callback); }

 private:
  boost::asio::awaitable<Status> register_live();
  boost::asio::awaitable<void> keep_live(std::uint64_t generation);
  boost::asio::awaitable<void> watch_registry();
  boost::asio::awaitable<void> pause(boost::asio::steady_timer& timer, std::chrono::milliseconds delay);
  void spawn(boost::asio::awaitable<void> task);
  void load(const std::vector<KeyValue>& kvs);
  void apply(const WatchBatch& batch);
  void apply(const KeyValue& kv, bool deleted);
  // Rebuilds view_ from the watched entries and self_; calls on_change_ when it changed.
  void publish();

  boost::asio::any_io_executor executor_;
  ClusterStore& store_;
  const Clock& clock_;
  Logger& logger_;
  ShardDirectoryOptions options_;
  ClusterKeys keys_;

  LiveShard self_;
  bool joined_ = false;
  bool stopped_ = false;
  bool watching_ = false;
  std::int64_t lease_ = 0;  // 0: not registered
  std::uint64_t keeper_generation_ = 0;
  int running_ = 0;
  boost::asio::steady_timer keeper_timer_;
  boost::asio::steady_timer watcher_timer_;  // also the watcher's wake-up (cancelled)
  bool reload_ = false;                      // the watch reported a compaction
  std::unique_ptr<WatchHandle> watch_;

  bool loaded_ = false;
  std::map<std::string, LiveShard, std::less<>> watched_live_;
  std::map<std::string, std::uint32_t, std::less<>> names_;  // every name with a number
  std::vector<LiveShard> view_;
  std::size_t down_ = 0;
  ChangeCallback on_change_;
};

}  // namespace relay::cluster
