#pragma once
// A test fixture over a real RocksDB in a temp dir and the commit pipeline in front of it, as
// relayd runs them, with the waits every storage test needs: run a command and wait for its
// durable status, and hold the writer so that later commands queue up behind it.
//
// The store and pipeline are protected members, not accessors, so that a test can close and
// reopen them in the order relayd does (pipeline first) and make pipelines of its own.

#include <gtest/gtest.h>

#include <future>
#include <memory>
#include <string>

#include "storage/commit_pipeline.h"
#include "storage/store.h"
#include "tests/support/temp_dir.h"

namespace relay::test {

struct StoreFixtureOptions {
  bool sync_writes = false;
  // false: no pipeline_; the test makes its own over store_ (one writer per store).
  bool pipeline = true;
};

class StoreFixture : public ::testing::Test {
 protected:
  explicit StoreFixture(StoreFixtureOptions options = {});
  ~StoreFixture() override;

  // Runs one command through pipeline_ and waits for its durable status (an internal error
  // after a generous deadline, so that a stuck writer fails the test instead of hanging it).
  Status commit(CommitPipeline::Command command);

  // Holds pipeline_'s writer until the returned promise is fulfilled (or destroyed), and
  // returns only once the holding command runs: its group is closed, so commands submitted
  // afterwards queue up behind it and commit as one group.
  std::promise<void> hold_writer();

  // The same on any pipeline: a future of the holding command's status.
  static std::future<Status> hold_writer(CommitPipeline& pipeline, std::shared_future<void> release);

  // Submits `command` to `pipeline`; the future holds its final status.
  static std::future<Status> submit(CommitPipeline& pipeline, CommitPipeline::Command command,
                                    CommitPipeline::Priority priority = CommitPipeline::Priority::foreground);

  // Waits for a submitted command's status, with the same deadline as commit().
  static Status wait(std::future<Status>& future);

  // Closes pipeline_ (if any) and the store, and opens them again on the same files.
  void reopen();

  const StoreFixtureOptions options_;
  TempDir dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<CommitPipeline> pipeline_;

 private:
  void open();
};

}  // namespace relay::test
