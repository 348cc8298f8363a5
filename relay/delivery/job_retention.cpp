#include "relay/delivery/job_retention.h"

#include <boost/asio/use_awaitable.hpp>
#include <algorithm>

#include "relay/core/async_bridge.h"
#include "storage/async_commit.h"
#include "storage/job_mutations.h"
#include "storage/job_queries.h"

namespace relay {

namespace asio = boost::asio;

JobRetention::JobRetention(asio::io_context& io, JobRetentionOptions options, const Clock& clock, Logger& logger,
                           Store& store, CommitPipeline& pipeline, asio::thread_pool& blocking_pool, Removed removed)
    : options_(options),
      clock_(clock),
      logger_(logger),
      store_(store),
      pipeline_(pipeline),
      blocking_pool_(blocking_pool),
      removed_(std::move(removed)),
      task_(io, [this] { return step(); }) {
  options_.chunk = std::max<std::size_t>(options_.chunk, 1);
}

void JobRetention::start() {
  if (options_.retention_ms > 0) task_.start();
}

void JobRetention::stop() { task_.stop(); }

asio::awaitable<std::chrono::milliseconds> JobRetention::step() {
  const UnixMillis cutoff = clock_.now_ms() - options_.retention_ms;
  const auto scan = [&store = store_, cutoff, after = cursor_, budget = options_.chunk] {
    return queries::finished_jobs_before(store, cutoff, after, budget);
  };
  const queries::FinishedJobsRun found = co_await run_blocking(blocking_pool_, scan, asio::use_awaitable);
  if (task_.stopped()) co_return options_.interval;
  if (!found.expired.empty()) {
    // The coroutine waits for the commit, so `found` and `removed` outlive the command.
    std::vector<JobState> removed;
    const CommitPipeline::Command removal = [&found, &removed, cutoff](WriteTxn& txn) {
      return mutations::remove_finished_jobs(txn, found.expired, cutoff, removed);
    };
    const Status status = co_await async_commit(pipeline_, removal, asio::use_awaitable);
    if (task_.stopped()) co_return options_.interval;
    if (!status) {
      // The pass starts over after the interval: nothing was removed, nothing is skipped.
      logger_.error("job retention failed", {{"error", status.error().message}});
      cursor_.clear();
      co_return options_.interval;
    }
    if (!removed.empty()) {
      removed_(removed);
      logger_.debug("job retention removed finished jobs", {{"jobs", removed.size()}});
    }
  }
  if (found.reached_end) {
    cursor_.clear();
    co_return options_.interval;
  }
  cursor_ = found.last_id;
  co_return options_.pause;
}

}  // namespace relay
