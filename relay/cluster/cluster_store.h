#pragma once
// ClusterStore: the few etcd v3 operations cluster mode needs (docs/cluster.md), behind one
// small interface so that the cluster logic above it (shard directory, subscription mirror,
// routing) is unit-tested against tests/support/fake_cluster_store.h and runs against etcd's
// JSON gateway (EtcdClusterStore) in production and in the integration tests.
//
// The model is etcd's: a flat, ordered key space of byte strings, one store-wide revision that
// every change increments, per key the revision of its last change (mod_revision), leases that
// delete their keys when they are not kept alive, and watches that replay every change after a
// revision in order. Nothing here decides membership or consensus; etcd does.
//
// Threading: construct, call and destroy on the io_context's thread. Every coroutine resumes
// and every watch callback runs on that io_context. Failures are values (Result), never
// exceptions: Errc::unavailable when no endpoint answered, Errc::internal for an answer that
// makes no sense.

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "relay/core/result.h"

namespace relay::cluster {

struct KeyValue {
  std::string key;
  std::string value;
  std::int64_t create_revision = 0;
  std::int64_t mod_revision = 0;
  std::int64_t lease = 0;  // 0: none
};

struct RangeResult {
  std::vector<KeyValue> kvs;  // in key order
  std::int64_t revision = 0;  // the store's revision when the range was read
};

// A condition of a transaction on one key's mod_revision; 0 means "the key does not exist".
struct Compare {
  std::string key;
  std::int64_t mod_revision = 0;
};
struct Put {
  std::string key;
  std::string value;
  std::int64_t lease = 0;  // 0: none
};
struct Delete {
  std::string key;
};
using Operation = std::variant<Put, Delete>;

// All `compares` hold -> `then` is applied atomically; otherwise nothing changes.
struct Txn {
  std::vector<Compare> compares;
  std::vector<Operation> then;
};
struct TxnResult {
  bool succeeded = false;
  std::int64_t revision = 0;  // the store's revision after the transaction (or when it was refused)
};

struct WatchEvent {
  enum class Kind { put, del };
  Kind kind = Kind::put;
  KeyValue kv;  // for del: key and mod_revision (the deletion's revision) only
};

// One batch of a watch, in revision order. `compacted`: the changes after the requested
// revision are no longer kept (etcd compaction); the watcher must read the range again and
// watch from that read's revision + 1. The watch ends after delivering it.
struct WatchBatch {
  std::vector<WatchEvent> events;
  bool compacted = false;
};

// Ends its watch when destroyed; no callback runs after that.
class WatchHandle {
 public:
  virtual ~WatchHandle() = default;
};

class ClusterStore {
 public:
  using WatchCallback = std::function<void(WatchBatch)>;

  virtual ~ClusterStore() = default;

  // The value of `key`, or with `prefix` every key that starts with it.
  virtual boost::asio::awaitable<Result<RangeResult>> range(std::string key, bool prefix) = 0;

  virtual boost::asio::awaitable<Result<TxnResult>> commit(Txn txn) = 0;

  // A lease of `ttl`; its keys go when it is not kept alive for that long.
  virtual boost::asio::awaitable<Result<std::int64_t>> grant_lease(std::chrono::seconds ttl) = 0;
  // Renews the lease; not_found when it has already expired (its keys are gone).
  virtual boost::asio::awaitable<Status> keep_alive(std::int64_t lease) = 0;
  virtual boost::asio::awaitable<Status> revoke_lease(std::int64_t lease) = 0;

  // Every change of a key under `prefix` with a revision >= `from_revision`, in order, through
  // `on_batch`. The implementation reconnects by itself (resuming after the last revision it
  // delivered) until the handle is destroyed.
  virtual std::unique_ptr<WatchHandle> watch(std::string prefix, std::int64_t from_revision,
                                             WatchCallback on_batch) = 0;

  // Whether the last request or watch connection reached etcd (relay_cluster_etcd_up).
  virtual bool reachable() const = 0;
};

}  // namespace relay::cluster
