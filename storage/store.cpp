#include "storage/store.h"

#include <rocksdb/filter_policy.h>
#include <rocksdb/listener.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/table_properties_collectors.h>

#include <filesystem>
#include <limits>
#include <random>
#include <stdexcept>

#include "storage/event_type_merge.h"
#include "storage/keys.h"

namespace relay {

namespace {

const char* const kFamilyNames[] = {
    "default", "events", "deliveries", "schedule", "dead_letters", "completed",
    "event_deliveries", "attempts", "subscriptions", "idempotency", "event_types", "jobs",
    "ordering_queues", "failure_streaks"};
static_assert(std::size(kFamilyNames) == static_cast<std::size_t>(Family::count_));

// Below this much free space a start is not tried: RocksDB writes OPTIONS and MANIFEST files
// before anything else. A start with little more room opens, and its writes wait for space
// like those of a running relayd (Store::recover).
constexpr std::uintmax_t kMinFreeToOpen = 256 << 10;
// A write is refused unless this much stays free after it. RocksDB 7.8 does not always survive
// ENOSPC in the WAL itself (the same write can trip the WAL writer's assertion), so relay
// stops short of a full disk instead of letting the WAL find it.
constexpr std::uintmax_t kWriteHeadroom = 1 << 20;
// Below this much a recovery is not tried: it writes a memtable flush and a new WAL. Above the
// write headroom, so that a recovered store takes more than one write before refusing again.
constexpr std::uintmax_t kMinFreeToResume = 4 << 20;

// Tracks RocksDB's background error state for Store::writable(), and turns RocksDB's own
// automatic recovery off: Store::recover(), called by the writer thread, is the one place
// that resumes, so that no write reaches the WAL between an error and the recovery.
class BackgroundErrorListener : public rocksdb::EventListener {
 public:
  explicit BackgroundErrorListener(std::shared_ptr<std::atomic<bool>> flag) : flag_(std::move(flag)) {}
  void OnBackgroundError(rocksdb::BackgroundErrorReason, rocksdb::Status* error) override {
    if (error != nullptr && !error->ok()) flag_->store(true);
  }
  void OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason, rocksdb::Status, bool* auto_recovery) override {
    if (auto_recovery != nullptr) *auto_recovery = false;
  }

 private:
  std::shared_ptr<std::atomic<bool>> flag_;
};

// Free bytes on the data directory's filesystem; max() when unknown (never blocks a start).
std::uintmax_t free_bytes(const std::string& path) {
  std::error_code ec;
  const auto space = std::filesystem::space(path, ec);
  return ec ? std::numeric_limits<std::uintmax_t>::max() : space.available;
}

bool is_queue_family(Family family) {
  return family == Family::schedule || family == Family::dead_letters || family == Family::completed ||
         family == Family::ordering_queues;
}

rocksdb::ColumnFamilyOptions family_options(Family family, const std::shared_ptr<rocksdb::Cache>& cache) {
  rocksdb::ColumnFamilyOptions options;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  // Index and filter blocks live in the block cache, cut into partitions of a few KiB. Whole
  // per-file blocks grow with the file (MiBs for a million keys), larger than a cache shard: they
  // were evicted at once and read and decompressed again on every Get, 1.2 ms of CPU per
  // delivery once a backlog's files passed that size. Partitions stay cached like data blocks;
  // the small top level of each file stays pinned.
  table.index_type = rocksdb::BlockBasedTableOptions::kTwoLevelIndexSearch;
  table.partition_filters = true;
  table.metadata_block_size = 4096;
  table.cache_index_and_filter_blocks = true;
  table.cache_index_and_filter_blocks_with_high_priority = true;
  table.pin_top_level_index_and_filter = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  options.compression = rocksdb::kLZ4Compression;
  options.write_buffer_size = 32 << 20;
  if (is_queue_family(family)) {
    // Queue-style families are written at the tail and deleted at the head. Files that collect
    // many tombstones are compacted early so that scans from the head do not wade through them
    // (RocksDB's "implement queue service" advice), and the families are small: no compression.
    options.table_properties_collector_factories.push_back(
        rocksdb::NewCompactOnDeletionCollectorFactory(/*sliding_window_size=*/4096, /*deletion_trigger=*/1024));
    options.compression = rocksdb::kNoCompression;
    options.write_buffer_size = 8 << 20;
  }
  if (family == Family::event_types) {
    // Ingests add to the counts with Merge. Operands pile up in the memtable until a flush folds
    // them; a read of the family (GET /v1/event-types, rare) folds the rest in one pass.
    options.merge_operator = make_event_type_merge_operator();
  }
  return options;
}

}  // namespace

