// CommitPipeline: group commit on a real RocksDB. Commands from many threads all complete; a
// failing command is rolled back while the rest of its group commits; commands see the writes
// of earlier commands of the same group; merge operands of a group add up.

#include "storage/commit_pipeline.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "storage/records.h"
#include "tests/support/store_fixture.h"

namespace relay {
namespace commit_pipeline_test {

// Group sizes as reported to the commit observer.
class GroupLog {
 public:
  CommitPipeline::CommitObserver observer() {
    return [this](double seconds, std::size_t commands) {
      EXPECT_GE(seconds, 0.0);
      std::lock_guard lock(mutex_);
      sizes_.push_back(commands);
    };
  }
  std::vector<std::size_t> sizes() {
    std::lock_guard lock(mutex_);
    return sizes_;
  }

 private:
  std::mutex mutex_;
  std::vector<std::size_t> sizes_;
};

// Each test makes its own pipelines over store_, with the observer it needs.
class CommitPipelineTest : public test::StoreFixture {
 protected:
  CommitPipelineTest() : StoreFixture({.sync_writes = true, .pipeline = false}) {}

  static CommitPipeline::Command put(std::string key, std::string value) {
    return [key, value](WriteTxn& txn) -> Status {
      txn.put(Family::events, key, value);
      return Ok{};
    };
  }
};

TEST_F(CommitPipelineTest, ManyThreadsSubmitConcurrentlyAndAllComplete) {
  GroupLog groups;
  CommitPipeline pipeline(*store_, groups.observer());
  constexpr int kThreads = 8;
  constexpr int kPerThread = 200;
  std::vector<std::vector<std::future<Status>>> futures(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        futures[t].push_back(submit(pipeline, put("t" + std::to_string(t) + "-" + std::to_string(i), "v")));
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (auto& per_thread : futures) {
    for (auto& future : per_thread) ASSERT_TRUE(wait(future).ok());
  }
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      ASSERT_EQ(store_->get(Family::events, "t" + std::to_string(t) + "-" + std::to_string(i)), "v");
    }
  }
  std::size_t total = 0;
  for (auto size : groups.sizes()) total += size;
  EXPECT_EQ(total, static_cast<std::size_t>(kThreads * kPerThread));
}

TEST_F(CommitPipelineTest, CommandsQueuedTogetherCommitAsOneGroup) {
  GroupLog groups;
  CommitPipeline pipeline(*store_, groups.observer());
  std::promise<void> release;
  auto first = hold_writer(pipeline, release.get_future().share());
  std::vector<std::future<Status>> rest;
  for (int i = 0; i < 10; ++i) rest.push_back(submit(pipeline, put("k" + std::to_string(i), "v")));
  release.set_value();
  ASSERT_TRUE(wait(first).ok());
  for (auto& future : rest) ASSERT_TRUE(wait(future).ok());
  EXPECT_EQ(groups.sizes(), (std::vector<std::size_t>{1, 10}));
}

TEST_F(CommitPipelineTest, AForegroundCommandGoesAheadOfQueuedBackgroundWork) {
  GroupLog groups;
  CommitPipeline pipeline(*store_, groups.observer());
  std::promise<void> release;
  auto first = hold_writer(pipeline, release.get_future().share());
  // More background commands than one group takes, then one foreground command.
  constexpr int kBackground = 3000;
  std::mutex order_mutex;
  std::vector<std::string> order;
  const auto record = [&](std::string label) {
    return [&, label](WriteTxn&) -> Status {
      std::lock_guard lock(order_mutex);
      order.push_back(label);
      return Ok{};
    };
  };
  std::atomic<int> background_done = 0;
  for (int i = 0; i < kBackground; ++i) {
    pipeline.submit(record("background"), [&](const Status&) { ++background_done; },
                    CommitPipeline::Priority::background);
  }
  auto foreground = submit(pipeline, record("foreground"));
  release.set_value();
  ASSERT_TRUE(wait(first).ok());
  ASSERT_TRUE(wait(foreground).ok());
  pipeline.stop();
  EXPECT_EQ(background_done.load(), kBackground);
  ASSERT_EQ(order.size(), static_cast<std::size_t>(kBackground + 1));
  EXPECT_EQ(order.front(), "foreground");
  EXPECT_EQ(groups.sizes(), (std::vector<std::size_t>{1, 2048, kBackground + 1 - 2048}));
}

TEST_F(CommitPipelineTest, AFailingCommandIsRolledBackWhileItsGroupCommits) {
  CommitPipeline pipeline(*store_, nullptr);
  std::promise<void> release;
  auto first = hold_writer(pipeline, release.get_future().share());
  auto before = submit(pipeline, put("before", "1"));
  auto failing = submit(pipeline, [](WriteTxn& txn) -> Status {
    txn.put(Family::events, "failing", "x");
    txn.put(Family::events, "before", "overwritten by a failing command");
    return make_error(Errc::conflict, "no");
  });
  auto throwing = submit(pipeline, [](WriteTxn& txn) -> Status {
    txn.put(Family::events, "throwing", "x");
    throw std::runtime_error("boom");
  });
  auto after = submit(pipeline, put("after", "2"));
  release.set_value();

  ASSERT_TRUE(wait(first).ok());
  EXPECT_TRUE(wait(before).ok());
  const Status failed = wait(failing);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().code, Errc::conflict);
  EXPECT_EQ(failed.error().message, "no");
  const Status thrown = wait(throwing);
  ASSERT_FALSE(thrown.ok());
  EXPECT_EQ(thrown.error().code, Errc::internal);
  EXPECT_EQ(thrown.error().message, "boom");
  EXPECT_TRUE(wait(after).ok());

