#pragma once
// Runs the durable jobs (spec section 6, "Replay and jobs"): a subscription's replay and a large
// dead-letter redrive. Turns of a PeriodicTask on the event loop, like RetentionCleaner's rounds: a
// job advances one chunk at a time (a bounded scan on the blocking pool, then one commit on the
// writer that holds the chunk's deliveries together with the job's moved cursor and counters,
// storage/job_mutations.h), and after each chunk the runner rests several times as long as the
// chunk took, so that a job takes a bounded share of the machine and ingest and deliveries keep
// flowing; when the machine is busy its chunks take longer and the job slows down with them.
// Running jobs take turns, one chunk each.
//
// The deliveries a chunk creates or redrives are handed to the scheduler after the commit, as
// redeliver and the DLQ redrive do: they are due now, below the scheduler's loading cursor, so
// its loader would never find them.
//
// At start the stored jobs are read: each `running` one resumes from its cursor (after a crash
// too: the cursor and what was created before it are one write), and all are counted for
// relay_jobs{state}. Only then does the runner start its JobRetention, which removes finished
// jobs after --job-retention and tells the runner what it removed: the counts stay right, and a
// job removed before the read could never be uncounted without having been counted.
//
// relay_jobs_finished_total{kind,state} counts the finishes this process committed (finished(),
// right after the commit), not the finished jobs it read at start: a restart then publishes 0
// rather than the stored ones again, which increase() would take for new failures, and a job
// that resumes and finishes after a restart is counted by the process that finished it. The one
// finish that can go uncounted is one whose commit landed just before a crash.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <array>
#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "relay/core/clock.h"
#include "relay/core/logger.h"
#include "relay/core/periodic_task.h"
#include "relay/delivery/job_retention.h"
#include "relay/model/job.h"
#include "relay/subscriptions/subscription_registry.h"
#include "storage/commit_pipeline.h"
#include "storage/keys.h"
#include "storage/store.h"

namespace relay {

class DeliveryScheduler;
class RelayMetrics;
class PayloadFilter;

struct JobRunnerOptions {
  std::size_t chunk = 200;  // events (replay) or dead letters (dlq_retry) per chunk and commit
  std::chrono::milliseconds pause{5};   // between two chunks, at least
  // After a chunk, the runner rests this many times as long as the chunk took (its scan and its
  // commit, wall time): a job uses at most about 1 / (1 + rest_per_work) of the time. With only
  // the 5 ms pause, a replay over stored events cut scenario 2's ingest to 58% on 2 cores
  // (benchmarks/README.md, "Replay"); the spec asks for at least 80%.
  unsigned rest_per_work = 4;
  std::chrono::milliseconds retry{1000};  // after a chunk whose commit failed (store not writable)
  JobRetentionOptions retention;          // of finished jobs
};

class JobRunner {
 public:
  JobRunner(boost::asio::io_context& io, JobRunnerOptions options, const Clock& clock, Logger& logger, Store& store,
            CommitPipeline& pipeline, SubscriptionRegistry& subscriptions, keys::IdGenerator& ids,
            DeliveryScheduler& scheduler, RelayMetrics& metrics, boost::asio::thread_pool& blocking_pool);
  ~JobRunner();

  // Reads the stored jobs on the blocking pool, then resumes the running ones.
  void start();
  // Ends the coroutine after whatever step is under way; a job left running resumes at the next
  // start. The runner must outlive the io_context's run.
  void stop();

  // On the event loop: a job just stored as running; it takes its turns from now on.
  void submit(Job job);
  // On the event loop: a job's cancellation is durable. Its chunk under way, if any, writes
  // nothing (it finds the job cancelled).
  void cancelled(const Job& job);

  std::size_t chunk_size() const { return options_.chunk; }

 private:
  struct Active;
  // Reads and counts the stored jobs, resumes the running ones, then starts the turns.
  boost::asio::awaitable<void> resume_stored();
  // One chunk of the job whose turn it is; answers the wait before the next turn.
  boost::asio::awaitable<std::chrono::milliseconds> take_turn();
  // One chunk of the job; answers the pause before the next chunk of any job.
  boost::asio::awaitable<std::chrono::milliseconds> run_chunk(Active& active);
  boost::asio::awaitable<std::chrono::milliseconds> replay_chunk(Active& active);
  boost::asio::awaitable<std::chrono::milliseconds> dlq_retry_chunk(Active& active);
  boost::asio::awaitable<void> fail(Active& active, std::string error);
  // A chunk committed: the job as it left it, finished if it is no longer running.
  void took_chunk(Active& active, Job after);
  // A job left `running` (done, failed or cancelled): counted once, dropped from the turns.
  void finished(std::string job_id, JobState state);
  // Finished jobs that retention removed: no longer counted.
  void removed(const std::vector<JobState>& states);
  void publish_counts();

  boost::asio::io_context& io_;
  JobRunnerOptions options_;
  const Clock& clock_;
  Logger& logger_;
  Store& store_;
  CommitPipeline& pipeline_;
  SubscriptionRegistry& subscriptions_;
  keys::IdGenerator& ids_;
  DeliveryScheduler& scheduler_;
  RelayMetrics& metrics_;
  boost::asio::thread_pool& blocking_pool_;
  bool stopped_ = false;
  bool idle_ = false;
  // Running jobs by id. Shared: a chunk under way keeps its job alive when a cancel drops it.
  std::unordered_map<std::string, std::shared_ptr<Active>> active_;
  std::deque<std::string> turns_;                                    // their order of turns
  std::array<std::uint64_t, std::size(kJobStates)> counts_{};
  JobRetention retention_;
  PeriodicTask turns_task_;  // last: its steps use the members above
};

}  // namespace relay
