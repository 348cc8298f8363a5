// Jobs on a real RocksDB: a chunk's deliveries and the job's cursor and counters are one
// commit, a stale or repeated chunk writes nothing, a job resumes after a reopen without
// duplicates, cancel, only_failed, and the scans that feed the chunks.

#include "storage/job_mutations.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "storage/job_queries.h"
#include "storage/job_records.h"
#include "storage/records.h"
#include "storage/mutations.h"
#include "storage/queries.h"
#include "tests/support/store_fixture.h"

namespace relay {
namespace job_mutations_test {

using Targets = std::vector<std::shared_ptr<const Subscription>>;

constexpr UnixMillis kStart = 1'760'000'000'000;

class JobMutationsTest : public test::StoreFixture {
 protected:
  JobMutationsTest() : ids_(clock_, store_->instance_id()) {
    auto sub = std::make_shared<Subscription>();
    sub->id = ids_.next(keys::kSubscriptionPrefix);
    sub->url = "https://example.com/hook";
    sub_ = sub;
  }

  // Stores an event with deliveries to `targets`, one millisecond after the previous one.
  Event store_event(const Targets& targets = {}) {
    clock_.advance(1);
    mutations::NewEvent input{"", "meeting.completed", std::make_shared<const std::string>(R"({"n":1})")};
    mutations::IngestedEvent out;
    EXPECT_TRUE(commit([&](WriteTxn& txn) { return mutations::ingest(txn, input, targets, ids_, clock_.now_ms(), out); }).ok());
    return out.event;
  }

  // Ends every delivery of the event dead (its window expired); answers them as stored.
  std::vector<Delivery> kill_deliveries_of(const std::string& event_id) {
    std::vector<Delivery> dead;
    for (const auto& d : queries::deliveries_of_event(*store_, event_id)) {
      Delivery out;
      EXPECT_TRUE(commit([&](WriteTxn& txn) {
                    ordering_queue::Advance advance;
                    return mutations::expire_delivery(txn, d, "window_expired", clock_.now_ms(), nullptr, out, advance);
                  }).ok());
      dead.push_back(out);
    }
    return dead;
  }

  Job replay_job(UnixMillis since, UnixMillis until, bool only_failed = false) {
    Job job;
    job.id = ids_.next(keys::kJobPrefix);
    job.kind = JobKind::replay;
    job.replay = {sub_->id, since, until, {"*"}, only_failed};
    job.created_at = clock_.now_ms();
    EXPECT_TRUE(commit([&](WriteTxn& txn) { return mutations::create_job(txn, job); }).ok());
    return job;
  }

  Job stored_job(const std::string& id) {
    auto job = queries::job(*store_, id);
    EXPECT_TRUE(job.has_value()) << id;
    return job.value_or(Job{});
  }

  // One chunk as the runner runs it: scan `budget` events past the stored cursor, commit them.
  mutations::ChunkOutcome replay_step(const std::string& job_id, std::size_t budget) {
    const Job job = stored_job(job_id);
    const auto run = queries::events_in_range(*store_, job.replay.since, job.replay.until, job.cursor, budget);
    mutations::ReplayChunk chunk{job.id, job.cursor, {}, run.last_id.empty() ? job.cursor : run.last_id, run.reached_end};
    for (const auto& e : run.events) chunk.events.push_back(e.id);
    mutations::ChunkOutcome out;
    EXPECT_TRUE(commit([&](WriteTxn& txn) { return mutations::replay_chunk(txn, chunk, sub_, ids_, clock_.now_ms(), out); }).ok());
    return out;
  }

  // Deliveries to the subscription, by event id.
  std::map<std::string, std::vector<Delivery>> deliveries_by_event() {
    std::map<std::string, std::vector<Delivery>> out;
    store_->scan(Family::deliveries, ScanRange{}, [&](auto, std::string_view value) {
      auto d = records::decode_delivery(value);
      if (d && d->subscription_id == sub_->id) out[d->event_id].push_back(*d);
      return true;
    });
    return out;
  }