  EXPECT_EQ(store_->get(Family::events, "before"), "1");
  EXPECT_EQ(store_->get(Family::events, "after"), "2");
  EXPECT_FALSE(store_->get(Family::events, "failing").has_value());
  EXPECT_FALSE(store_->get(Family::events, "throwing").has_value());
}

TEST_F(CommitPipelineTest, UndosRunForTheCommandsWhoseWritesRollBackOnly) {
  CommitPipeline pipeline(*store_, nullptr);
  std::vector<std::string> undone;  // written on the writer thread, read after the waits
  std::promise<void> release;
  auto first = hold_writer(pipeline, release.get_future().share());
  const auto with_undo = [&undone](std::string name, bool fail) {
    return [&undone, name, fail](WriteTxn& txn) -> Status {
      txn.put(Family::events, name, "x");
      txn.on_abort([&undone, name] { undone.push_back(name + " 1"); });
      txn.on_abort([&undone, name] { undone.push_back(name + " 2"); });
      if (fail) return make_error(Errc::conflict, "no");
      return Ok{};
    };
  };
  auto kept = submit(pipeline, with_undo("kept", false));
  auto failing = submit(pipeline, with_undo("failing", true));
  auto throwing = submit(pipeline, [&undone](WriteTxn& txn) -> Status {
    txn.on_abort([&undone] { undone.push_back("throwing"); });
    throw std::runtime_error("boom");
  });
  auto later = submit(pipeline, with_undo("later", false));
  release.set_value();

  ASSERT_TRUE(wait(first).ok());
  EXPECT_TRUE(wait(kept).ok());
  EXPECT_FALSE(wait(failing).ok());
  EXPECT_FALSE(wait(throwing).ok());
  EXPECT_TRUE(wait(later).ok());
  // Latest first within a command; the kept commands' undos never run once the group is written.
  EXPECT_EQ(undone, (std::vector<std::string>{"failing 2", "failing 1", "throwing"}));
  EXPECT_TRUE(store_->get(Family::events, "kept").has_value());
  EXPECT_FALSE(store_->get(Family::events, "failing").has_value());

  // Nor in a later group: they were forgotten with theirs.
  auto again = submit(pipeline, put("again", "1"));
  EXPECT_TRUE(wait(again).ok());
  EXPECT_EQ(undone.size(), 3u);
}

