// fill_store: writes a delivery backlog straight into a relayd data directory through the
// storage API, for the backlog scenario of benchmarks/run.sh (issue 5, scenario 4). Going
// through HTTP would take longer than the benchmark itself.
//
// What it writes, with the same mutations relayd uses:
//   - one subscription "backlog" (event types "backlog.*", URL --sink-url);
//   - --scheduled events of type backlog.retry, each with one delivery that had one failed
//     attempt (503) and waits for its retry, due between --due-min and --due-max from now, so
//     that none comes due while the benchmark runs;
//   - --dead events of type backlog.dead, each with one delivery that got 410 Gone and is dead;
//   - --stored events of type backlog.stored without any delivery (the replay scenario's
//     events: stored, delivered to nobody, replayed to the backlog subscription by a job).
// The payload of every event is the JSON file --payload (compact JSON).
//
// Usage: fill_store --data-dir DIR --payload FILE --sink-url URL
//                   [--scheduled 1000000] [--dead 100000] [--stored 0] [--due-min-s 1200] [--due-max-s 3600]
// It prints one JSON line; stored_since / stored_until bound the creation times (ms) of the
// --stored events, [since, until) as a replay takes them.

#include <chrono>
#include <condition_variable>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "relay/core/clock.h"
#include "storage/commit_pipeline.h"
#include "storage/keys.h"
#include "storage/mutations.h"
#include "storage/store.h"

namespace relay {
namespace {

struct FillOptions {
  std::string data_dir;
  std::string payload_file;
  std::string sink_url;
  std::uint64_t scheduled = 1'000'000;
  std::uint64_t dead = 100'000;
  std::uint64_t stored = 0;
  std::int64_t due_min_s = 1'200;
  std::int64_t due_max_s = 3'600;
};

constexpr std::size_t kEventsPerCommand = 1'000;
// Commands queued at once: enough to keep the writer thread busy, few enough to bound memory.
constexpr std::size_t kMaxOutstanding = 4;

FillOptions parse_args(int argc, char** argv) {
  FillOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) throw std::invalid_argument("missing value for " + flag);
    const std::string value = argv[++i];
    if (flag == "--data-dir") options.data_dir = value;
    else if (flag == "--payload") options.payload_file = value;
    else if (flag == "--sink-url") options.sink_url = value;
    else if (flag == "--scheduled") options.scheduled = std::stoull(value);
    else if (flag == "--dead") options.dead = std::stoull(value);
    else if (flag == "--stored") options.stored = std::stoull(value);
    else if (flag == "--due-min-s") options.due_min_s = std::stoll(value);
    else if (flag == "--due-max-s") options.due_max_s = std::stoll(value);
    else throw std::invalid_argument("unknown flag " + flag);
  }
  if (options.data_dir.empty() || options.payload_file.empty() || options.sink_url.empty()) {
    throw std::invalid_argument("--data-dir, --payload and --sink-url are required");
  }
  if (options.due_min_s <= 0 || options.due_max_s < options.due_min_s) {
    throw std::invalid_argument("need 0 < --due-min-s <= --due-max-s");
  }
  return options;
}

std::string compact_payload(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  const auto body = nlohmann::json::parse(text.str());
  // A file holding a whole POST body contributes its payload; anything else is the payload.
  return (body.is_object() && body.contains("payload") ? body["payload"] : body).dump();
}

// Bounds the commands in flight and waits for the last ones.
class Outstanding {
 public:
  void acquire() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return count_ < kMaxOutstanding; });
    ++count_;
  }
  void release(const Status& status) {
    std::lock_guard lock(mutex_);
    if (!status && error_.empty()) error_ = status.error().message;
    --count_;
    cv_.notify_all();
  }
  std::string wait_all() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return count_ == 0; });
    return error_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::size_t count_ = 0;
  std::string error_;
};

// Ingests `count` events of `type`; their deliveries are added to `created`.
Status ingest_chunk(WriteTxn& txn, std::size_t count, bool dead, const std::shared_ptr<const std::string>& payload,
                    const std::vector<std::shared_ptr<const Subscription>>& targets, keys::IdGenerator& ids,
                    const Clock& clock, std::vector<Delivery>& created) {
  for (std::size_t i = 0; i < count; ++i) {
    mutations::IngestedEvent ingested;
    const mutations::NewEvent event{"", dead ? "backlog.dead" : "backlog.retry", payload};
    if (auto status = mutations::ingest(txn, event, targets, ids, clock.now_ms(), ingested); !status) return status;
    for (auto& d : ingested.deliveries) created.push_back(std::move(d));
  }
  return Ok{};
}

// Ingests `count` events of type backlog.stored that match no subscription.
Status store_chunk(WriteTxn& txn, std::size_t count, const std::shared_ptr<const std::string>& payload,
                   keys::IdGenerator& ids, const Clock& clock) {
  for (std::size_t i = 0; i < count; ++i) {
    mutations::IngestedEvent ingested;
    const mutations::NewEvent event{"", "backlog.stored", payload};
    if (auto status = mutations::ingest(txn, event, {}, ids, clock.now_ms(), ingested); !status) return status;
  }
  return Ok{};
}

