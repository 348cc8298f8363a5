// Store commit (storage/store.h + storage/commit_pipeline.h) on a real RocksDB in a temporary
// directory: the ingest of one 1 KiB event with one delivery (mutations::ingest), committed
// alone or in a group of concurrent commands, with fsync (--durability fsync) and without
// (buffered). Baselines: RocksDB's own Write() of an equivalent batch, and a plain file append +
// fdatasync of the same bytes, which is the disk's floor for one durable write.
//
// The directory is made under $TMPDIR (benchmarks/run.sh points it at the data disk).

#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "relay/core/clock.h"
#include "storage/commit_pipeline.h"
#include "storage/keys.h"
#include "storage/mutations.h"
#include "storage/store.h"

namespace relay {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "relay-micro-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Waits for a known number of completions from the writer thread.
class Countdown {
 public:
  void expect(std::size_t n) {
    std::lock_guard lock(mutex_);
    remaining_ = n;
    failed_ = false;
  }
  void done(const Status& status) {
    std::lock_guard lock(mutex_);
    if (!status) failed_ = true;
    if (--remaining_ == 0) cv_.notify_one();
  }
  bool wait() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return remaining_ == 0; });
    return !failed_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::size_t remaining_ = 0;
  bool failed_ = false;
};

struct Bench {
  explicit Bench(bool sync)
      : store(Store::open(StoreOptions{dir.path().string(), sync})),
        pipeline(*store, nullptr),
        ids(clock, store->instance_id()) {
    auto sub = std::make_shared<Subscription>();
    sub->id = ids.next(keys::kSubscriptionPrefix);
    sub->url = "http://127.0.0.1:9/hook";
    targets.push_back(sub);
  }

  CommitPipeline::Command ingest_command() {
    return [this](WriteTxn& txn) {
      mutations::IngestedEvent out;
      return mutations::ingest(txn, mutations::NewEvent{"", "meeting.completed", payload}, targets, ids,
                               clock.now_ms(), out);
    };
  }

  TempDir dir;
  SystemClock clock;
  std::unique_ptr<Store> store;
  CommitPipeline pipeline;
  keys::IdGenerator ids;
  std::vector<std::shared_ptr<const Subscription>> targets;
  std::shared_ptr<const std::string> payload = std::make_shared<const std::string>(std::string(1000, 'p'));
};

// range(0): 1 = fsync, 0 = buffered; range(1): commands submitted together.
void BM_CommitIngest(benchmark::State& state) {
  Bench bench(state.range(0) == 1);
  const auto group = static_cast<std::size_t>(state.range(1));
  Countdown countdown;
  for (auto _ : state) {
    countdown.expect(group);
    for (std::size_t i = 0; i < group; ++i) {
      bench.pipeline.submit(bench.ingest_command(), [&](const Status& s) { countdown.done(s); });
    }
    if (!countdown.wait()) state.SkipWithError("commit failed");
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * group));
}
BENCHMARK(BM_CommitIngest)
    ->ArgNames({"fsync", "group"})
    ->Args({1, 1})
    ->Args({1, 64})
    ->Args({0, 1})
    ->Args({0, 64})
    ->UseRealTime();

// The writes of one ingest (event, delivery, three index keys, event type) in a plain
// WriteBatch, written with RocksDB's Write(): the store without relay's pipeline and records.
void BM_Baseline_RocksWrite(benchmark::State& state) {
  Bench bench(state.range(0) == 1);
  const auto group = static_cast<std::size_t>(state.range(1));
  const std::string event_value(1100, 'e');
  const std::string delivery_value(180, 'd');
  for (auto _ : state) {
    rocksdb::WriteBatch batch;
    for (std::size_t i = 0; i < group; ++i) {
      const std::string event_id = bench.ids.next(keys::kEventPrefix);
      const std::string delivery_id = bench.ids.next(keys::kDeliveryPrefix);
      batch.Put(bench.store->handle(Family::events), keys::event_key(event_id), event_value);
      batch.Put(bench.store->handle(Family::deliveries), keys::delivery_key(delivery_id), delivery_value);
      batch.Put(bench.store->handle(Family::event_deliveries), keys::event_delivery_key(event_id, delivery_id), "");
      batch.Put(bench.store->handle(Family::schedule), keys::schedule_key(bench.clock.now_ms(), delivery_id), "s");
      batch.Put(bench.store->handle(Family::event_types), "meeting.completed", "t");
    }
    if (!bench.store->write(batch).ok()) state.SkipWithError("write failed");
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * group));
}
BENCHMARK(BM_Baseline_RocksWrite)
    ->ArgNames({"fsync", "group"})
    ->Args({1, 1})
    ->Args({1, 64})
    ->Args({0, 1})
    ->Args({0, 64})
    ->UseRealTime();

// The disk's floor: append the bytes of one ingest to a file and fdatasync it.
void BM_Baseline_AppendFdatasync(benchmark::State& state) {
  TempDir dir;
  const std::string path = (dir.path() / "log").string();
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  if (fd < 0) {
    state.SkipWithError("cannot open file");
    return;
  }
  const std::string record(1400, 'r');
  for (auto _ : state) {
    if (::write(fd, record.data(), record.size()) != static_cast<ssize_t>(record.size()) || ::fdatasync(fd) != 0) {
      state.SkipWithError("write failed");
      break;
    }
  }
  ::close(fd);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_Baseline_AppendFdatasync)->UseRealTime();

}  // namespace
}  // namespace relay
