// JobRetention on a real RocksDB, its own io_context and blocking pool, and a ManualClock:
// finished jobs go once --job-retention has passed since they finished, at most a chunk per
// commit, each commit reporting the states it removed (what keeps relay_jobs{state} right);
// running jobs stay whatever their age; 0 keeps every job.

#include "relay/delivery/job_retention.h"

#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <algorithm>
#include <memory>
#include <mutex>
#include <thread>

#include "storage/job_mutations.h"
#include "storage/job_queries.h"
#include "tests/support/relayd_api_test.h"
#include "tests/support/store_fixture.h"

namespace relay {
namespace job_retention_test {

namespace asio = boost::asio;
using namespace std::chrono_literals;

constexpr UnixMillis kStart = 1'760'000'000'000;
constexpr std::int64_t kHour = 3'600'000;

class JobRetentionTest : public test::StoreFixture {
 protected:
  JobRetentionTest() : ids_(clock_, store_->instance_id()) {}

  ~JobRetentionTest() override {
    io_.stop();
    if (loop_.joinable()) loop_.join();
    pool_.join();
    // No commit may complete (and post to io_) once the members go away.
    pipeline_->stop();
  }

  // A job as stored; finished at `finished_at` unless it is running.
  std::string store_job(JobState state, UnixMillis finished_at = 0) {
    Job job;
    job.id = ids_.next(keys::kJobPrefix);
    job.kind = JobKind::replay;
    job.state = state;
    job.replay = {"sub_x", kStart, kStart + 1, {"*"}, false};
    job.created_at = clock_.now_ms();
    job.finished_at = finished_at;
    EXPECT_TRUE(commit([&](WriteTxn& txn) { return mutations::create_job(txn, job); }).ok());
    return job.id;
  }

  bool stored(const std::string& id) { return queries::job(*store_, id).has_value(); }

  void start(JobRetentionOptions options) {
    retention_ = std::make_unique<JobRetention>(io_, options, clock_, logger_, *store_, *pipeline_, pool_,
                                                [this](const std::vector<JobState>& states) {
                                                  std::lock_guard lock(mutex_);
                                                  commits_.push_back(states);
                                                });
    asio::post(io_, [this] { retention_->start(); });
    loop_ = std::thread([this] {
      auto guard = asio::make_work_guard(io_);
      io_.run();
    });
  }

  // Every state reported so far, sorted.
  std::vector<JobState> removed() {
    std::lock_guard lock(mutex_);
    std::vector<JobState> all;
    for (const auto& states : commits_) all.insert(all.end(), states.begin(), states.end());
    std::sort(all.begin(), all.end());
    return all;
  }

  std::size_t largest_commit() {
    std::lock_guard lock(mutex_);
    std::size_t most = 0;
    for (const auto& states : commits_) most = std::max(most, states.size());
    return most;
  }

  ManualClock clock_{kStart};
  keys::IdGenerator ids_;
  Logger logger_{LogLevel::error};
  asio::io_context io_;
  asio::thread_pool pool_{1};
  std::unique_ptr<JobRetention> retention_;
  std::thread loop_;
  std::mutex mutex_;
  std::vector<std::vector<JobState>> commits_;
};

TEST_F(JobRetentionTest, FinishedJobsGoAfterTheRetentionAChunkAtATimeAndRunningOnesStay) {
  const std::string done = store_job(JobState::done, kStart);
  const std::string failed = store_job(JobState::failed, kStart + 1);
  const std::string running = store_job(JobState::running);
  const std::string cancelled = store_job(JobState::cancelled, kStart + 2);
  const std::string recent = store_job(JobState::done, kStart + 2 * kHour);
  clock_.set(kStart + 2 * kHour + 1);  // the first three finished more than an hour ago

  JobRetentionOptions options;
  options.retention_ms = kHour;
  options.chunk = 2;
  options.interval = 20ms;  // the next pass, after the clock moves
  options.pause = 1ms;
  start(options);

  const std::vector<JobState> expired{JobState::done, JobState::failed, JobState::cancelled};
  ASSERT_TRUE(test::eventually([&] { return removed() == expired; })) << removed().size();
  EXPECT_FALSE(stored(done));
  EXPECT_FALSE(stored(failed));
  EXPECT_FALSE(stored(cancelled));
  EXPECT_TRUE(stored(recent)) << "finished an instant ago";
  EXPECT_TRUE(stored(running));
  EXPECT_LE(largest_commit(), 2u) << "a commit removes at most a chunk";

  // An hour later the recent one has expired too; the running one, now hours old, still stays.
  clock_.advance(kHour);
  const std::vector<JobState> all{JobState::done, JobState::done, JobState::failed, JobState::cancelled};
  ASSERT_TRUE(test::eventually([&] { return removed() == all; })) << removed().size();
  EXPECT_FALSE(stored(recent));
  EXPECT_TRUE(stored(running));
}

TEST_F(JobRetentionTest, ZeroKeepsFinishedJobsForever) {
  JobRetention retention(io_, JobRetentionOptions{0, 1ms, 10, 1ms}, clock_, logger_, *store_, *pipeline_, pool_,
                         [](const std::vector<JobState>&) { ADD_FAILURE() << "removed with retention 0"; });
  retention.start();
  EXPECT_EQ(io_.poll(), 0u) << "retention 0 starts no pass";
}

}  // namespace job_retention_test
}  // namespace relay
