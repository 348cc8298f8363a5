// Mutations: every state change checked key by key on a real RocksDB, run through the commit
// pipeline as relayd runs them.

#include "storage/mutations.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <map>

#include "storage/queries.h"
#include "storage/records.h"
#include "tests/support/store_fixture.h"

namespace relay {
namespace mutations_test {

using Targets = std::vector<std::shared_ptr<const Subscription>>;
using KV = std::pair<std::string, std::string>;

constexpr UnixMillis kStart = 1'760'000'000'000;

class MutationsTest : public test::StoreFixture {
 protected:
  MutationsTest() : ids_(clock_, store_->instance_id()) {}

  // What the tests below call commit().
  Status run(CommitPipeline::Command command) { return commit(std::move(command)); }

  std::shared_ptr<const Subscription> subscription() {
    auto sub = std::make_shared<Subscription>();
    sub->id = ids_.next(keys::kSubscriptionPrefix);
    sub->url = "https://example.com/hook";
    return sub;
  }

  mutations::IngestedEvent ingest(const Targets& targets, const std::string& client_id = "",
                                  const std::string& type = "meeting.completed") {
    mutations::NewEvent input{client_id, type, std::make_shared<const std::string>(R"({"n":1})")};
    mutations::IngestedEvent out;
    const Status status = run([&](WriteTxn& txn) { return mutations::ingest(txn, input, targets, ids_, clock_.now_ms(), out); });
    EXPECT_TRUE(status.ok()) << status.error().message;
    return out;
  }

  static Attempt attempt_at(UnixMillis started_at, AttemptOutcome outcome, std::int64_t duration_ms = 250) {
    Attempt a;
    a.started_at = started_at;
    a.duration_ms = duration_ms;
    a.outcome = outcome;
    a.http_status = outcome == AttemptOutcome::success ? 200 : outcome == AttemptOutcome::http_5xx ? 503 : 0;
    a.response_body = "body";
    return a;
  }

  // Records an attempt of `attempted`, the caller's copy of the delivery (the scheduler's).
  Status attempt_of(const Delivery& attempted, AttemptOutcome outcome, mutations::Resolution resolution,
                    Delivery& out, std::int64_t duration_ms = 250) {
    const Attempt a = attempt_at(clock_.now_ms(), outcome, duration_ms);
    return run([&](WriteTxn& txn) {
      ordering_queue::Advance advance;
      return mutations::record_attempt(txn, attempted, a, resolution, nullptr, out, advance);
    });
  }

  // Records an attempt with the stored delivery as the copy (an id alone when it is absent).
  Status attempt(const std::string& id, AttemptOutcome outcome, mutations::Resolution resolution,
                 Delivery& out, std::int64_t duration_ms = 250) {
    Delivery absent;
    absent.id = id;
    return attempt_of(queries::delivery(*store_, id).value_or(absent), outcome, resolution, out, duration_ms);
  }

  std::vector<KV> family(Family f) const {
    std::vector<KV> out;
    store_->scan(f, ScanRange{}, [&](std::string_view k, std::string_view v) {
      out.emplace_back(std::string(k), std::string(v));
      return true;
    });
    return out;
  }

  std::map<int, std::vector<KV>> everything() const {
    std::map<int, std::vector<KV>> out;
    for (std::size_t i = 0; i < static_cast<std::size_t>(Family::count_); ++i) {
      out[static_cast<int>(i)] = family(static_cast<Family>(i));
    }
    return out;
  }

  bool has(Family f, const std::string& key) const { return store_->get(f, key).has_value(); }

  Delivery stored_delivery(const std::string& id) const {
    auto d = queries::delivery(*store_, id);
    EXPECT_TRUE(d.has_value()) << id;
    return d.value_or(Delivery{});
  }