  ManualClock clock_{kStart};
  keys::IdGenerator ids_;
  std::shared_ptr<const Subscription> sub_;
};

TEST_F(JobMutationsTest, AChunkCommitsItsDeliveriesWithTheMovedCursorAndARepeatWritesNothing) {
  std::vector<Event> events;
  for (int i = 0; i < 5; ++i) events.push_back(store_event());
  const Job job = replay_job(kStart, kStart + 100);

  const auto run = queries::events_in_range(*store_, kStart, kStart + 100, "", 3);
  ASSERT_EQ(run.events.size(), 3u);
  EXPECT_FALSE(run.reached_end);
  mutations::ReplayChunk chunk{job.id, "", {run.events[0].id, run.events[1].id, run.events[2].id}, run.last_id, false};
  mutations::ChunkOutcome out;
  ASSERT_TRUE(commit([&](WriteTxn& txn) { return mutations::replay_chunk(txn, chunk, sub_, ids_, clock_.now_ms(), out); }).ok());
  EXPECT_EQ(out.delivered, 3u);
  const Job after = stored_job(job.id);
  EXPECT_EQ(after.cursor, events[2].id);
  EXPECT_EQ(after.matched, 3u);
  EXPECT_EQ(after.created, 3u);
  EXPECT_EQ(after.state, JobState::running);
  // Each created delivery is stored, pending, with its schedule key.
  for (const auto& group : out.groups) {
    for (const auto& d : group.deliveries) {
      const auto stored = queries::delivery(*store_, d.id);
      ASSERT_TRUE(stored.has_value());
      EXPECT_EQ(stored->state, DeliveryState::pending);
      EXPECT_TRUE(store_->get(Family::schedule, keys::schedule_key(d.next_attempt_at, d.id)).has_value());
    }
  }

  // The same chunk again (a retry after a lost answer, a second runner): its cursor is stale.
  mutations::ChunkOutcome again;
  ASSERT_TRUE(commit([&](WriteTxn& txn) { return mutations::replay_chunk(txn, chunk, sub_, ids_, clock_.now_ms(), again); }).ok());
  EXPECT_EQ(again.delivered, 0u);
  EXPECT_EQ(deliveries_by_event().size(), 3u);
  EXPECT_EQ(stored_job(job.id).created, 3u);
}

TEST_F(JobMutationsTest, AJobResumedAfterReopenCreatesOneDeliveryPerEvent) {
  for (int i = 0; i < 10; ++i) store_event();
  const Job job = replay_job(kStart, kStart + 100);
  replay_step(job.id, 4);
  replay_step(job.id, 4);
  reopen();  // as after kill -9: only what committed is there
  for (int i = 0; i < 10 && stored_job(job.id).state == JobState::running; ++i) replay_step(job.id, 4);

  const Job done = stored_job(job.id);
  EXPECT_EQ(done.state, JobState::done);
  EXPECT_GT(done.finished_at, 0);
  EXPECT_EQ(done.matched, 10u);
  EXPECT_EQ(done.created, 10u);
  const auto by_event = deliveries_by_event();
  EXPECT_EQ(by_event.size(), 10u);
  for (const auto& [event_id, ds] : by_event) EXPECT_EQ(ds.size(), 1u) << event_id;
}

TEST_F(JobMutationsTest, AnEventRemovedBetweenTheScanAndTheCommitGetsNoDelivery) {
  std::vector<Event> events;
  for (int i = 0; i < 4; ++i) events.push_back(store_event());
  const Job job = replay_job(kStart, kStart + 100);
  const auto run = queries::events_in_range(*store_, kStart, kStart + 100, "", 10);
  ASSERT_EQ(run.events.size(), 4u);
  // Retention takes the second and the last between the scan and the chunk's commit.
  for (const auto* gone : {&events[1], &events[3]}) {
    ASSERT_TRUE(commit([&](WriteTxn& txn) { return mutations::remove_event_if_orphan(txn, gone->id); }).ok());
  }
  mutations::ReplayChunk chunk{job.id, "", {}, run.last_id, run.reached_end};
  for (const auto& e : run.events) chunk.events.push_back(e.id);
  mutations::ChunkOutcome out;
  ASSERT_TRUE(commit([&](WriteTxn& txn) { return mutations::replay_chunk(txn, chunk, sub_, ids_, clock_.now_ms(), out); }).ok());
  EXPECT_EQ(out.delivered, 2u);
  const auto by_event = deliveries_by_event();
  EXPECT_EQ(by_event.size(), 2u);
  EXPECT_TRUE(by_event.contains(events[0].id));
  EXPECT_TRUE(by_event.contains(events[2].id));
  const Job after = stored_job(job.id);
  EXPECT_EQ(after.matched, 2u);
  EXPECT_EQ(after.state, JobState::done);
}

TEST_F(JobMutationsTest, TheRangeIsSinceInclusiveUntilExclusive) {
  const Event first = store_event();   // kStart + 1
  const Event second = store_event();  // kStart + 2
  store_event();                       // kStart + 3: at until, left out
  const Job job = replay_job(kStart + 1, kStart + 3);
  replay_step(job.id, 100);
  const auto by_event = deliveries_by_event();
  EXPECT_EQ(by_event.size(), 2u);
  EXPECT_TRUE(by_event.contains(first.id));
  EXPECT_TRUE(by_event.contains(second.id));
  EXPECT_EQ(stored_job(job.id).state, JobState::done);
}

TEST_F(JobMutationsTest, ACancelledJobTakesNoFurtherChunkAndCannotBeCancelledTwice) {
  for (int i = 0; i < 3; ++i) store_event();
  const Job job = replay_job(kStart, kStart + 100);
  Job cancelled;
  ASSERT_TRUE(commit([&](WriteTxn& txn) { return mutations::cancel_job(txn, job.id, clock_.now_ms(), cancelled); }).ok());
  EXPECT_EQ(cancelled.state, JobState::cancelled);
  EXPECT_GT(cancelled.finished_at, 0);

  const auto out = replay_step(job.id, 100);
  EXPECT_EQ(out.delivered, 0u);
  EXPECT_EQ(out.job.state, JobState::cancelled);
  EXPECT_TRUE(deliveries_by_event().empty());

  Job twice;
  const Status status = commit([&](WriteTxn& txn) { return mutations::cancel_job(txn, job.id, clock_.now_ms(), twice); });
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, Errc::conflict);
  const Status unknown = commit([&](WriteTxn& txn) {
    return mutations::cancel_job(txn, "job_0000019abcdef0123456789abcdef012", clock_.now_ms(), twice);
  });
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code, Errc::not_found);
}

