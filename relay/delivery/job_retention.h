#pragma once
// Removes finished jobs (done, failed, cancelled) once --job-retention has passed since they
// finished; a running job is never removed, however old. Like RetentionCleaner, in the
// background and in small steps: a pass walks the `jobs` family in id order, a bounded number of
// jobs per scan on the blocking pool, and removes what a scan found expired in one commit whose
// command reads each job again (storage/job_mutations.h), so a job that changed since the scan
// is left alone. A pass continues shortly after a step and starts over after an interval.
//
// JobRunner owns it and starts it once it has counted the stored jobs, and `removed` is told the
// states of the jobs each commit removed, so relay_jobs{state} stays right.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "relay/core/clock.h"
#include "relay/core/logger.h"
#include "relay/core/periodic_task.h"
#include "relay/model/job.h"
#include "storage/commit_pipeline.h"
#include "storage/store.h"

namespace relay {

struct JobRetentionOptions {
  std::int64_t retention_ms = 7 * 86'400'000LL;  // --job-retention; 0: finished jobs are kept forever
  std::chrono::milliseconds interval{30'000};     // between two passes (--retention-interval)
  std::size_t chunk = 500;                         // jobs visited per scan, at most removed per commit
  std::chrono::milliseconds pause{10};             // between two steps of a pass
};

class JobRetention {
 public:
  using Removed = std::function<void(const std::vector<JobState>&)>;

  JobRetention(boost::asio::io_context& io, JobRetentionOptions options, const Clock& clock, Logger& logger,
               Store& store, CommitPipeline& pipeline, boost::asio::thread_pool& blocking_pool, Removed removed);

  // Starts the passes, the first at once; nothing when retention is 0 (kept forever).
  void start();
  // Ends the passes: a wait ends at once, a scan or commit under way finishes but nothing after
  // it runs (no `removed`, no next step). Must outlive the io_context's run.
  void stop();

 private:
  // One step of a pass; answers the wait before the next one.
  boost::asio::awaitable<std::chrono::milliseconds> step();

  JobRetentionOptions options_;
  const Clock& clock_;
  Logger& logger_;
  Store& store_;
  CommitPipeline& pipeline_;
  boost::asio::thread_pool& blocking_pool_;
  Removed removed_;
  std::string cursor_;  // the last job the pass under way visited; empty: the next pass starts over
  PeriodicTask task_;   // last: its steps use the members above
};

}  // namespace relay