TEST_F(CommitPipelineTest, PutNewWritesOfAFailingCommandAreRolledBackWhileItsGroupCommits) {
  CommitPipeline pipeline(*store_, nullptr);
  std::promise<void> release;
  auto first = hold_writer(pipeline, release.get_future().share());
  auto before = submit(pipeline, [](WriteTxn& txn) -> Status {
    txn.put_new(Family::events, "before", "1");
    return Ok{};
  });
  auto failing = submit(pipeline, [](WriteTxn& txn) -> Status {
    txn.put_new(Family::events, "failing-new", "x");
    txn.put(Family::events, "failing-indexed", "x");
    txn.put_new(Family::attempts, "failing-new-too", "x");
    return make_error(Errc::conflict, "no");
  });
  // Only put_new writes: nothing in the index to roll back, the batch itself must be.
  auto failing_unindexed = submit(pipeline, [](WriteTxn& txn) -> Status {
    txn.put_new(Family::events, "unindexed", "x");
    return make_error(Errc::conflict, "no");
  });
  auto after = submit(pipeline, [](WriteTxn& txn) -> Status {
    txn.put_new(Family::events, "after", "2");
    txn.put(Family::events, "after-indexed", "3");
    return Ok{};
  });
  release.set_value();
  ASSERT_TRUE(wait(first).ok());
  EXPECT_TRUE(wait(before).ok());
  EXPECT_FALSE(wait(failing).ok());
  EXPECT_FALSE(wait(failing_unindexed).ok());
  EXPECT_TRUE(wait(after).ok());

  EXPECT_EQ(store_->get(Family::events, "before"), "1");
  EXPECT_EQ(store_->get(Family::events, "after"), "2");
  EXPECT_EQ(store_->get(Family::events, "after-indexed"), "3");
  EXPECT_FALSE(store_->get(Family::events, "failing-new").has_value());
  EXPECT_FALSE(store_->get(Family::events, "failing-indexed").has_value());
  EXPECT_FALSE(store_->get(Family::attempts, "failing-new-too").has_value());
  EXPECT_FALSE(store_->get(Family::events, "unindexed").has_value());
}

TEST_F(CommitPipelineTest, PutNewValuesAreReadableAfterCommitAndLaterWritesOfTheGroupWin) {
  CommitPipeline pipeline(*store_, nullptr);
  std::promise<void> release;
  auto first = hold_writer(pipeline, release.get_future().share());
  auto minted = submit(pipeline, [](WriteTxn& txn) -> Status {
    txn.put_new(Family::deliveries, "kept", "v");
    txn.put_new(Family::deliveries, "deleted", "v");
    txn.put_new(Family::deliveries, "overwritten", "v");
    return Ok{};
  });
  auto later = submit(pipeline, [](WriteTxn& txn) -> Status {
    txn.del(Family::deliveries, "deleted");
    txn.put(Family::deliveries, "overwritten", "w");
    return Ok{};
  });
  release.set_value();
  ASSERT_TRUE(wait(first).ok());
  ASSERT_TRUE(wait(minted).ok());
  ASSERT_TRUE(wait(later).ok());
  EXPECT_EQ(store_->get(Family::deliveries, "kept"), "v");
  EXPECT_FALSE(store_->get(Family::deliveries, "deleted").has_value());
  EXPECT_EQ(store_->get(Family::deliveries, "overwritten"), "w");

  std::optional<std::string> read_by_a_later_group;
  auto reader = submit(pipeline, [&](WriteTxn& txn) -> Status {
    read_by_a_later_group = txn.get(Family::deliveries, "kept");
    return Ok{};
  });
  ASSERT_TRUE(wait(reader).ok());
  EXPECT_EQ(read_by_a_later_group, "v");
}