TEST_F(JobMutationsTest, OnlyFailedReplaysEventsWhoseLatestDeliveryIsDead) {
  const Event dead_one = store_event({sub_});
  const Event pending_one = store_event({sub_});
  const Event redriven_then_dead = store_event({sub_});
  const Event never_delivered = store_event();
  kill_deliveries_of(dead_one.id);
  kill_deliveries_of(redriven_then_dead.id);
  const Job job = replay_job(kStart, kStart + 100, /*only_failed=*/true);
  replay_step(job.id, 100);

  const auto by_event = deliveries_by_event();
  EXPECT_EQ(by_event.at(dead_one.id).size(), 2u);
  EXPECT_EQ(by_event.at(redriven_then_dead.id).size(), 2u);
  EXPECT_EQ(by_event.at(pending_one.id).size(), 1u);
  EXPECT_FALSE(by_event.contains(never_delivered.id));
  const Job done = stored_job(job.id);
  EXPECT_EQ(done.matched, 2u);
  EXPECT_EQ(done.created, 2u);

  // A second only_failed replay finds the new (pending) deliveries latest: nothing to do.
  const Job second = replay_job(kStart, kStart + 100, /*only_failed=*/true);
  replay_step(second.id, 100);
  EXPECT_EQ(stored_job(second.id).created, 0u);
}

TEST_F(JobMutationsTest, ADlqRetryChunkRedrivesWhatIsStillDeadAndMovesItsCursor) {
  std::vector<Delivery> dead;
  for (int i = 0; i < 3; ++i) {
    for (auto& d : kill_deliveries_of(store_event({sub_}).id)) dead.push_back(std::move(d));
  }
  // One of them leaves the DLQ before the chunk commits.
  Delivery discarded = dead[1];
  ASSERT_TRUE(commit([&](WriteTxn& txn) { return mutations::discard_dead(txn, discarded.id); }).ok());

  Job job;
  job.id = ids_.next(keys::kJobPrefix);
  job.kind = JobKind::dlq_retry;
  job.dlq.until = clock_.now_ms() + 1;
  job.dlq.limit = 100;
  ASSERT_TRUE(commit([&](WriteTxn& txn) { return mutations::create_job(txn, job); }).ok());
  mutations::DlqRetryChunk chunk{job.id, "", {}, "", true};
  for (const auto& d : dead) chunk.dead.push_back({d.completed_at, d.id});
  mutations::ChunkOutcome out;
  ASSERT_TRUE(commit([&](WriteTxn& txn) { return mutations::dlq_retry_chunk(txn, chunk, clock_.now_ms(), out); }).ok());
  EXPECT_EQ(out.delivered, 2u);
  const Job done = stored_job(job.id);
  EXPECT_EQ(done.state, JobState::done);
  EXPECT_EQ(done.matched, 3u);
  EXPECT_EQ(done.created, 2u);
  EXPECT_EQ(queries::delivery(*store_, dead[0].id)->state, DeliveryState::pending);
  EXPECT_EQ(queries::delivery(*store_, dead[2].id)->state, DeliveryState::pending);
  EXPECT_EQ(queries::count_keys(*store_, Family::dead_letters), 0u);
}

TEST_F(JobMutationsTest, CountDeadStopsAtItsBound) {
  for (int i = 0; i < 5; ++i) {
    kill_deliveries_of(store_event({sub_}).id);
  }
  EXPECT_EQ(*queries::count_dead(*store_, {}, 3), 3u);
  EXPECT_EQ(*queries::count_dead(*store_, {}, 100), 5u);
  queries::DeliveryFilter other;
  other.subscription_id = "sub_0000019abcdef0123456789abcdef012";
  EXPECT_EQ(*queries::count_dead(*store_, other, 100), 0u);
}

