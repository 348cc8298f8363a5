// Store commit (storage/store.h + storage/commit_pipeline.h) on a real RocksDB in a temporary
// directory: the ingest of one 1 KiB event with one delivery (mutations::ingest), committed
// alone or in a group of concurrent commands, with fsync (--durability fsync) and without
// (buffered); and the attempt records of a delivery drain (mutations::record_attempt, alone and
// as the scheduler writes it, with the failure streak and operational events of
// storage/delivery_outcomes.h) on a store holding a backlog of deliveries. Baselines: RocksDB's own Write() of an equivalent batch, and a plain file append +
// fdatasync of the same bytes, which is the disk's floor for one durable write.
//
// The directory is made under $TMPDIR (benchmarks/run.sh points it at the data disk).

#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <ctime>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "relay/core/clock.h"
#include "storage/commit_pipeline.h"
#include "storage/delivery_outcomes.h"
#include "storage/failure_streaks.h"
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

std::int64_t thread_cpu_ns() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<std::int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

// CPU time of the writer thread for the commands of each iteration, from the start of the first
// to the completion of the last (both run on the writer thread): the cost that bounds the
// pipeline's throughput, and steadier than the wall time on a shared machine.
class WriterCpu {
 public:
  CommitPipeline::Command first(CommitPipeline::Command command) {
    return [this, command = std::move(command)](WriteTxn& txn) {
      started_ns_ = thread_cpu_ns();
      return command(txn);
    };
  }
  CommitPipeline::Done last(CommitPipeline::Done done) {
    return [this, done = std::move(done)](const Status& status) {
      total_ns_ += thread_cpu_ns() - started_ns_;
      done(status);
    };
  }
  void report(benchmark::State& state, std::int64_t items) const {
    state.counters["writer_ns_per_item"] = static_cast<double>(total_ns_) / static_cast<double>(std::max<std::int64_t>(items, 1));
  }

 private:
  std::int64_t started_ns_ = 0;
  std::int64_t total_ns_ = 0;
};

struct Bench {
  explicit Bench(bool sync, std::size_t block_cache_bytes = StoreOptions{}.block_cache_bytes)
      : store(Store::open(StoreOptions{dir.path().string(), sync, block_cache_bytes})),
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
  WriterCpu writer_cpu;
  for (auto _ : state) {
    countdown.expect(group);
    for (std::size_t i = 0; i < group; ++i) {
      CommitPipeline::Command command = bench.ingest_command();
      CommitPipeline::Done done = [&](const Status& s) { countdown.done(s); };
      if (i == 0) command = writer_cpu.first(std::move(command));
      if (i + 1 == group) done = writer_cpu.last(std::move(done));
      bench.pipeline.submit(std::move(command), std::move(done));
    }
    if (!countdown.wait()) state.SkipWithError("commit failed");
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * group));
  writer_cpu.report(state, static_cast<std::int64_t>(state.iterations() * group));
}
BENCHMARK(BM_CommitIngest)
    ->ArgNames({"fsync", "group"})
    ->Args({1, 1})
    ->Args({1, 64})
    ->Args({0, 1})
    ->Args({0, 64})
    ->Args({0, 512})
    ->UseRealTime();

// A drain's writes: pending deliveries of a backlog, in due order, each get an attempt record
// and move to a retry an hour later, as DeliveryScheduler records them. The backlog is built
// once like fill_store's (benchmark scenario 4): deliveries ingested through mutations::ingest
// (small payloads: the events are not read here), each with one failed attempt and a retry due
// at a random time, then flushed to SST files. Due order is then not creation order, as in a
// backlog of retries. Scenario 4's million deliveries and their 1 KiB events are many times
// the 64 MiB block cache; 200k deliveries against an 8 MiB cache keep that ratio and fill in
// seconds.
class Backlog {
 public:
  static constexpr std::size_t kDeliveries = 200'000;

  static Backlog& get() {
    static Backlog backlog;
    return backlog;
  }

  // Submits the next `group` attempt records; `done` is called once per command. `outcomes`: as
  // the scheduler records them (outcomes::record_attempt), else mutations::record_attempt alone.
  void submit_attempts(std::size_t group, bool outcomes, WriterCpu& writer_cpu, const CommitPipeline::Done& done) {
    for (std::size_t i = 0; i < group; ++i) {
      Delivery& current = deliveries_[next_++ % deliveries_.size()];
      CommitPipeline::Command command = [this, &current, outcomes](WriteTxn& txn) {
        const UnixMillis retry_at = current.next_attempt_at + 3'600'000;
        return outcomes ? record_failure_outcome(txn, current, retry_at) : record_failure(txn, current, retry_at);
      };
      if (i == 0) command = writer_cpu.first(std::move(command));
      bench_.pipeline.submit(std::move(command), i + 1 == group ? writer_cpu.last(done) : done,
                             CommitPipeline::Priority::background);
    }
  }

 private:
  static constexpr std::size_t kPerCommand = 1'000;