TEST_F(CommitPipelineTest, ARolledBackDeleteLeavesTheKey) {
  CommitPipeline pipeline(*store_, nullptr);
  auto seed = submit(pipeline, put("kept", "v"));
  ASSERT_TRUE(wait(seed).ok());
  auto failing = submit(pipeline, [](WriteTxn& txn) -> Status {
    txn.del(Family::events, "kept");
    return make_error(Errc::invalid_field, "no");
  });
  EXPECT_FALSE(wait(failing).ok());
  EXPECT_EQ(store_->get(Family::events, "kept"), "v");
}

TEST_F(CommitPipelineTest, CommandsSeeEarlierWritesOfTheirGroupButNotRolledBackOnes) {
  CommitPipeline pipeline(*store_, nullptr);
  auto seed = submit(pipeline, put("committed", "old"));
  ASSERT_TRUE(wait(seed).ok());

  std::promise<void> release;
  auto first = hold_writer(pipeline, release.get_future().share());
  auto writer = submit(pipeline, [](WriteTxn& txn) -> Status {
    txn.put(Family::events, "counter", "1");
    txn.put(Family::events, "committed", "new");
    txn.put(Family::deliveries, "b", "");
    return Ok{};
  });
  auto failing = submit(pipeline, [](WriteTxn& txn) -> Status {
    txn.put(Family::events, "counter", "rolled back");
    txn.del(Family::events, "committed");
    return make_error(Errc::conflict, "no");
  });
  std::optional<std::string> seen_counter;
  std::optional<std::string> seen_committed;
  std::vector<std::string> scanned;
  auto reader = submit(pipeline, [&](WriteTxn& txn) -> Status {
    seen_counter = txn.get(Family::events, "counter");
    seen_committed = txn.get(Family::events, "committed");
    txn.put(Family::events, "counter", *seen_counter + "+1");
    txn.scan(Family::deliveries, ScanRange{}, [&](std::string_view key, std::string_view) {
      scanned.emplace_back(key);
      return true;
    });
    return Ok{};
  });
  // A committed key and one written by this group interleave in the scan.
  rocksdb::WriteBatch committed;
  ASSERT_TRUE(committed.Put(store_->handle(Family::deliveries), "a", "").ok());
  ASSERT_TRUE(committed.Put(store_->handle(Family::deliveries), "c", "").ok());
  ASSERT_TRUE(store_->write(committed).ok());
  release.set_value();

  ASSERT_TRUE(wait(first).ok());
  ASSERT_TRUE(wait(writer).ok());
  ASSERT_FALSE(wait(failing).ok());
  ASSERT_TRUE(wait(reader).ok());
  EXPECT_EQ(seen_counter, "1");
  EXPECT_EQ(seen_committed, "new");
  EXPECT_EQ(scanned, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(store_->get(Family::events, "counter"), "1+1");
  EXPECT_EQ(store_->get(Family::events, "committed"), "new");
}

// Writes of the group outside the range must stay outside the scan, on both sides and in both
// directions, as they do for committed keys (mutations scan one event's deliveries this way).
TEST_F(CommitPipelineTest, MergesOfAGroupAddUpAndARolledBackMergeDoesNot) {
  CommitPipeline pipeline(*store_, nullptr);
  const auto one_more = [](UnixMillis seen) { return records::encode_record(EventTypeStats{"", 1, seen}); };
  const auto merge = [&one_more](UnixMillis seen) {
    return [&one_more, seen](WriteTxn& txn) -> Status {
      txn.merge(Family::event_types, "t", one_more(seen));
      return Ok{};
    };
  };
  auto earlier = submit(pipeline, merge(50));
  ASSERT_TRUE(wait(earlier).ok());

  std::promise<void> release;
  auto first = hold_writer(pipeline, release.get_future().share());
  std::vector<std::future<Status>> counted;
  for (UnixMillis seen : {100, 102, 101}) counted.push_back(submit(pipeline, merge(seen)));
  auto failing = submit(pipeline, [&one_more](WriteTxn& txn) -> Status {
    txn.merge(Family::event_types, "t", one_more(999));
    return make_error(Errc::conflict, "no");
  });
  std::optional<EventTypeStats> seen_in_group;
  auto reader = submit(pipeline, [&seen_in_group](WriteTxn& txn) -> Status {
    if (auto bytes = txn.get(Family::event_types, "t")) seen_in_group = records::decode_event_type_stats("t", *bytes);
    return Ok{};
  });
  release.set_value();
  ASSERT_TRUE(wait(first).ok());
  for (auto& future : counted) ASSERT_TRUE(wait(future).ok());
  EXPECT_FALSE(wait(failing).ok());
  ASSERT_TRUE(wait(reader).ok());

  // The group's own operands join the batch after its last command: a read sees the earlier value.
  ASSERT_TRUE(seen_in_group);
  EXPECT_EQ(seen_in_group->count, 1u);
  const auto stored = store_->get(Family::event_types, "t");
  ASSERT_TRUE(stored);
  const auto stats = records::decode_event_type_stats("t", *stored);
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->count, 4u);
  EXPECT_EQ(stats->last_seen, 102);
}

