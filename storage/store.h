#pragma once
// relay's RocksDB database: one column family per kind of record (see storage/keys.h for the
// key layout), opened once at startup. Reads are thread-safe; writes go through CommitPipeline
// so that every state change is one atomic WriteBatch and concurrent writers share an fsync.

#include <rocksdb/db.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "relay/core/result.h"

namespace relay {

enum class Family : std::size_t {
  meta,  // RocksDB's default family: instance id and format version
  events,
  deliveries,
  schedule,
  dead_letters,
  completed,
  event_deliveries,
  attempts,
  subscriptions,
  idempotency,
  event_types,  // counters, written with Merge (storage/event_type_merge.h)
  jobs,         // replay and DLQ-retry jobs (storage/job_records.h)
  ordering_queues,  // unfinished deliveries per (subscription, ordering key) (storage/ordering_queue.h)
  failure_streaks,  // since when each failing subscription's attempts all failed (storage/failure_streaks.h)
  count_,
};

struct StoreOptions {
  std::string path;
  bool sync_writes = true;  // --durability fsync
  std::size_t block_cache_bytes = 64 << 20;
};

// The shard a data directory belongs to in cluster mode (docs/cluster.md): its name and the
// number etcd allocated to that name once, which is the instance id of every id made here.
struct ShardIdentity {
  std::string name;
  std::uint32_t number = 0;

  friend bool operator==(const ShardIdentity&, const ShardIdentity&) = default;
};

// What a key-range scan visits: [lower, upper) in key order, or reversed.
struct ScanRange {
  std::string lower;
  std::string upper;  // empty: unbounded
  bool reverse = false;
};

class Store {
 public:
  // Opens (creating if missing) the database; throws std::runtime_error with a clear message.
  static std::unique_ptr<Store> open(const StoreOptions& options);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  rocksdb::DB& db() { return *db_; }
  rocksdb::ColumnFamilyHandle* handle(Family family) const { return handles_[static_cast<std::size_t>(family)]; }
  bool sync_writes() const { return options_.sync_writes; }
  // Part of every id made here: a random number chosen when the database was created, or in
  // cluster mode the shard's number (claim_shard).
  std::uint32_t instance_id() const { return instance_id_; }

  // The shard this data directory belongs to; nullopt when it never joined a cluster. Throws
  // std::runtime_error when the stored identity is unreadable (startup only).
  std::optional<ShardIdentity> shard() const;
  // Binds the data directory to `shard` for good, in one write: its name, its number, and the
  // number as instance_id() from now on. Startup only, before anything makes an id. Claiming the
  // identity already stored does nothing. Throws std::runtime_error with a clear message when
  // the directory belongs to another shard (name or number), or when it was a single-node
  // relay's and holds events, deliveries, jobs or subscriptions: their ids carry its random
  // instance id, which names no shard (and the subscription mirror would drop its subscriptions).
  void claim_shard(const ShardIdentity& shard);

  // Point read; nullopt when absent. Errors other than NotFound are reported as nullopt too,
  // after being logged once by the caller's error path (RocksDB read errors mean a broken disk).
  std::optional<std::string> get(Family family, const std::string& key) const;

  // Visits keys in `range` until `visit` returns false. Iterators are always bounded so that
  // tombstones left by queue-style deletes beyond the range are never walked.
  template <typename Visit>
  void scan(Family family, const ScanRange& range, Visit&& visit) const;

  // Bytes of SST files and of live WAL files, for relay_storage_bytes.
  std::uint64_t sst_bytes() const;
  std::uint64_t wal_bytes() const;

  // Writes a batch as one atomic unit with the configured durability. Refused (NoSpace) when
  // the disk would keep less than a small headroom. A failed write leaves the store unwritable
  // until recover() succeeds: after a WAL write error RocksDB 7.8 must not be asked to touch
  // the WAL again (its writer asserts) until it has resumed.
  rocksdb::Status write(rocksdb::WriteBatch& batch);

  // False after a failed write or while RocksDB holds a background error (full disk, I/O
  // error): writes must wait for recover(). Thread-safe; /readyz and the writer read it.
  bool writable() const { return !write_failed_.load() && !background_error_->load(); }
  // Tries to leave the unwritable state: when the disk has room again, DB::Resume() flushes
  // the memtables onto a fresh WAL and clears the error. Ok when writable afterwards. Runs on
  // the writer thread only (RocksDB's own automatic recovery is turned off so that this is the
  // one place that resumes).
  Status recover();

 private:
  Store(StoreOptions options, std::unique_ptr<rocksdb::DB> db,
        std::array<rocksdb::ColumnFamilyHandle*, static_cast<std::size_t>(Family::count_)> handles,
        std::shared_ptr<std::atomic<bool>> background_error);
  std::unique_ptr<rocksdb::Iterator> bounded_iterator(Family family, const ScanRange& range,
                                                      rocksdb::Slice& lower, rocksdb::Slice& upper,
                                                      rocksdb::ReadOptions& read_options) const;

  StoreOptions options_;
  std::unique_ptr<rocksdb::DB> db_;
  std::array<rocksdb::ColumnFamilyHandle*, static_cast<std::size_t>(Family::count_)> handles_{};
  std::uint32_t instance_id_ = 0;
  std::atomic<bool> write_failed_{false};
  // Shared with the event listener that RocksDB calls on background errors.
  std::shared_ptr<std::atomic<bool>> background_error_;
};

template <typename Visit>
void Store::scan(Family family, const ScanRange& range, Visit&& visit) const {
  rocksdb::ReadOptions read_options;
  rocksdb::Slice lower(range.lower);
  rocksdb::Slice upper(range.upper);
  auto it = bounded_iterator(family, range, lower, upper, read_options);
  if (range.reverse) {
    for (it->SeekToLast(); it->Valid(); it->Prev()) {
      if (!visit(it->key().ToStringView(), it->value().ToStringView())) return;
    }
  } else {
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      if (!visit(it->key().ToStringView(), it->value().ToStringView())) return;
    }
  }
}

}  // namespace relay