// Records one failed attempt for each delivery: a retry later, or dead.
Status record_attempts(WriteTxn& txn, const std::vector<Delivery>& deliveries, bool dead, const Clock& clock,
                       std::mt19937_64& random, const FillOptions& options) {
  std::uniform_int_distribution<std::int64_t> due_offset(options.due_min_s * 1000, options.due_max_s * 1000);
  for (const Delivery& d : deliveries) {
    const UnixMillis now = clock.now_ms();
    Attempt attempt;
    attempt.started_at = now;
    attempt.duration_ms = 3;
    attempt.http_status = dead ? 410 : 503;
    attempt.outcome = AttemptOutcome::http_4xx;
    if (!dead) attempt.outcome = AttemptOutcome::http_5xx;
    attempt.response_body = dead ? "Gone" : "Service Unavailable";
    mutations::Resolution resolution;
    resolution.state = dead ? DeliveryState::dead : DeliveryState::pending;
    resolution.next_attempt_at = now + due_offset(random);
    Delivery updated;
    ordering_queue::Advance advance;  // unordered subscription: never used
    if (auto status = mutations::record_attempt(txn, d, attempt, resolution, nullptr, updated, advance); !status) {
      return status;
    }
  }
  return Ok{};
}

int run(const FillOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  SystemClock clock;
  auto store = Store::open(StoreOptions{options.data_dir, /*sync_writes=*/false});
  keys::IdGenerator ids(clock, store->instance_id());
  auto payload = std::make_shared<const std::string>(compact_payload(options.payload_file));

  Subscription sub;
  sub.id = ids.next(keys::kSubscriptionPrefix);
  sub.url = options.sink_url;
  sub.event_types = {"backlog.*"};
  sub.secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  sub.description = "benchmark backlog (fill_store)";
  sub.created_at = sub.updated_at = clock.now_ms();
  const std::vector<std::shared_ptr<const Subscription>> targets{std::make_shared<const Subscription>(sub)};

  CommitPipeline pipeline(*store, nullptr);
  Outstanding outstanding;
  outstanding.acquire();
  pipeline.submit([&](WriteTxn& txn) { return mutations::put_subscription(txn, sub); },
                  [&](const Status& s) { outstanding.release(s); });

  std::mt19937_64 random(42);  // used on the writer thread only
  for (const bool dead : {false, true}) {
    const std::uint64_t total = dead ? options.dead : options.scheduled;
    for (std::uint64_t done = 0; done < total; done += kEventsPerCommand) {
      const std::size_t count = static_cast<std::size_t>(std::min<std::uint64_t>(kEventsPerCommand, total - done));
      outstanding.acquire();  // for both commands of the chunk
      auto created = std::make_shared<std::vector<Delivery>>();
      pipeline.submit(
          [&, count, dead, created](WriteTxn& txn) {
            return ingest_chunk(txn, count, dead, payload, targets, ids, clock, *created);
          },
          [&, dead, created](const Status& ingested) {
            if (!ingested) return outstanding.release(ingested);
            // Submitted once the ingest is committed, so in a later group: new deliveries are
            // not readable in the group that writes them (WriteTxn::put_new).
            pipeline.submit(
                [&, dead, created](WriteTxn& txn) { return record_attempts(txn, *created, dead, clock, random, options); },
                [&](const Status& recorded) { outstanding.release(recorded); });
          });
    }
  }
  // The backlog first, so that [stored_since, stored_until) holds the stored events only.
  if (const std::string error = outstanding.wait_all(); !error.empty()) {
    std::cerr << "fill_store: " << error << "\n";
    return 1;
  }
  const UnixMillis stored_since = clock.now_ms();
  for (std::uint64_t done = 0; done < options.stored; done += kEventsPerCommand) {
    const std::size_t count = static_cast<std::size_t>(std::min<std::uint64_t>(kEventsPerCommand, options.stored - done));
    outstanding.acquire();
    pipeline.submit([&, count](WriteTxn& txn) { return store_chunk(txn, count, payload, ids, clock); },
                    [&](const Status& s) { outstanding.release(s); });
  }
  if (const std::string error = outstanding.wait_all(); !error.empty()) {
    std::cerr << "fill_store: " << error << "\n";
    return 1;
  }
  const UnixMillis stored_until = clock.now_ms() + 1;  // exclusive
  pipeline.stop();

  // Leave the data in SST files, as a long-running relayd would have it, not in a WAL to replay.
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  for (std::size_t f = 0; f < static_cast<std::size_t>(Family::count_); ++f) {
    handles.push_back(store->handle(static_cast<Family>(f)));
  }
  if (auto s = store->db().Flush(rocksdb::FlushOptions(), handles); !s.ok()) {
    std::cerr << "fill_store: flush failed: " << s.ToString() << "\n";
    return 1;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::cout << nlohmann::json{{"subscription", sub.id},
                              {"scheduled", options.scheduled},
                              {"dead", options.dead},
                              {"stored", options.stored},
                              {"stored_since", stored_since},
                              {"stored_until", stored_until},
                              {"payload_bytes", payload->size()},
                              {"seconds", seconds}}
                   .dump()
            << std::endl;
  return 0;
}

}  // namespace
}  // namespace relay

int main(int argc, char** argv) {
  try {
    return relay::run(relay::parse_args(argc, argv));
  } catch (const std::exception& e) {
    std::cerr << "fill_store: " << e.what() << "\n";
    return 2;
  }
}
