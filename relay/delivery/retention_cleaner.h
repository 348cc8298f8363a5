#pragma once
// Removes what retention no longer keeps (spec section 4): succeeded deliveries and events
// without deliveries after --retention, dead deliveries after --dlq-retention, each with its
// attempts, and an event once its last delivery is gone. Runs in the background in small
// chunks: scans on the blocking pool, removals as separate commits, so the hot path never waits
// behind a large delete. A PeriodicTask on the event loop runs the rounds (scan, commit).

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <functional>

#include "relay/core/clock.h"
#include "relay/core/logger.h"
#include "relay/core/periodic_task.h"
#include "storage/commit_pipeline.h"
#include "storage/store.h"

namespace relay {

struct RetentionOptions {
  std::int64_t retention_ms = 72 * 3'600'000LL;
  std::int64_t dlq_retention_ms = 7 * 86'400'000LL;
  std::chrono::milliseconds interval{30'000};
  std::size_t chunk = 500;
};

class RetentionCleaner {
 public:
  // `dead_removed` is told how many dead deliveries expired (for the DLQ depth gauge).
  RetentionCleaner(boost::asio::io_context& io, RetentionOptions options, const Clock& clock, Logger& logger,
                   Store& store, CommitPipeline& pipeline, boost::asio::thread_pool& blocking_pool,
                   std::function<void(std::size_t)> dead_removed);

  // Starts the rounds; the first runs at once.
  void start();
  // Ends the rounds: a wait ends at once, a scan or commit under way finishes but nothing after
  // it runs (no count, no log, no next round). The cleaner must outlive the io_context's run.
  void stop();

 private:
  struct Expired;
  // One round; answers when the next one is due.
  boost::asio::awaitable<std::chrono::milliseconds> clean_once();
  // On the blocking pool: up to a chunk of each kind of expired record, as of `now`.
  Expired find_expired(UnixMillis now) const;

  RetentionOptions options_;
  const Clock& clock_;
  Logger& logger_;
  Store& store_;
  CommitPipeline& pipeline_;
  boost::asio::thread_pool& blocking_pool_;
  std::function<void(std::size_t)> dead_removed_;
  PeriodicTask task_;  // last: its steps use the members above
};

}  // namespace relay