TEST_F(JobMutationsTest, JobsListNewestFirstWithACursor) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    clock_.advance(1);
    ids.push_back(replay_job(kStart, kStart + 1).id);
  }
  auto first = queries::list_jobs(*store_, 2, "");
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->items.size(), 2u);
  EXPECT_EQ(first->items[0].id, ids[4]);
  EXPECT_EQ(first->items[1].id, ids[3]);
  auto rest = queries::list_jobs(*store_, 10, first->next_cursor);
  ASSERT_TRUE(rest.ok());
  ASSERT_EQ(rest->items.size(), 3u);
  EXPECT_EQ(rest->items[0].id, ids[2]);
  EXPECT_TRUE(rest->next_cursor.empty());
  EXPECT_FALSE(queries::list_jobs(*store_, 10, "evt_nonsense").ok());
}

TEST_F(JobMutationsTest, RetentionFindsFinishedJobsStepByStepAndRemovesOnlyWhatIsStillExpired) {
  // Oldest first: done and cancelled long ago, one running, one failed recently.
  auto finished_job = [&](JobState state, UnixMillis finished_at) {
    clock_.advance(1);
    Job job = replay_job(kStart, kStart + 1);
    job.state = state;
    job.finished_at = finished_at;
    EXPECT_TRUE(commit([&](WriteTxn& txn) { return mutations::create_job(txn, job); }).ok());
    return job.id;
  };
  const std::string done = finished_job(JobState::done, kStart + 10);
  const std::string cancelled = finished_job(JobState::cancelled, kStart + 20);
  clock_.advance(1);
  const std::string running = replay_job(kStart, kStart + 1).id;
  const std::string failed = finished_job(JobState::failed, kStart + 1'000);
  const UnixMillis cutoff = kStart + 20;  // at or before it: expired

  // Two jobs per step: the pass goes on from the last job visited until the end.
  auto step = queries::finished_jobs_before(*store_, cutoff, "", 2);
  EXPECT_EQ(step.expired, (std::vector<std::string>{done, cancelled}));
  EXPECT_EQ(step.last_id, cancelled);
  EXPECT_FALSE(step.reached_end);
  step = queries::finished_jobs_before(*store_, cutoff, step.last_id, 2);
  EXPECT_TRUE(step.expired.empty()) << "a running job and one finished after the cutoff are not expired";
  EXPECT_EQ(step.last_id, failed);
  step = queries::finished_jobs_before(*store_, cutoff, step.last_id, 2);
  EXPECT_TRUE(step.last_id.empty());
  EXPECT_TRUE(step.reached_end);

  // The command reads each job again: whatever it is handed, a running job, one finished after
  // the cutoff and one already gone stay as they are.
  std::vector<JobState> removed;
  const std::vector<std::string> handed{done, running, failed, cancelled, done};
  ASSERT_TRUE(commit([&](WriteTxn& txn) { return mutations::remove_finished_jobs(txn, handed, cutoff, removed); }).ok());
  EXPECT_EQ(removed, (std::vector<JobState>{JobState::done, JobState::cancelled}))
      << "the second `done` was removed already, earlier in the same command";
  EXPECT_FALSE(queries::job(*store_, done).has_value());
  EXPECT_FALSE(queries::job(*store_, cancelled).has_value());
  EXPECT_EQ(stored_job(running).state, JobState::running);
  EXPECT_EQ(stored_job(failed).state, JobState::failed);
  const auto listed = queries::list_jobs(*store_, 10, "");
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->items.size(), 2u);
}

TEST_F(JobMutationsTest, AJobRecordRoundTrips) {
  Job job;
  job.id = ids_.next(keys::kJobPrefix);
  job.kind = JobKind::dlq_retry;
  job.state = JobState::failed;
  job.dlq = {"sub_x", "meeting.completed", 5, 9, 1234};
  job.matched = 7;
  job.created = 6;
  job.created_at = kStart;
  job.finished_at = kStart + 5;
  job.error = "why";
  job.cursor = "12.dlv_y";
  const auto back = records::decode_job(records::encode_record(job));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->dlq.event_type, "meeting.completed");
  EXPECT_EQ(back->dlq.limit, 1234u);
  EXPECT_EQ(back->state, JobState::failed);
  EXPECT_EQ(back->cursor, "12.dlv_y");
  EXPECT_EQ(back->error, "why");
  EXPECT_FALSE(records::decode_job("\x01garbage").has_value());
}

}  // namespace job_mutations_test
}  // namespace relay