  ManualClock clock_{kStart};
  keys::IdGenerator ids_;
};

TEST_F(MutationsTest, IngestStoresEventDeliveriesScheduleKeysAndLinks) {
  const auto a = subscription();
  const auto b = subscription();
  const auto out = ingest({a, b}, "client-1");

  ASSERT_TRUE(out.created);
  EXPECT_EQ(out.delivery_count, 2u);
  ASSERT_EQ(out.deliveries.size(), 2u);
  EXPECT_TRUE(keys::parse_id(out.event.id, keys::kEventPrefix));
  EXPECT_EQ(out.event.created_at, kStart);
  EXPECT_EQ(out.event.client_id, "client-1");

  const auto event = queries::event(*store_, out.event.id);
  ASSERT_TRUE(event);
  EXPECT_EQ(event->type, "meeting.completed");
  EXPECT_EQ(*event->payload, R"({"n":1})");
  EXPECT_EQ(event->client_id, "client-1");
  EXPECT_EQ(store_->get(Family::idempotency, "client-1"), keys::event_key(out.event.id));

  std::vector<KV> expected_schedule;
  for (std::size_t i = 0; i < 2; ++i) {
    const Delivery& d = out.deliveries[i];
    const auto& sub = i == 0 ? a : b;
    EXPECT_TRUE(keys::parse_id(d.id, keys::kDeliveryPrefix));
    EXPECT_EQ(d.subscription_id, sub->id);
    EXPECT_EQ(d.event_id, out.event.id);
    EXPECT_EQ(d.event_type, "meeting.completed");
    EXPECT_EQ(d.state, DeliveryState::pending);
    EXPECT_EQ(d.next_attempt_at, kStart);
    EXPECT_EQ(d.created_at, kStart);
    EXPECT_EQ(d.attempts, 0u);
    const Delivery stored = stored_delivery(d.id);
    EXPECT_EQ(stored.subscription_id, sub->id);
    EXPECT_EQ(stored.state, DeliveryState::pending);
    EXPECT_TRUE(has(Family::event_deliveries, keys::event_delivery_key(out.event.id, d.id)));
    expected_schedule.emplace_back(keys::schedule_key(kStart, d.id), keys::subscription_key(sub->id));
  }
  std::sort(expected_schedule.begin(), expected_schedule.end());
  EXPECT_EQ(family(Family::schedule), expected_schedule);
  EXPECT_TRUE(family(Family::completed).empty());
  EXPECT_TRUE(family(Family::dead_letters).empty());
  EXPECT_EQ(queries::deliveries_of_event(*store_, out.event.id).size(), 2u);
}

TEST_F(MutationsTest, IngestWithoutTargetsStartsTheEventsRetention) {
  const auto out = ingest({});
  EXPECT_TRUE(out.created);
  EXPECT_EQ(out.delivery_count, 0u);
  EXPECT_TRUE(family(Family::schedule).empty());
  EXPECT_EQ(family(Family::completed),
            (std::vector<KV>{{keys::completed_key(kStart, keys::CompletedKind::event, out.event.id), ""}}));
  // No client id: no idempotency key.
  EXPECT_TRUE(family(Family::idempotency).empty());
}

TEST_F(MutationsTest, IdempotentRepeatAnswersTheFirstEventAndWritesNothing) {
  const auto first = ingest({subscription(), subscription()}, "once");
  const auto before = everything();
  clock_.advance(1'000);

  const auto again = ingest({subscription()}, "once", "other.type");
  EXPECT_FALSE(again.created);
  EXPECT_EQ(again.event.id, first.event.id);
  EXPECT_EQ(again.event.type, "meeting.completed");
  EXPECT_EQ(again.delivery_count, 2u);
  EXPECT_TRUE(again.deliveries.empty());
  EXPECT_EQ(everything(), before);
}

TEST_F(MutationsTest, ARepeatInTheSameGroupSeesTheFirstIngest) {
  // Both commands go into one group: the writer is held until both are queued.
  std::promise<void> release = hold_writer();
  const auto sub = subscription();
  const mutations::NewEvent input{"dup", "a.b", std::make_shared<const std::string>("1")};
  mutations::IngestedEvent one;
  mutations::IngestedEvent two;
  std::promise<Status> p1;
  std::promise<Status> p2;
  pipeline_->submit([&](WriteTxn& txn) { return mutations::ingest(txn, input, {sub}, ids_, kStart, one); },
                    [&](const Status& s) { p1.set_value(s); });
  pipeline_->submit([&](WriteTxn& txn) { return mutations::ingest(txn, input, {sub}, ids_, kStart, two); },
                    [&](const Status& s) { p2.set_value(s); });
  release.set_value();
  ASSERT_TRUE(p1.get_future().get().ok());
  ASSERT_TRUE(p2.get_future().get().ok());
  EXPECT_TRUE(one.created);
  EXPECT_FALSE(two.created);
  EXPECT_EQ(two.event.id, one.event.id);
  EXPECT_EQ(two.delivery_count, 1u);
  EXPECT_EQ(family(Family::events).size(), 1u);
  EXPECT_EQ(family(Family::deliveries).size(), 1u);
}

TEST_F(MutationsTest, ADanglingIdempotencyKeyDoesNotBlockANewEvent) {
  const std::string missing = keys::event_key(ids_.next(keys::kEventPrefix));
  ASSERT_TRUE(run([&](WriteTxn& txn) -> Status {
                txn.put(Family::idempotency, "expired", missing);
                return Ok{};
              }).ok());
  const auto out = ingest({subscription()}, "expired");
  EXPECT_TRUE(out.created);
  EXPECT_EQ(store_->get(Family::idempotency, "expired"), keys::event_key(out.event.id));
}

TEST_F(MutationsTest, IngestCountsEventTypes) {
  ingest({}, "", "a.one");
  clock_.advance(10);
  ingest({}, "", "a.one");
  ingest({}, "", "b.two");
  clock_.advance(10);
  ingest({}, "", "a.one");
  ingest({}, "x", "a.one");
  ingest({}, "x", "a.one");  // a repeat is not counted
  auto stats = queries::event_types(*store_);
  ASSERT_EQ(stats.size(), 2u);
  EXPECT_EQ(stats[0].type, "a.one");
  EXPECT_EQ(stats[0].count, 4u);
  EXPECT_EQ(stats[0].last_seen, kStart + 20);
  EXPECT_EQ(stats[1].type, "b.two");
  EXPECT_EQ(stats[1].count, 1u);
  EXPECT_EQ(stats[1].last_seen, kStart + 10);
}

TEST_F(MutationsTest, ARolledBackIngestIsNotCounted) {
  ingest({}, "", "a.one");
  mutations::NewEvent input{"", "a.one", std::make_shared<const std::string>("1")};
  mutations::IngestedEvent out;
  const Status failed = run([&](WriteTxn& txn) -> Status {
    if (auto s = mutations::ingest(txn, input, {}, ids_, clock_.now_ms() + 5, out); !s.ok()) return s;
    return make_error(Errc::internal, "a later step of the command failed");
  });
  ASSERT_FALSE(failed.ok());
  const auto stats = queries::event_types(*store_);
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].count, 1u);
  EXPECT_EQ(stats[0].last_seen, kStart);
}

TEST_F(MutationsTest, AddDeliveriesRedeliversAStoredEvent) {
  const auto sub = subscription();
  const auto first = ingest({sub});
  clock_.advance(5'000);
  std::vector<Delivery> added;
  ASSERT_TRUE(run([&](WriteTxn& txn) -> Status {
                added = mutations::add_deliveries(txn, first.event, {sub, subscription()}, ids_, clock_.now_ms());
                return Ok{};
              }).ok());
  ASSERT_EQ(added.size(), 2u);
  for (const auto& d : added) {
    EXPECT_EQ(d.created_at, kStart + 5'000);
    EXPECT_EQ(d.next_attempt_at, kStart + 5'000);
    EXPECT_TRUE(has(Family::schedule, keys::schedule_key(kStart + 5'000, d.id)));
  }
  EXPECT_EQ(queries::deliveries_of_event(*store_, first.event.id).size(), 3u);
}

TEST_F(MutationsTest, RecordAttemptPendingToPendingMovesTheScheduleKey) {
  const auto sub = subscription();
  const auto out = ingest({sub});
  const std::string id = out.deliveries[0].id;
  Delivery d;
  ASSERT_TRUE(attempt(id, AttemptOutcome::http_5xx, {DeliveryState::pending, kStart + 5'000}, d).ok());
  EXPECT_EQ(d.state, DeliveryState::pending);
  EXPECT_EQ(d.attempts, 1u);
  EXPECT_EQ(d.next_attempt_at, kStart + 5'000);
  EXPECT_EQ(d.window_start, kStart);
  EXPECT_EQ(d.last_error, "http_5xx");
  EXPECT_EQ(family(Family::schedule), (std::vector<KV>{{keys::schedule_key(kStart + 5'000, id), keys::subscription_key(sub->id)}}));

  const Delivery stored = stored_delivery(id);
  EXPECT_EQ(stored.next_attempt_at, kStart + 5'000);
  EXPECT_EQ(stored.attempts, 1u);
  EXPECT_EQ(stored.window_start, kStart);

  clock_.advance(5'000);
  ASSERT_TRUE(attempt(id, AttemptOutcome::timeout, {DeliveryState::pending, kStart + 15'000}, d).ok());
  EXPECT_EQ(d.attempts, 2u);
  EXPECT_EQ(d.window_start, kStart);  // the window starts with the first attempt only
  EXPECT_EQ(d.last_error, "timeout");
  EXPECT_EQ(family(Family::schedule), (std::vector<KV>{{keys::schedule_key(kStart + 15'000, id), keys::subscription_key(sub->id)}}));

  const auto attempts = queries::attempts(*store_, id);
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts[0].number, 1u);
  EXPECT_EQ(attempts[0].http_status, 503);
  EXPECT_EQ(attempts[0].outcome, AttemptOutcome::http_5xx);
  EXPECT_EQ(attempts[1].number, 2u);
  EXPECT_EQ(attempts[1].outcome, AttemptOutcome::timeout);
  EXPECT_EQ(attempts[1].started_at, kStart + 5'000);
}

TEST_F(MutationsTest, RecordAttemptToSucceededWritesTheCompletedKey) {
  const auto out = ingest({subscription()});
  const std::string id = out.deliveries[0].id;
  Delivery d;
  ASSERT_TRUE(attempt(id, AttemptOutcome::success, {DeliveryState::succeeded, 0}, d, 120).ok());
  EXPECT_EQ(d.state, DeliveryState::succeeded);
  EXPECT_EQ(d.completed_at, kStart + 120);
  EXPECT_EQ(d.last_error, "");
  EXPECT_TRUE(family(Family::schedule).empty());
  EXPECT_TRUE(family(Family::dead_letters).empty());
  EXPECT_EQ(family(Family::completed),
            (std::vector<KV>{{keys::completed_key(kStart + 120, keys::CompletedKind::delivery, id), ""}}));
  EXPECT_EQ(stored_delivery(id).state, DeliveryState::succeeded);

  // A finished delivery takes no more attempts.
  const auto before = everything();
  const Status again = attempt(id, AttemptOutcome::success, {DeliveryState::succeeded, 0}, d);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, Errc::conflict);
  EXPECT_EQ(everything(), before);
}

TEST_F(MutationsTest, RecordAttemptToDeadWritesTheDeadLetterKey) {
  const auto sub = subscription();
  const auto out = ingest({sub});
  const std::string id = out.deliveries[0].id;
  Delivery d;
  ASSERT_TRUE(attempt(id, AttemptOutcome::http_4xx, {DeliveryState::dead, 0}, d, 30).ok());
  EXPECT_EQ(d.state, DeliveryState::dead);
  EXPECT_EQ(d.completed_at, kStart + 30);
  EXPECT_EQ(d.last_error, "http_4xx");
  EXPECT_TRUE(family(Family::schedule).empty());
  EXPECT_TRUE(family(Family::completed).empty());
  EXPECT_EQ(family(Family::dead_letters),
            (std::vector<KV>{{keys::dead_letter_key(kStart + 30, id), keys::subscription_key(sub->id)}}));
  EXPECT_EQ(stored_delivery(id).state, DeliveryState::dead);
}

TEST_F(MutationsTest, ExpireDeliveryMovesAWaitingDeliveryToTheDeadLettersWithoutAnAttempt) {
  const auto sub = subscription();
  const auto out = ingest({sub});
  const Delivery waiting = out.deliveries[0];
  Delivery d;
  ASSERT_TRUE(run([&](WriteTxn& txn) {
                ordering_queue::Advance advance;
                return mutations::expire_delivery(txn, waiting, "window_expired", kStart + 7'000, nullptr, d, advance);
              }).ok());
  EXPECT_EQ(d.state, DeliveryState::dead);
  EXPECT_EQ(d.completed_at, kStart + 7'000);
  EXPECT_EQ(d.last_error, "window_expired");
  EXPECT_EQ(d.attempts, 0u);
  EXPECT_TRUE(family(Family::schedule).empty());
  EXPECT_EQ(family(Family::dead_letters),
            (std::vector<KV>{{keys::dead_letter_key(kStart + 7'000, waiting.id), keys::subscription_key(sub->id)}}));
  EXPECT_EQ(stored_delivery(waiting.id).state, DeliveryState::dead);
  EXPECT_TRUE(family(Family::attempts).empty());

  // A copy whose schedule key is gone (it moved or finished meanwhile) changes nothing.
  const auto before = everything();
  EXPECT_EQ(run([&](WriteTxn& txn) {
              ordering_queue::Advance advance;
              return mutations::expire_delivery(txn, waiting, "window_expired", kStart + 8'000, nullptr, d, advance);
            }).error().code,
            Errc::conflict);
  EXPECT_EQ(everything(), before);
}

TEST_F(MutationsTest, TheWindowNotesTheSubscriptionsPauseClockWhenItStarts) {
  auto paused_before = std::make_shared<Subscription>(*subscription());
  set_enabled(*paused_before, false, kStart - 10'000);
  set_enabled(*paused_before, true, kStart - 4'000);  // disabled for 6 s before this event
  const auto out = ingest({paused_before});
  EXPECT_EQ(out.deliveries[0].window_pause_mark, 6'000);
  EXPECT_EQ(stored_delivery(out.deliveries[0].id).window_pause_mark, 6'000);
  Delivery d;
  ASSERT_TRUE(attempt(out.deliveries[0].id, AttemptOutcome::http_5xx, {DeliveryState::pending, kStart + 5'000, 9'000}, d).ok());
  EXPECT_EQ(d.window_pause_mark, 9'000);  // the window starts with this attempt
  clock_.advance(5'000);
  ASSERT_TRUE(attempt(d.id, AttemptOutcome::http_5xx, {DeliveryState::pending, kStart + 15'000, 12'000}, d).ok());
  EXPECT_EQ(d.window_pause_mark, 9'000);  // and only then
}

TEST_F(MutationsTest, RecordAttemptOnAnAbsentDeliveryIsNotFound) {
  Delivery d;
  const Status status = attempt(ids_.next(keys::kDeliveryPrefix), AttemptOutcome::success, {DeliveryState::succeeded, 0}, d);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, Errc::not_found);
  EXPECT_TRUE(family(Family::attempts).empty());
}

TEST_F(MutationsTest, RecordAttemptBuildsTheUpdateFromTheCopyWhileItsScheduleKeyExists) {
  const auto sub = subscription();
  const Delivery copy = ingest({sub}).deliveries[0];
  // The stored record says otherwise; the schedule key still says "pending, due kStart".
  Delivery tampered = copy;
  tampered.attempts = 7;
  tampered.last_error = "tampered";
  ASSERT_TRUE(run([&](WriteTxn& txn) -> Status {
                txn.put(Family::deliveries, keys::delivery_key(copy.id), records::encode_record(tampered));
                return Ok{};
              }).ok());
  Delivery d;
  ASSERT_TRUE(attempt_of(copy, AttemptOutcome::http_5xx, {DeliveryState::pending, kStart + 5'000}, d).ok());
  EXPECT_EQ(d.attempts, 1u);
  EXPECT_EQ(d.last_error, "http_5xx");
  EXPECT_EQ(stored_delivery(copy.id).attempts, 1u);
  ASSERT_EQ(queries::attempts(*store_, copy.id).size(), 1u);
  EXPECT_EQ(queries::attempts(*store_, copy.id)[0].number, 1u);
  EXPECT_EQ(family(Family::schedule),
            (std::vector<KV>{{keys::schedule_key(kStart + 5'000, copy.id), keys::subscription_key(sub->id)}}));
}

TEST_F(MutationsTest, RecordAttemptWithTheCopyOfARemovedDeliveryWritesNothing) {
  const auto out = ingest({subscription(), subscription()});
  const Delivery copy = out.deliveries[0];
  ASSERT_TRUE(run([&](WriteTxn& txn) { return mutations::remove_delivery(txn, copy.id); }).ok());
  const auto before = everything();
  Delivery d;
  const Status status = attempt_of(copy, AttemptOutcome::success, {DeliveryState::succeeded, 0}, d);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, Errc::not_found);
  EXPECT_EQ(everything(), before);
}

TEST_F(MutationsTest, RecordAttemptWithTheCopyOfASucceededDeliveryWritesNothing) {
  const Delivery copy = ingest({subscription()}).deliveries[0];
  Delivery d;
  ASSERT_TRUE(attempt_of(copy, AttemptOutcome::success, {DeliveryState::succeeded, 0}, d).ok());
  const auto before = everything();
  const Status again = attempt_of(copy, AttemptOutcome::http_5xx, {DeliveryState::pending, kStart + 5'000}, d);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, Errc::conflict);
  EXPECT_EQ(everything(), before);
}

// Retried through the API while the attempt was in flight: the scheduler's copy is stale, and the
// attempt counts against the stored state (the fresh window), leaving one schedule key.
TEST_F(MutationsTest, RecordAttemptWithTheCopyOfARescheduledDeliveryCountsAgainstTheStoredState) {
  const auto sub = subscription();
  Delivery copy;
  ASSERT_TRUE(attempt(ingest({sub}).deliveries[0].id, AttemptOutcome::http_5xx,
                      {DeliveryState::pending, kStart + 5'000}, copy).ok());
  clock_.advance(5'300);  // the copy went out when due; the retry comes while it is in flight
  Delivery rescheduled;
  ASSERT_TRUE(run([&](WriteTxn& txn) { return mutations::reschedule_now(txn, copy.id, clock_.now_ms(), rescheduled); }).ok());
  Delivery d;
  ASSERT_TRUE(attempt_of(copy, AttemptOutcome::http_5xx, {DeliveryState::pending, kStart + 60'000}, d).ok());
  EXPECT_EQ(d.attempts, 2u);
  EXPECT_EQ(d.window_start, kStart + 5'300) << "the window reset by the retry starts with this attempt";
  EXPECT_EQ(family(Family::schedule),
            (std::vector<KV>{{keys::schedule_key(kStart + 60'000, copy.id), keys::subscription_key(sub->id)}}));
  EXPECT_EQ(queries::attempts(*store_, copy.id).size(), 2u);
}

TEST_F(MutationsTest, RescheduleNowMovesTheKeyOfADeliveryDueThisVeryMillisecond) {
  const auto sub = subscription();
  const Delivery copy = ingest({sub}).deliveries[0];  // due kStart, and it is kStart
  Delivery rescheduled;
  ASSERT_TRUE(run([&](WriteTxn& txn) { return mutations::reschedule_now(txn, copy.id, kStart, rescheduled); }).ok());
  EXPECT_EQ(rescheduled.next_attempt_at, kStart + 1);
  EXPECT_EQ(family(Family::schedule),
            (std::vector<KV>{{keys::schedule_key(kStart + 1, copy.id), keys::subscription_key(sub->id)}}));
  EXPECT_EQ(stored_delivery(copy.id).next_attempt_at, kStart + 1);
}

TEST_F(MutationsTest, ARetryDueAtTheAttemptedTimeStillMovesTheScheduleKey) {
  const auto sub = subscription();
  const Delivery copy = ingest({sub}).deliveries[0];
  Delivery d;
  ASSERT_TRUE(attempt_of(copy, AttemptOutcome::http_5xx, {DeliveryState::pending, kStart}, d, 0).ok());
  EXPECT_EQ(d.next_attempt_at, kStart + 1);
  EXPECT_EQ(family(Family::schedule),
            (std::vector<KV>{{keys::schedule_key(kStart + 1, copy.id), keys::subscription_key(sub->id)}}));
  // The copy taken before that attempt is now stale.
  ASSERT_TRUE(attempt_of(copy, AttemptOutcome::http_5xx, {DeliveryState::pending, kStart + 9}, d, 0).ok());
  EXPECT_EQ(d.attempts, 2u) << "counted against the stored state, not the stale copy";
  EXPECT_EQ(family(Family::schedule),
            (std::vector<KV>{{keys::schedule_key(kStart + 9, copy.id), keys::subscription_key(sub->id)}}));
}

// The attempt record skips the batch's index (WriteTxn::put_new); a removal later in the same
// group still deletes it.
TEST_F(MutationsTest, RemovingADeliveryInTheGroupThatRecordsItsAttemptLeavesNoAttempt) {
  const auto out = ingest({subscription()});
  const Delivery copy = out.deliveries[0];
  std::promise<void> release = hold_writer();
  const Attempt a = attempt_at(kStart, AttemptOutcome::http_5xx);
  Delivery d;
  std::promise<Status> recorded;
  std::promise<Status> removed;
  pipeline_->submit([&](WriteTxn& txn) {
    ordering_queue::Advance advance;
    return mutations::record_attempt(txn, copy, a, {DeliveryState::pending, kStart + 5'000}, nullptr, d, advance);
  }, [&](const Status& s) { recorded.set_value(s); });
  pipeline_->submit([&](WriteTxn& txn) { return mutations::remove_delivery(txn, copy.id); },
                    [&](const Status& s) { removed.set_value(s); });
  release.set_value();
  ASSERT_TRUE(recorded.get_future().get().ok());
  ASSERT_TRUE(removed.get_future().get().ok());
  for (Family f : {Family::events, Family::deliveries, Family::schedule, Family::event_deliveries, Family::attempts}) {
    EXPECT_TRUE(family(f).empty()) << "family " << static_cast<int>(f);
  }
}

TEST_F(MutationsTest, RescheduleNowRevivesADeadDeliveryWithAFreshWindow) {
  const auto sub = subscription();
  const std::string id = ingest({sub}).deliveries[0].id;
  Delivery d;
  ASSERT_TRUE(attempt(id, AttemptOutcome::http_5xx, {DeliveryState::dead, 0}, d).ok());
  clock_.advance(60'000);
  ASSERT_TRUE(run([&](WriteTxn& txn) { return mutations::reschedule_now(txn, id, clock_.now_ms(), d); }).ok());
  EXPECT_EQ(d.state, DeliveryState::pending);
  EXPECT_EQ(d.next_attempt_at, kStart + 60'000);
  EXPECT_EQ(d.window_start, 0);
  EXPECT_EQ(d.completed_at, 0);
  EXPECT_EQ(d.attempts, 1u);  // history is kept
  EXPECT_TRUE(family(Family::dead_letters).empty());
  EXPECT_EQ(family(Family::schedule), (std::vector<KV>{{keys::schedule_key(kStart + 60'000, id), keys::subscription_key(sub->id)}}));
  const Delivery stored = stored_delivery(id);
  EXPECT_EQ(stored.state, DeliveryState::pending);
  EXPECT_EQ(stored.window_start, 0);

  // The next attempt opens the new window and is numbered after the old ones.
  ASSERT_TRUE(attempt(id, AttemptOutcome::success, {DeliveryState::succeeded, 0}, d).ok());
  EXPECT_EQ(d.window_start, kStart + 60'000);
  EXPECT_EQ(d.attempts, 2u);
  EXPECT_EQ(queries::attempts(*store_, id).size(), 2u);
}

TEST_F(MutationsTest, RescheduleNowMovesAScheduledDeliveryToNow) {
  const std::string id = ingest({subscription()}).deliveries[0].id;
  Delivery d;
  ASSERT_TRUE(attempt(id, AttemptOutcome::http_5xx, {DeliveryState::pending, kStart + 600'000}, d).ok());
  clock_.advance(1'000);
  ASSERT_TRUE(run([&](WriteTxn& txn) { return mutations::reschedule_now(txn, id, clock_.now_ms(), d); }).ok());
  ASSERT_EQ(family(Family::schedule).size(), 1u);
  EXPECT_EQ(family(Family::schedule)[0].first, keys::schedule_key(kStart + 1'000, id));
  EXPECT_EQ(d.window_start, 0);
}

TEST_F(MutationsTest, RescheduleNowRefusesSucceededAndAbsentDeliveries) {
  const std::string id = ingest({subscription()}).deliveries[0].id;
  Delivery d;
  ASSERT_TRUE(attempt(id, AttemptOutcome::success, {DeliveryState::succeeded, 0}, d).ok());
  const auto before = everything();
  Status status = run([&](WriteTxn& txn) { return mutations::reschedule_now(txn, id, clock_.now_ms(), d); });
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, Errc::conflict);
  EXPECT_EQ(everything(), before);

  status = run([&](WriteTxn& txn) {
    return mutations::reschedule_now(txn, ids_.next(keys::kDeliveryPrefix), clock_.now_ms(), d);
  });
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, Errc::not_found);
}

TEST_F(MutationsTest, RemoveDeliveryRemovesAttemptsAndTheEventWithTheLastDelivery) {
  const auto out = ingest({subscription(), subscription()}, "remove-me");
  const std::string first = out.deliveries[0].id;
  const std::string second = out.deliveries[1].id;
  Delivery d;
  ASSERT_TRUE(attempt(first, AttemptOutcome::http_5xx, {DeliveryState::pending, kStart + 1}, d).ok());
  ASSERT_TRUE(attempt(first, AttemptOutcome::success, {DeliveryState::succeeded, 0}, d).ok());
  ASSERT_TRUE(attempt(second, AttemptOutcome::http_4xx, {DeliveryState::dead, 0}, d).ok());

  ASSERT_TRUE(run([&](WriteTxn& txn) { return mutations::remove_delivery(txn, first); }).ok());
  EXPECT_FALSE(queries::delivery(*store_, first));
  EXPECT_TRUE(queries::attempts(*store_, first).empty());
  EXPECT_FALSE(has(Family::event_deliveries, keys::event_delivery_key(out.event.id, first)));
  EXPECT_TRUE(family(Family::completed).empty());
  // The other delivery keeps the event alive.
  EXPECT_TRUE(queries::event(*store_, out.event.id));
  EXPECT_TRUE(has(Family::idempotency, "remove-me"));
  EXPECT_EQ(queries::attempts(*store_, second).size(), 1u);

  ASSERT_TRUE(run([&](WriteTxn& txn) { return mutations::remove_delivery(txn, second); }).ok());
  EXPECT_FALSE(queries::event(*store_, out.event.id));
  EXPECT_FALSE(has(Family::idempotency, "remove-me"));
  for (Family f : {Family::events, Family::deliveries, Family::schedule, Family::dead_letters, Family::completed,
                   Family::event_deliveries, Family::attempts, Family::idempotency}) {
    EXPECT_TRUE(family(f).empty()) << "family " << static_cast<int>(f);
  }
  // The type statistics are history, not data of the event.
  EXPECT_EQ(queries::event_types(*store_).size(), 1u);

  // The client id is free again.
  EXPECT_TRUE(ingest({subscription()}, "remove-me").created);

  const Status absent = run([&](WriteTxn& txn) { return mutations::remove_delivery(txn, second); });
  ASSERT_FALSE(absent.ok());
  EXPECT_EQ(absent.error().code, Errc::not_found);
}

// The retention cleaner removes old deliveries while new events arrive: both land in one group.
TEST_F(MutationsTest, RemovingTheLastDeliveryRemovesTheEventEvenInAGroupWithAnIngest) {
  const auto old_event = ingest({subscription()}, "old-client");
  const auto sub = subscription();
  clock_.advance(1'000);
  std::promise<void> release = hold_writer();
  const mutations::NewEvent input{"", "a.b", std::make_shared<const std::string>("1")};
  mutations::IngestedEvent fresh;
  std::promise<Status> ingested;
  std::promise<Status> removed;
  pipeline_->submit([&](WriteTxn& txn) { return mutations::ingest(txn, input, {sub}, ids_, clock_.now_ms(), fresh); },
                    [&](const Status& s) { ingested.set_value(s); });
  pipeline_->submit([&](WriteTxn& txn) { return mutations::remove_delivery(txn, old_event.deliveries[0].id); },
                    [&](const Status& s) { removed.set_value(s); });
  release.set_value();
  ASSERT_TRUE(ingested.get_future().get().ok());
  ASSERT_TRUE(removed.get_future().get().ok());
  EXPECT_FALSE(queries::event(*store_, old_event.event.id)) << "the event outlives its last delivery";
  EXPECT_FALSE(has(Family::idempotency, "old-client"));
  EXPECT_TRUE(queries::event(*store_, fresh.event.id));
}

// Another event's deliveries written earlier in the same group are not this event's.
TEST_F(MutationsTest, ARepeatCountsOnlyItsOwnDeliveriesInABusyGroup) {
  const auto first = ingest({subscription()}, "counted");
  clock_.advance(1'000);
  std::promise<void> release = hold_writer();
  const Targets three{subscription(), subscription(), subscription()};
  const mutations::NewEvent other{"", "a.b", std::make_shared<const std::string>("1")};
  const mutations::NewEvent repeat{"counted", "a.b", std::make_shared<const std::string>("1")};
  mutations::IngestedEvent other_out;
  mutations::IngestedEvent repeat_out;
  std::promise<Status> p1;
  std::promise<Status> p2;
  pipeline_->submit([&](WriteTxn& txn) { return mutations::ingest(txn, other, three, ids_, clock_.now_ms(), other_out); },
                    [&](const Status& s) { p1.set_value(s); });
  pipeline_->submit([&](WriteTxn& txn) { return mutations::ingest(txn, repeat, {}, ids_, clock_.now_ms(), repeat_out); },
                    [&](const Status& s) { p2.set_value(s); });
  release.set_value();
  ASSERT_TRUE(p1.get_future().get().ok());
  ASSERT_TRUE(p2.get_future().get().ok());
  EXPECT_FALSE(repeat_out.created);
  EXPECT_EQ(repeat_out.event.id, first.event.id);
  EXPECT_EQ(repeat_out.delivery_count, 1u);
}

// A redelivery of an older event in the same group writes event_deliveries keys below the
// scanned event's range; they are not deliveries of the event being removed or counted.
TEST_F(MutationsTest, ARedeliveryOfAnOlderEventInTheSameGroupDoesNotKeepAnotherEventAlive) {
  const auto sub = subscription();
  const auto older = ingest({sub});
  clock_.advance(1'000);
  const auto newer = ingest({sub}, "newer-client");
  std::promise<void> release = hold_writer();
  std::promise<Status> redelivered;
  std::promise<Status> removed;
  std::promise<Status> repeated;
  mutations::IngestedEvent repeat_out;
  pipeline_->submit(
      [&](WriteTxn& txn) -> Status {
        mutations::add_deliveries(txn, older.event, {sub}, ids_, clock_.now_ms());
        return Ok{};
      },
      [&](const Status& s) { redelivered.set_value(s); });
  const mutations::NewEvent repeat{"newer-client", "meeting.completed", std::make_shared<const std::string>("1")};
  pipeline_->submit([&](WriteTxn& txn) { return mutations::ingest(txn, repeat, {sub}, ids_, clock_.now_ms(), repeat_out); },
                    [&](const Status& s) { repeated.set_value(s); });
  pipeline_->submit([&](WriteTxn& txn) { return mutations::remove_delivery(txn, newer.deliveries[0].id); },
                    [&](const Status& s) { removed.set_value(s); });
  release.set_value();
  ASSERT_TRUE(redelivered.get_future().get().ok());
  ASSERT_TRUE(repeated.get_future().get().ok());
  ASSERT_TRUE(removed.get_future().get().ok());
  EXPECT_FALSE(repeat_out.created);
  EXPECT_EQ(repeat_out.delivery_count, 1u) << "counted another event's delivery";
  EXPECT_FALSE(queries::event(*store_, newer.event.id)) << "the event outlives its last delivery";
  EXPECT_FALSE(has(Family::idempotency, "newer-client"));
  EXPECT_EQ(queries::deliveries_of_event(*store_, older.event.id).size(), 2u);
}

TEST_F(MutationsTest, RemovingAPendingDeliveryDropsItsScheduleKey) {
  const auto out = ingest({subscription()});
  ASSERT_TRUE(run([&](WriteTxn& txn) { return mutations::remove_delivery(txn, out.deliveries[0].id); }).ok());
  EXPECT_TRUE(family(Family::schedule).empty());
  EXPECT_FALSE(queries::event(*store_, out.event.id));
}

TEST_F(MutationsTest, DiscardDeadRemovesOnlyDeadDeliveries) {
  const auto out = ingest({subscription(), subscription()});
  const std::string pending = out.deliveries[0].id;
  const std::string dead = out.deliveries[1].id;
  Delivery d;
  ASSERT_TRUE(attempt(dead, AttemptOutcome::http_4xx, {DeliveryState::dead, 0}, d).ok());

  const auto before = everything();
  const Status conflict = run([&](WriteTxn& txn) { return mutations::discard_dead(txn, pending); });
  ASSERT_FALSE(conflict.ok());
  EXPECT_EQ(conflict.error().code, Errc::conflict);
  EXPECT_EQ(everything(), before);

  ASSERT_TRUE(run([&](WriteTxn& txn) { return mutations::discard_dead(txn, dead); }).ok());
  EXPECT_FALSE(queries::delivery(*store_, dead));
  EXPECT_TRUE(family(Family::dead_letters).empty());
  EXPECT_TRUE(queries::delivery(*store_, pending));
  EXPECT_TRUE(queries::event(*store_, out.event.id));

  const Status absent = run([&](WriteTxn& txn) { return mutations::discard_dead(txn, dead); });
  ASSERT_FALSE(absent.ok());
  EXPECT_EQ(absent.error().code, Errc::not_found);
}

TEST_F(MutationsTest, RemoveEventIfOrphanKeepsEventsThatHaveDeliveries) {
  const auto orphan = ingest({}, "orphan");
  const auto busy = ingest({subscription()});
  ASSERT_TRUE(run([&](WriteTxn& txn) { return mutations::remove_event_if_orphan(txn, orphan.event.id); }).ok());
  ASSERT_TRUE(run([&](WriteTxn& txn) { return mutations::remove_event_if_orphan(txn, busy.event.id); }).ok());
  EXPECT_FALSE(queries::event(*store_, orphan.event.id));
  EXPECT_FALSE(has(Family::idempotency, "orphan"));
  EXPECT_TRUE(queries::event(*store_, busy.event.id));
}

TEST_F(MutationsTest, SubscriptionsArePutAndDeleted) {
  Subscription sub = *subscription();
  sub.description = "first";
  ASSERT_TRUE(run([&](WriteTxn& txn) { return mutations::put_subscription(txn, sub); }).ok());
  sub.description = "second";
  ASSERT_TRUE(run([&](WriteTxn& txn) { return mutations::put_subscription(txn, sub); }).ok());
  auto all = queries::subscriptions(*store_);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].description, "second");

  ASSERT_TRUE(run([&](WriteTxn& txn) { return mutations::delete_subscription(txn, sub.id); }).ok());
  EXPECT_TRUE(queries::subscriptions(*store_).empty());
  const Status again = run([&](WriteTxn& txn) { return mutations::delete_subscription(txn, sub.id); });
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, Errc::not_found);
}

TEST_F(MutationsTest, UpdatesInOneGroupApplyToTheStateTheOneBeforeLeftAndNeverResurrect) {
  Subscription sub = *subscription();
  ASSERT_TRUE(run([&](WriteTxn& txn) { return mutations::put_subscription(txn, sub); }).ok());

  // Four commands in one group: the writer is held until all are queued.
  std::promise<void> release;
  auto released = release.get_future().share();
  pipeline_->submit(
      [released](WriteTxn&) -> Status {
        released.wait();
        return Ok{};
      },
      [](const Status&) {});
  Subscription after_description;
  Subscription after_url;
  Subscription after_delete;
  std::promise<Status> p1, p2, p3, p4;
  pipeline_->submit(
      [&](WriteTxn& txn) {
        return mutations::update_subscription(
            txn, sub.id,
            [](Subscription& s) -> Status {
              s.description = "patched";
              return Ok{};
            },
            after_description);
      },
      [&](const Status& s) { p1.set_value(s); });
  pipeline_->submit(
      [&](WriteTxn& txn) {
        return mutations::update_subscription(
            txn, sub.id,
            [](Subscription& s) -> Status {
              s.url = "https://example.com/other";
              return Ok{};
            },
            after_url);
      },
      [&](const Status& s) { p2.set_value(s); });
  pipeline_->submit([&](WriteTxn& txn) { return mutations::delete_subscription(txn, sub.id); },
                    [&](const Status& s) { p3.set_value(s); });
  pipeline_->submit(
      [&](WriteTxn& txn) {
        return mutations::update_subscription(
            txn, sub.id,
            [](Subscription& s) -> Status {
              s.description = "too late";
              return Ok{};
            },
            after_delete);
      },
      [&](const Status& s) { p4.set_value(s); });
  release.set_value();
  ASSERT_TRUE(p1.get_future().get().ok());
  ASSERT_TRUE(p2.get_future().get().ok());
  ASSERT_TRUE(p3.get_future().get().ok());
  const Status late = p4.get_future().get();
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().code, Errc::not_found);

  EXPECT_EQ(after_description.description, "patched");
  EXPECT_EQ(after_url.description, "patched");  // the second change saw the first
  EXPECT_EQ(after_url.url, "https://example.com/other");
  EXPECT_TRUE(queries::subscriptions(*store_).empty());
}

TEST_F(MutationsTest, AFailingSubscriptionChangeWritesNothing) {
  Subscription sub = *subscription();
  sub.description = "kept";
  ASSERT_TRUE(run([&](WriteTxn& txn) { return mutations::put_subscription(txn, sub); }).ok());
  Subscription out;
  const Status failed = run([&](WriteTxn& txn) {
    return mutations::update_subscription(
        txn, sub.id,
        [](Subscription& s) -> Status {
          s.description = "half";
          return make_error(Errc::invalid_field, "no");
        },
        out);
  });
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().code, Errc::invalid_field);
  EXPECT_EQ(queries::subscriptions(*store_).at(0).description, "kept");
}

TEST_F(MutationsTest, RotationsChainThroughTheStoredSecret) {
  Subscription sub = *subscription();
  sub.secret = "s0";
  ASSERT_TRUE(run([&](WriteTxn& txn) { return mutations::put_subscription(txn, sub); }).ok());
  Subscription out;
  const auto rotate = [&](const std::string& id, SecretRotation rotation) {
    return run([&](WriteTxn& txn) {
      return mutations::update_subscription(
          txn, id,
          [&](Subscription& stored) {
            rotate_secret(stored, rotation);
            return Status(Ok{});
          },
          out);
    });
  };
  for (const char* next : {"s1", "s2"}) ASSERT_TRUE(rotate(sub.id, {next, 60'000, kStart}).ok());
  EXPECT_EQ(out.secret, "s2");
  EXPECT_EQ(out.previous_secret, "s1");
  EXPECT_EQ(out.previous_secret_expires_at, kStart + 60'000);
  ASSERT_TRUE(rotate(sub.id, {"s3", 0, kStart}).ok());
  const Subscription stored = queries::subscriptions(*store_).at(0);
  EXPECT_EQ(stored.secret, "s3");
  EXPECT_EQ(stored.previous_secret, "");  // no grace: the old secret stops signing at once
  const Status gone = rotate("sub_absent", {"x", 0, kStart});
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code, Errc::not_found);
}

TEST_F(MutationsTest, StateSurvivesReopen) {
  const auto sub = subscription();
  const auto out = ingest({sub}, "durable");
  Delivery d;
  ASSERT_TRUE(attempt(out.deliveries[0].id, AttemptOutcome::http_5xx, {DeliveryState::pending, kStart + 5'000}, d).ok());
  const auto before = everything();
  const auto instance = store_->instance_id();
  pipeline_.reset();
  store_.reset();
  store_ = Store::open(StoreOptions{dir_.str() + "/db", false, 8 << 20});
  pipeline_ = std::make_unique<CommitPipeline>(*store_, nullptr);
  EXPECT_EQ(store_->instance_id(), instance);
  EXPECT_EQ(everything(), before);
  EXPECT_FALSE(ingest({sub}, "durable").created);
}

TEST_F(MutationsTest, RetryDeliveryTellsWhetherTheDeliveryLeftTheDeadLetterQueue) {
  const auto sub = subscription();
  const std::string dead_id = ingest({sub}).deliveries[0].id;
  const std::string pending_id = ingest({sub}).deliveries[0].id;
  Delivery d;
  ASSERT_TRUE(attempt(dead_id, AttemptOutcome::http_5xx, {DeliveryState::dead, 0}, d).ok());
  ASSERT_TRUE(attempt(pending_id, AttemptOutcome::http_5xx, {DeliveryState::pending, kStart + 600'000}, d).ok());
  clock_.advance(60'000);

  mutations::RetriedDelivery dead, pending;
  ASSERT_TRUE(run([&](WriteTxn& txn) {
                return mutations::retry_delivery(txn, dead_id, clock_.now_ms(), dead);
              }).ok());
  ASSERT_TRUE(run([&](WriteTxn& txn) {
                return mutations::retry_delivery(txn, pending_id, clock_.now_ms(), pending);
              }).ok());
  EXPECT_TRUE(dead.was_dead);
  EXPECT_FALSE(pending.was_dead);
  for (const auto* retried : {&dead, &pending}) {
    EXPECT_EQ(retried->delivery.state, DeliveryState::pending);
    EXPECT_EQ(retried->delivery.next_attempt_at, kStart + 60'000);
    EXPECT_EQ(retried->delivery.window_start, 0);
    EXPECT_EQ(stored_delivery(retried->delivery.id).state, DeliveryState::pending);
  }
  EXPECT_TRUE(family(Family::dead_letters).empty());
  EXPECT_EQ(family(Family::schedule),
            (std::vector<KV>{{keys::schedule_key(kStart + 60'000, std::min(dead_id, pending_id)),
                              keys::subscription_key(sub->id)},
                             {keys::schedule_key(kStart + 60'000, std::max(dead_id, pending_id)),
                              keys::subscription_key(sub->id)}}));
}

TEST_F(MutationsTest, RetryDeliveryRefusesSucceededAndAbsentDeliveriesAndWritesNothing) {
  const std::string id = ingest({subscription()}).deliveries[0].id;
  Delivery d;
  ASSERT_TRUE(attempt(id, AttemptOutcome::success, {DeliveryState::succeeded, 0}, d).ok());
  const auto before = everything();
  mutations::RetriedDelivery retried;
  Status status = run([&](WriteTxn& txn) { return mutations::retry_delivery(txn, id, clock_.now_ms(), retried); });
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, Errc::conflict);
  EXPECT_EQ(status.error().message, "delivery " + id + " already succeeded");
  const std::string absent = ids_.next(keys::kDeliveryPrefix);
  status = run([&](WriteTxn& txn) { return mutations::retry_delivery(txn, absent, clock_.now_ms(), retried); });
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, Errc::not_found);
  EXPECT_EQ(status.error().message, "no delivery " + absent);
  EXPECT_EQ(everything(), before);
}

TEST_F(MutationsTest, RedeliverEventChoosesTargetsByTheStoredEvent) {
  const auto first = subscription();
  const auto out = ingest({first}, "redeliver-me", "invoice.paid");
  clock_.advance(5'000);
  const auto second = subscription();
  std::vector<std::string> types_seen;
  const mutations::RedeliveryTargets targets =
      [&](const Event& event) -> Result<std::vector<std::shared_ptr<const Subscription>>> {
    types_seen.push_back(event.type);
    return Targets{first, second};
  };
  mutations::Redelivery redelivery;
  ASSERT_TRUE(run([&](WriteTxn& txn) {
                return mutations::redeliver_event(txn, out.event.id, targets, ids_, clock_.now_ms(), redelivery);
              }).ok());
  EXPECT_EQ(types_seen, std::vector<std::string>{"invoice.paid"});
  EXPECT_EQ(redelivery.event.id, out.event.id);
  EXPECT_EQ(redelivery.event.client_id, "redeliver-me");
  ASSERT_NE(redelivery.event.payload, nullptr);
  EXPECT_EQ(*redelivery.event.payload, R"({"n":1})");
  ASSERT_EQ(redelivery.deliveries.size(), 2u);
  EXPECT_EQ(redelivery.deliveries[0].subscription_id, first->id);
  EXPECT_EQ(redelivery.deliveries[1].subscription_id, second->id);
  for (const auto& d : redelivery.deliveries) {
    EXPECT_EQ(d.event_id, out.event.id);
    EXPECT_EQ(d.next_attempt_at, kStart + 5'000);
    EXPECT_EQ(stored_delivery(d.id).state, DeliveryState::pending);
    EXPECT_TRUE(has(Family::schedule, keys::schedule_key(kStart + 5'000, d.id)));
    EXPECT_TRUE(has(Family::event_deliveries, keys::event_delivery_key(out.event.id, d.id)));
  }
  EXPECT_EQ(queries::deliveries_of_event(*store_, out.event.id).size(), 3u);
}

TEST_F(MutationsTest, ARefusedOrMissingRedeliveryWritesNothing) {
  const auto out = ingest({subscription()});
  const auto before = everything();
  bool asked = false;
  const mutations::RedeliveryTargets refuse =
      [&](const Event&) -> Result<std::vector<std::shared_ptr<const Subscription>>> {
    asked = true;
    return make_error(Errc::conflict, "not this one");
  };
  mutations::Redelivery redelivery;
  Status status = run([&](WriteTxn& txn) {
    return mutations::redeliver_event(txn, out.event.id, refuse, ids_, clock_.now_ms(), redelivery);
  });
  ASSERT_FALSE(status.ok());
  EXPECT_TRUE(asked);
  EXPECT_EQ(status.error().code, Errc::conflict);
  EXPECT_EQ(status.error().message, "not this one");

  // An absent event, and an id of another kind: not_found before any target is chosen.
  asked = false;
  for (const std::string& id : {ids_.next(keys::kEventPrefix), out.deliveries[0].id, std::string("evt_")}) {
    status = run([&](WriteTxn& txn) {
      return mutations::redeliver_event(txn, id, refuse, ids_, clock_.now_ms(), redelivery);
    });
    ASSERT_FALSE(status.ok()) << id;
    EXPECT_EQ(status.error().code, Errc::not_found) << id;
    EXPECT_EQ(status.error().message, "no event " + id);
  }
  EXPECT_FALSE(asked);
  EXPECT_EQ(everything(), before);
}

}  // namespace mutations_test
}  // namespace relay
