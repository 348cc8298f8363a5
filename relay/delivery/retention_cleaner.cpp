#include "relay/delivery/retention_cleaner.h"

#include <boost/asio/post.hpp>

#include "storage/keys.h"
#include "storage/mutations.h"

namespace relay {

namespace asio = boost::asio;

struct RetentionCleaner::Expired {
  std::vector<std::string> deliveries;  // succeeded, past --retention
  std::vector<std::pair<std::string, std::string>> events;  // (id, completed key): no deliveries, past --retention
  std::vector<std::string> dead;        // past --dlq-retention
  bool full = false;                    // a chunk limit was hit: more may be waiting
};

RetentionCleaner::RetentionCleaner(asio::io_context& io, RetentionOptions options, const Clock& clock, Logger& logger,
                                   Store& store, CommitPipeline& pipeline, asio::thread_pool& blocking_pool,
                                   std::function<void(std::size_t)> dead_removed)
    : io_(io),
      options_(options),
      clock_(clock),
      logger_(logger),
      store_(store),
      pipeline_(pipeline),
      blocking_pool_(blocking_pool),
      dead_removed_(std::move(dead_removed)),
      timer_(io),
      alive_(std::make_shared<bool>(true)) {}

RetentionCleaner::~RetentionCleaner() { *alive_ = false; }

void RetentionCleaner::start() { schedule_next(std::chrono::milliseconds(0)); }

void RetentionCleaner::stop() {
  *alive_ = false;
  timer_.cancel();
}

void RetentionCleaner::schedule_next(std::chrono::milliseconds delay) {
  timer_.expires_after(delay);
  timer_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
    if (!ec && *alive) run_once();
  });
}

void RetentionCleaner::run_once() {
  const UnixMillis now = clock_.now_ms();
  asio::post(blocking_pool_, [this, alive = alive_, now] {
    auto expired = std::make_shared<Expired>();
    std::size_t seen = 0;
    store_.scan(Family::completed, ScanRange{"", keys::time_bound(now - options_.retention_ms)},
                [&](std::string_view key, auto) {
                  const auto entry = keys::decode_completed_key(key);
                  if (entry.kind == keys::CompletedKind::event) {
                    expired->events.emplace_back(entry.id, std::string(key));
                  } else {
                    expired->deliveries.push_back(entry.id);
                  }
                  return ++seen < options_.chunk;
                });
    expired->full = seen >= options_.chunk;
    seen = 0;
    store_.scan(Family::dead_letters, ScanRange{"", keys::time_bound(now - options_.dlq_retention_ms)},
                [&](std::string_view key, auto) {
                  expired->dead.push_back(keys::decode_dead_letter_key(key).id);
                  return ++seen < options_.chunk;
                });
    expired->full = expired->full || seen >= options_.chunk;
    if (expired->deliveries.empty() && expired->events.empty() && expired->dead.empty()) {
      asio::post(io_, [this, alive] {
        if (*alive) schedule_next(options_.interval);
      });
      return;
    }
    pipeline_.submit(
        [expired](WriteTxn& txn) -> Status {
          for (const auto& id : expired->deliveries) mutations::remove_delivery(txn, id);
          for (const auto& id : expired->dead) mutations::remove_delivery(txn, id);
          for (const auto& [id, key] : expired->events) {
            mutations::remove_event_if_orphan(txn, id);
            txn.del(Family::completed, key);
          }
          return Ok{};
        },
        [this, alive, expired](const Status& status) {
          asio::post(io_, [this, alive, expired, status] {
            if (!*alive) return;
            if (status) {
              dead_removed_(expired->dead.size());
              logger_.debug("retention removed expired records", {{"succeeded", expired->deliveries.size()},
                                                                  {"dead", expired->dead.size()},
                                                                  {"events", expired->events.size()}});
            } else {
              logger_.error("retention cleanup failed", {{"error", status.error().message}});
            }
            // A full chunk means more is waiting: continue soon, yet let other work in between.
            schedule_next(expired->full && status ? std::chrono::milliseconds(10) : options_.interval);
          });
        });
  });
}

}  // namespace relay
