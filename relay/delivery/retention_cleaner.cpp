#include "relay/delivery/retention_cleaner.h"

#include <boost/asio/use_awaitable.hpp>

#include "relay/core/async_bridge.h"
#include "storage/async_commit.h"
#include "storage/keys.h"
#include "storage/mutations.h"

namespace relay {

namespace asio = boost::asio;

struct RetentionCleaner::Expired {
  std::vector<std::string> deliveries;  // succeeded, past --retention
  std::vector<std::pair<std::string, std::string>> events;  // (id, completed key): no deliveries, past --retention
  std::vector<std::string> dead;        // past --dlq-retention
  bool full = false;                    // a chunk limit was hit: more may be waiting

  bool empty() const { return deliveries.empty() && events.empty() && dead.empty(); }
};

RetentionCleaner::RetentionCleaner(asio::io_context& io, RetentionOptions options, const Clock& clock, Logger& logger,
                                   Store& store, CommitPipeline& pipeline, asio::thread_pool& blocking_pool,
                                   std::function<void(std::size_t)> dead_removed)
    : options_(options),
      clock_(clock),
      logger_(logger),
      store_(store),
      pipeline_(pipeline),
      blocking_pool_(blocking_pool),
      dead_removed_(std::move(dead_removed)),
      task_(io, [this] { return clean_once(); }) {}

// A failure other than a storage Status (a throwing scan) ends relayd as it would on the pool.
void RetentionCleaner::start() { task_.start(); }

void RetentionCleaner::stop() { task_.stop(); }

asio::awaitable<std::chrono::milliseconds> RetentionCleaner::clean_once() {
  const UnixMillis now = clock_.now_ms();
  const auto scan = [this, now] { return find_expired(now); };
  const Expired expired = co_await run_blocking(blocking_pool_, scan, asio::use_awaitable);
  if (task_.stopped() || expired.empty()) co_return options_.interval;
  // The coroutine waits for the commit, so `expired` outlives the command.
  const CommitPipeline::Command removal = [&expired](WriteTxn& txn) -> Status {
    for (const auto& id : expired.deliveries) mutations::remove_delivery(txn, id);
    for (const auto& id : expired.dead) mutations::remove_delivery(txn, id);
    for (const auto& [id, key] : expired.events) {
      mutations::remove_event_if_orphan(txn, id);
      txn.del(Family::completed, key);
    }
    return Ok{};
  };
  const Status status = co_await async_commit(pipeline_, removal, asio::use_awaitable);
  if (task_.stopped()) co_return options_.interval;
  if (status) {
    dead_removed_(expired.dead.size());
    logger_.debug("retention removed expired records", {{"succeeded", expired.deliveries.size()},
                                                        {"dead", expired.dead.size()},
                                                        {"events", expired.events.size()}});
  } else {
    logger_.error("retention cleanup failed", {{"error", status.error().message}});
  }
  // A full chunk means more is waiting: continue soon, yet let other work in between.
  co_return expired.full && status ? std::chrono::milliseconds(10) : options_.interval;
}

RetentionCleaner::Expired RetentionCleaner::find_expired(UnixMillis now) const {
  Expired expired;
  std::size_t seen = 0;
  store_.scan(Family::completed, ScanRange{"", keys::time_bound(now - options_.retention_ms)},
              [&](std::string_view key, auto) {
                const auto entry = keys::decode_completed_key(key);
                if (entry.kind == keys::CompletedKind::event) {
                  expired.events.emplace_back(entry.id, std::string(key));
                } else {
                  expired.deliveries.push_back(entry.id);
                }
                return ++seen < options_.chunk;
              });
  expired.full = seen >= options_.chunk;
  seen = 0;
  store_.scan(Family::dead_letters, ScanRange{"", keys::time_bound(now - options_.dlq_retention_ms)},
              [&](std::string_view key, auto) {
                expired.dead.push_back(keys::decode_dead_letter_key(key).id);
                return ++seen < options_.chunk;
              });
  expired.full = expired.full || seen >= options_.chunk;
  return expired;
}

}  // namespace relay