TEST_F(CommitPipelineTest, ScanThroughTheBatchHonoursBoundsAndDirection) {
  CommitPipeline pipeline(*store_, nullptr);
  std::vector<std::string> forward;
  std::vector<std::string> backward;
  auto done = submit(pipeline, [&](WriteTxn& txn) -> Status {
    for (const char* key : {"a", "b", "c", "d", "e", "f"}) txn.put(Family::attempts, key, "");
    txn.del(Family::attempts, "c");
    txn.scan(Family::attempts, ScanRange{"b", "e", false}, [&](std::string_view key, std::string_view) {
      forward.emplace_back(key);
      return true;
    });
    txn.scan(Family::attempts, ScanRange{"a", "d", true}, [&](std::string_view key, std::string_view) {
      backward.emplace_back(key);
      return true;
    });
    return Ok{};
  });
  ASSERT_TRUE(wait(done).ok());
  EXPECT_EQ(forward, (std::vector<std::string>{"b", "d"}));
  EXPECT_EQ(backward, (std::vector<std::string>{"b", "a"}));
}

TEST_F(CommitPipelineTest, StopFinishesQueuedCommandsAndRefusesLaterOnes) {
  CommitPipeline pipeline(*store_, nullptr);
  std::promise<void> release;
  auto first = hold_writer(pipeline, release.get_future().share());
  auto queued = submit(pipeline, put("queued", "v"));
  std::thread stopper([&] { pipeline.stop(); });
  release.set_value();
  stopper.join();
  EXPECT_TRUE(wait(first).ok());
  EXPECT_TRUE(wait(queued).ok());
  EXPECT_EQ(store_->get(Family::events, "queued"), "v");

  auto late = submit(pipeline, put("late", "v"));
  const Status refused = wait(late);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::unavailable);
  EXPECT_FALSE(store_->get(Family::events, "late").has_value());
  pipeline.stop();  // idempotent
}

TEST_F(CommitPipelineTest, DestructorFinishesQueuedCommands) {
  std::vector<std::future<Status>> futures;
  {
    CommitPipeline pipeline(*store_, nullptr);
    for (int i = 0; i < 50; ++i) futures.push_back(submit(pipeline, put("d" + std::to_string(i), "v")));
  }
  for (auto& future : futures) EXPECT_TRUE(wait(future).ok());
  for (int i = 0; i < 50; ++i) EXPECT_EQ(store_->get(Family::events, "d" + std::to_string(i)), "v");
}

TEST_F(CommitPipelineTest, CommittedWritesSurviveReopen) {
  {
    CommitPipeline pipeline(*store_, nullptr);
    auto done = submit(pipeline, put("durable", "yes"));
    ASSERT_TRUE(wait(done).ok());
  }
  reopen();
  EXPECT_EQ(store_->get(Family::events, "durable"), "yes");
}

}  // namespace commit_pipeline_test
}  // namespace relay