  Backlog() : bench_(false, 8 << 20) {
    // Stored, as a subscriber's is: a streak is kept only for a stored subscription.
    Countdown stored;
    stored.expect(1);
    bench_.pipeline.submit([&](WriteTxn& txn) { return mutations::put_subscription(txn, *bench_.targets.front()); },
                           [&](const Status& s) { stored.done(s); });
    if (!stored.wait()) throw std::runtime_error("storing the subscription failed");
    deliveries_.reserve(kDeliveries);
    run_chunks([&](std::size_t) {
      return [&](WriteTxn& txn) -> Status {
        const mutations::NewEvent event{"", "backlog.retry", std::make_shared<const std::string>(R"({"n":1})")};
        for (std::size_t i = 0; i < kPerCommand; ++i) {
          mutations::IngestedEvent out;
          if (auto s = mutations::ingest(txn, event, bench_.targets, bench_.ids, bench_.clock.now_ms(), out); !s) return s;
          for (auto& d : out.deliveries) deliveries_.push_back(std::move(d));
        }
        return Ok{};
      };
    });
    std::mt19937_64 random(42);
    std::uniform_int_distribution<std::int64_t> due_in(1'200'000, 3'600'000);
    std::vector<UnixMillis> retry_at(deliveries_.size());
    for (UnixMillis& at : retry_at) at = bench_.clock.now_ms() + due_in(random);
    run_chunks([&](std::size_t chunk) {
      return [&, chunk](WriteTxn& txn) -> Status {
        for (std::size_t i = chunk * kPerCommand; i < (chunk + 1) * kPerCommand; ++i) {
          if (auto s = record_failure(txn, deliveries_[i], retry_at[i]); !s) return s;
        }
        return Ok{};
      };
    });
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    for (std::size_t f = 0; f < static_cast<std::size_t>(Family::count_); ++f) {
      handles.push_back(bench_.store->handle(static_cast<Family>(f)));
    }
    if (!bench_.store->db().Flush(rocksdb::FlushOptions(), handles).ok()) throw std::runtime_error("flush failed");
    std::sort(deliveries_.begin(), deliveries_.end(), [](const Delivery& a, const Delivery& b) {
      return std::tie(a.next_attempt_at, a.id) < std::tie(b.next_attempt_at, b.id);
    });
  }

  // Runs kDeliveries / kPerCommand commands and waits for them; a group sees no write of its own.
  template <typename MakeCommand>
  void run_chunks(MakeCommand make_command) {
    Countdown countdown;
    countdown.expect(kDeliveries / kPerCommand);
    for (std::size_t chunk = 0; chunk < kDeliveries / kPerCommand; ++chunk) {
      bench_.pipeline.submit(make_command(chunk), [&](const Status& s) { countdown.done(s); });
    }
    if (!countdown.wait()) throw std::runtime_error("filling the backlog failed");
  }

  Attempt failed_attempt() const {
    Attempt attempt;
    attempt.started_at = bench_.clock.now_ms();
    attempt.duration_ms = 3;
    attempt.http_status = 503;
    attempt.outcome = AttemptOutcome::http_5xx;
    attempt.response_body = "Service Unavailable";
    return attempt;
  }

  // One 503 for `current`, which becomes the updated delivery.
  Status record_failure(WriteTxn& txn, Delivery& current, UnixMillis retry_at) {
    Delivery updated;
    ordering_queue::Advance advance;  // unordered subscription: never used
    Status status = mutations::record_attempt(txn, current, failed_attempt(), {DeliveryState::pending, retry_at},
                                              nullptr, updated, advance);
    if (status) current = std::move(updated);
    return status;
  }

  // The same through outcomes::record_attempt: the subscription's streak runs from the first
  // one on (the steady state of a failing subscriber, disable_after far away).
  Status record_failure_outcome(WriteTxn& txn, Delivery& current, UnixMillis retry_at) {
    outcomes::Recorded recorded;
    Status status = outcomes::record_attempt(txn, outcome_context_, current, failed_attempt(),
                                             {DeliveryState::pending, retry_at}, nullptr,
                                             bench_.targets.front().get(), recorded);
    if (status) current = std::move(recorded.updated);
    return status;
  }

  Bench bench_;
  FailureStreaks streaks_;
  outcomes::Context outcome_context_{
      operational_events::Publisher{bench_.ids, [](const Event&) { return std::vector<std::shared_ptr<const Subscription>>{}; }},
      streaks_, 5 * 86'400'000LL};
  std::vector<Delivery> deliveries_;  // each as the scheduler holds it: updated by every record
  std::size_t next_ = 0;
};

// range(0): attempt records submitted together (one group); range(1): 1 = as the scheduler
// writes them (outcomes::record_attempt: failure streak, automatic disabling, operational events),
// 0 = mutations::record_attempt alone.
void BM_CommitRecordAttempt(benchmark::State& state) {
  Backlog& backlog = Backlog::get();
  const auto group = static_cast<std::size_t>(state.range(0));
  const bool outcomes = state.range(1) == 1;
  Countdown countdown;
  WriterCpu writer_cpu;
  for (auto _ : state) {
    countdown.expect(group);
    backlog.submit_attempts(group, outcomes, writer_cpu, [&](const Status& s) { countdown.done(s); });
    if (!countdown.wait()) state.SkipWithError("commit failed");
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * group));
  writer_cpu.report(state, static_cast<std::int64_t>(state.iterations() * group));
}
BENCHMARK(BM_CommitRecordAttempt)
    ->ArgNames({"group", "outcomes"})
    ->Args({1, 0})
    ->Args({1, 1})
    ->Args({256, 0})
    ->Args({256, 1})
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