std::unique_ptr<Store> Store::open(const StoreOptions& store_options) {
  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.max_background_jobs = 2;
  db_options.bytes_per_sync = 1 << 20;
  db_options.keep_log_file_num = 4;
  // Small WAL and no flush while recovering: a restart replays little and is ready fast.
  db_options.max_total_wal_size = 64 << 20;
  db_options.avoid_flush_during_recovery = true;
  // Group commit happens in CommitPipeline; RocksDB's own pipelining helps concurrent readers.
  db_options.enable_pipelined_write = true;
  auto background_error = std::make_shared<std::atomic<bool>>(false);
  db_options.listeners.push_back(std::make_shared<BackgroundErrorListener>(background_error));

  // A full disk fails the open somewhere deep in RocksDB (OPTIONS file, WAL): say so plainly.
  std::filesystem::create_directories(store_options.path);
  if (const auto available = free_bytes(store_options.path); available < kMinFreeToOpen) {
    throw std::runtime_error("data directory " + store_options.path + " is on a full filesystem (" +
                             std::to_string(available / 1024) + " KiB free, at least " +
                             std::to_string(kMinFreeToOpen >> 10) + " KiB needed): free space and start again");
  }

  auto cache = rocksdb::NewLRUCache(store_options.block_cache_bytes);
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (std::size_t i = 0; i < static_cast<std::size_t>(Family::count_); ++i) {
    descriptors.emplace_back(kFamilyNames[i], family_options(static_cast<Family>(i), cache));
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handle_list;
  rocksdb::DB* raw_db = nullptr;
  const rocksdb::Status status = rocksdb::DB::Open(db_options, store_options.path, descriptors, &handle_list, &raw_db);
  if (status.IsNoSpace()) {
    throw std::runtime_error("data directory " + store_options.path + " is on a full filesystem (" +
                             std::to_string(free_bytes(store_options.path) / 1024) +
                             " KiB free, not enough to replay the write-ahead log): free space and start again");
  }
  if (!status.ok()) throw std::runtime_error("cannot open data directory " + store_options.path + ": " + status.ToString());
  std::array<rocksdb::ColumnFamilyHandle*, static_cast<std::size_t>(Family::count_)> handles{};
  std::copy(handle_list.begin(), handle_list.end(), handles.begin());
  std::unique_ptr<Store> store(
      new Store(store_options, std::unique_ptr<rocksdb::DB>(raw_db), handles, std::move(background_error)));

  if (auto stored = store->get(Family::meta, keys::kMetaInstanceId); stored && stored->size() == 4) {
    store->instance_id_ = keys::read_u32(*stored);
  } else {
    store->instance_id_ = std::random_device{}();
    std::string value;
    keys::append_u32(value, store->instance_id_);
    rocksdb::WriteBatch batch;
    batch.Put(store->handle(Family::meta), keys::kMetaInstanceId, value);
    if (auto s = store->write(batch); !s.ok()) throw std::runtime_error("cannot write to data directory: " + s.ToString());
  }
  return store;
}

Store::Store(StoreOptions options, std::unique_ptr<rocksdb::DB> db,
             std::array<rocksdb::ColumnFamilyHandle*, static_cast<std::size_t>(Family::count_)> handles,
             std::shared_ptr<std::atomic<bool>> background_error)
    : options_(std::move(options)),
      db_(std::move(db)),
      handles_(handles),
      background_error_(std::move(background_error)) {}

Store::~Store() {
  if (!db_) return;
  // An unwritable store must not touch its WAL again (see write()); what was acknowledged is
  // in the WAL already and is replayed at the next start.
  if (writable()) {
    db_->FlushWAL(/*sync=*/true).PermitUncheckedError();
    // Flushed memtables leave no WAL to replay at the next start.
    std::vector<rocksdb::ColumnFamilyHandle*> all(handles_.begin(), handles_.end());
    db_->Flush(rocksdb::FlushOptions(), all).PermitUncheckedError();
  }
  for (auto* handle : handles_) {
    if (handle != nullptr) db_->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
  }
  db_->Close().PermitUncheckedError();
}

std::optional<ShardIdentity> Store::shard() const {
  const auto name = get(Family::meta, keys::kMetaShardName);
  const auto number = get(Family::meta, keys::kMetaShardNumber);
  if (!name && !number) return std::nullopt;
  if (!name || !number || number->size() != 4 || name->empty()) {
    throw std::runtime_error("data directory " + options_.path + " holds an incomplete shard identity");
  }
  return ShardIdentity{*name, keys::read_u32(*number)};
}

void Store::claim_shard(const ShardIdentity& shard) {
  if (shard.name.empty() || shard.number == 0) throw std::invalid_argument("a shard needs a name and a number >= 1");
  if (const auto stored = this->shard()) {
    if (*stored == shard) {
      instance_id_ = shard.number;
      return;
    }
    throw std::runtime_error("data directory " + options_.path + " belongs to shard '" + stored->name + "' (number " +
                             std::to_string(stored->number) + "), not to shard '" + shard.name + "' (number " +
                             std::to_string(shard.number) + "): start it with --shard " + stored->name +
                             " or give this shard a data directory of its own");
  }
  for (const auto family : {Family::events, Family::deliveries, Family::jobs, Family::subscriptions}) {
    bool empty = true;
    scan(family, ScanRange{}, [&](std::string_view, std::string_view) {
      empty = false;
      return false;
    });
    if (!empty) {
      throw std::runtime_error("data directory " + options_.path +
                               " holds the data of a single-node relay (events, deliveries, jobs or subscriptions "
                               "whose ids name no shard): a cluster shard starts on an empty data directory");
    }
  }
  std::string number;
  keys::append_u32(number, shard.number);
  rocksdb::WriteBatch batch;
  batch.Put(handle(Family::meta), keys::kMetaShardName, shard.name);
  batch.Put(handle(Family::meta), keys::kMetaShardNumber, number);
  batch.Put(handle(Family::meta), keys::kMetaInstanceId, number);
  if (auto s = write(batch); !s.ok()) throw std::runtime_error("cannot write to data directory: " + s.ToString());
  instance_id_ = shard.number;
}

std::optional<std::string> Store::get(Family family, const std::string& key) const {
  std::string value;
  const rocksdb::Status status = db_->Get(rocksdb::ReadOptions(), handle(family), key, &value);
  if (!status.ok()) return std::nullopt;
  return value;
}

std::unique_ptr<rocksdb::Iterator> Store::bounded_iterator(Family family, const ScanRange& range,
                                                           rocksdb::Slice& lower, rocksdb::Slice& upper,
                                                           rocksdb::ReadOptions& read_options) const {
  read_options.iterate_lower_bound = &lower;
  if (!range.upper.empty()) read_options.iterate_upper_bound = &upper;
  return std::unique_ptr<rocksdb::Iterator>(db_->NewIterator(read_options, handle(family)));
}

std::uint64_t Store::sst_bytes() const {
  std::uint64_t total = 0;
  db_->GetAggregatedIntProperty(rocksdb::DB::Properties::kTotalSstFilesSize, &total);
  return total;
}

std::uint64_t Store::wal_bytes() const {
  rocksdb::VectorLogPtr files;
  if (!db_->GetSortedWalFiles(files).ok()) return 0;
  std::uint64_t total = 0;
  for (const auto& file : files) total += file->SizeFileBytes();
  return total;
}

rocksdb::Status Store::write(rocksdb::WriteBatch& batch) {
  if (!writable()) return rocksdb::Status::Incomplete("storage is not writable");
  if (const auto available = free_bytes(options_.path); available < batch.GetDataSize() + kWriteHeadroom) {
    write_failed_.store(true);
    return rocksdb::Status::NoSpace("the data directory's filesystem is full (" + std::to_string(available / 1024) +
                                    " KiB free)");
  }
  rocksdb::WriteOptions write_options;
  write_options.sync = options_.sync_writes;
  rocksdb::Status status = db_->Write(write_options, &batch);
  if (!status.ok()) write_failed_.store(true);
  return status;
}

Status Store::recover() {
  if (writable()) return Ok{};
  if (const auto available = free_bytes(options_.path); available < kMinFreeToResume) {
    return make_error(Errc::unavailable,
                      "the data directory's filesystem is full (" + std::to_string(available / 1024) + " KiB free)");
  }
  // write_failed_ keeps the store unwritable until the end; the listener sets the background
  // flag again if the recovery itself meets an error.
  write_failed_.store(true);
  background_error_->store(false);
  // Resume() flushes every memtable onto a new WAL (the failed one is never written again)
  // and clears the background error; it answers ok at once when RocksDB holds no error.
  if (const rocksdb::Status resumed = db_->Resume(); !resumed.ok()) {
    background_error_->store(true);
    return make_error(Errc::unavailable, "storage recovery failed: " + resumed.ToString());
  }
  if (background_error_->load()) return make_error(Errc::unavailable, "storage recovery met a new error");
  write_failed_.store(false);
  return Ok{};
}

}  // namespace relay
