// Ordering queues (spec section 6) on a real RocksDB through the commit pipeline: which delivery
// of a key is scheduled, how the queue advances when its head finishes, coalescing and its batch
// bound, releases, retries, and two events of one key in one group commit.

#include "storage/ordering_queue.h"

#include <gtest/gtest.h>

#include "storage/mutations.h"
#include "storage/queries.h"
#include "tests/support/store_fixture.h"

namespace relay {
namespace ordering_queue_test {

using Targets = std::vector<std::shared_ptr<const Subscription>>;

constexpr UnixMillis kStart = 1'760'000'000'000;

class OrderingQueueTest : public test::StoreFixture {
 protected:
  OrderingQueueTest() : ids_(clock_, store_->instance_id()) {}

  std::shared_ptr<Subscription> subscription(Ordering ordering, bool coalesce = false) {
    auto sub = std::make_shared<Subscription>();
    sub->id = ids_.next(keys::kSubscriptionPrefix);
    sub->url = "https://example.com/hook";
    sub->ordering = ordering;
    sub->coalesce = coalesce;
    EXPECT_TRUE(commit([&](WriteTxn& txn) { return mutations::put_subscription(txn, *sub); }).ok());
    return sub;
  }

  static mutations::NewEvent event(const std::string& key) {
    mutations::NewEvent input{"", "calendar.update", std::make_shared<const std::string>(R"({"n":1})")};
    input.ordering_key = key;
    return input;
  }

  // Ingests one event per key in `keys_in_order`, all in one command; their deliveries by event.
  std::vector<mutations::IngestedEvent> ingest(const Targets& targets, const std::vector<std::string>& keys_in_order) {
    std::vector<mutations::IngestedEvent> out(keys_in_order.size());
    EXPECT_TRUE(
        commit([&](WriteTxn& txn) -> Status {
          for (std::size_t i = 0; i < keys_in_order.size(); ++i) {
            if (auto s = mutations::ingest(txn, event(keys_in_order[i]), targets, ids_, clock_.now_ms(), out[i]); !s) {
              return s;
            }
          }
          return Ok{};
        }).ok());
    return out;
  }

  Delivery stored(const std::string& id) const { return queries::delivery(*store_, id).value_or(Delivery{}); }
  bool scheduled(const Delivery& d) const {
    return store_->get(Family::schedule, keys::schedule_key(d.next_attempt_at, d.id)).has_value();
  }

  // Records an attempt of the stored delivery that ends it in `state` (succeeded or dead) or
  // retries it later (pending).
  ordering_queue::Advance finish(const std::string& id, DeliveryState state, const Subscription* sub) {
    const Delivery attempted = stored(id);
    Attempt a;
    a.started_at = clock_.now_ms();
    a.duration_ms = 10;
    a.outcome = state == DeliveryState::succeeded ? AttemptOutcome::success : AttemptOutcome::http_4xx;
    a.http_status = state == DeliveryState::succeeded ? 200 : 410;
    ordering_queue::Advance advance;
    Delivery out;
    const Status status = commit([&](WriteTxn& txn) {
      advance = {};
      return mutations::record_attempt(txn, attempted, a, {state, clock_.now_ms() + 60'000}, sub, out, advance);
    });
    EXPECT_TRUE(status.ok()) << status.error().message;
    return advance;
  }

  std::size_t queue_size(const Subscription& sub, const std::string& key) const {
    const std::string prefix = keys::queue_prefix(sub.id, key);
    std::size_t n = 0;
    store_->scan(Family::ordering_queues, ScanRange{prefix, keys::prefix_end(prefix)}, [&](auto, auto) {
      ++n;
      return true;
    });
    return n;
  }

  ManualClock clock_{kStart};
  keys::IdGenerator ids_;
};

TEST_F(OrderingQueueTest, OnlyTheFirstDeliveryOfAKeyIsScheduledOthersWaitBehindIt) {
  const auto ordered = subscription(Ordering::key);
  const auto unordered = subscription(Ordering::none);
  const auto events = ingest({ordered, unordered}, {"cal_1", "cal_1", "cal_2", "", "cal_1"});

  const Delivery head = stored(events[0].deliveries[0].id);
  EXPECT_FALSE(head.waiting);
  EXPECT_TRUE(scheduled(head));
  for (int i : {1, 4}) {
    const Delivery d = stored(events[i].deliveries[0].id);
    EXPECT_TRUE(d.waiting) << i;
    EXPECT_EQ(d.state, DeliveryState::pending);
    EXPECT_EQ(d.next_attempt_at, 0);
    EXPECT_FALSE(scheduled(stored(events[i].deliveries[0].id)));
    EXPECT_TRUE(events[i].deliveries[0].waiting);  // the scheduler is told it waits
    EXPECT_EQ(ordering_queue::blocked_by(*store_, d), head.id);
  }
  EXPECT_FALSE(stored(events[2].deliveries[0].id).waiting);  // another key: its own head
  EXPECT_FALSE(stored(events[3].deliveries[0].id).waiting);  // no key: unordered
  EXPECT_FALSE(ordering_queue::blocked_by(*store_, head));
  for (const auto& e : events) {
    const Delivery d = stored(e.deliveries[1].id);  // the unordered subscription: all scheduled
    EXPECT_FALSE(d.waiting);
    EXPECT_EQ(d.queue_seq, 0u);
    EXPECT_TRUE(scheduled(d));
  }
  EXPECT_EQ(queue_size(*ordered, "cal_1"), 3u);
  EXPECT_EQ(queue_size(*unordered, "cal_1"), 0u);
}

TEST_F(OrderingQueueTest, AFinishedHeadPromotesTheNextInEventOrderAndADeadOneDoesNotBlock) {
  const auto sub = subscription(Ordering::key);
  const auto events = ingest({sub}, {"k", "k", "k"});
  const std::string first = events[0].deliveries[0].id, second = events[1].deliveries[0].id,
                    third = events[2].deliveries[0].id;

  // A retry of the head holds its successors.
  EXPECT_TRUE(finish(first, DeliveryState::pending, sub.get()).promoted.empty());
  EXPECT_TRUE(stored(second).waiting);

  clock_.advance(5);
  auto advance = finish(first, DeliveryState::succeeded, sub.get());
  ASSERT_EQ(advance.promoted.size(), 1u);
  EXPECT_EQ(advance.promoted[0].id, second);
  EXPECT_EQ(advance.promoted[0].next_attempt_at, clock_.now_ms() + 10);  // when the head's attempt ended
  const Delivery promoted = stored(second);
  EXPECT_FALSE(promoted.waiting);
  EXPECT_TRUE(scheduled(promoted));
  EXPECT_TRUE(stored(third).waiting);
  EXPECT_EQ(ordering_queue::blocked_by(*store_, stored(third)), second);

  advance = finish(second, DeliveryState::dead, sub.get());  // 410: dead, and the next goes on
  ASSERT_EQ(advance.promoted.size(), 1u);
  EXPECT_EQ(advance.promoted[0].id, third);
  EXPECT_TRUE(scheduled(stored(third)));

  EXPECT_TRUE(finish(third, DeliveryState::succeeded, sub.get()).promoted.empty());
  EXPECT_EQ(queue_size(*sub, "k"), 0u);
  // The queue starts again with the next event.
  const auto later = ingest({sub}, {"k"});
  EXPECT_TRUE(scheduled(stored(later[0].deliveries[0].id)));
}

TEST_F(OrderingQueueTest, TwoEventsOfOneKeyInOneGroupCommitSeeEachOther) {
  const auto sub = subscription(Ordering::key);
  auto release = hold_writer();
  std::vector<mutations::IngestedEvent> out(2);
  std::vector<std::future<Status>> futures;
  for (auto& result : out) {
    futures.push_back(submit(*pipeline_, [&](WriteTxn& txn) {
      return mutations::ingest(txn, event("same"), {sub}, ids_, clock_.now_ms(), result);
    }));
  }
  release.set_value();
  for (auto& f : futures) ASSERT_TRUE(wait(f).ok());
  EXPECT_FALSE(stored(out[0].deliveries[0].id).waiting);
  EXPECT_TRUE(stored(out[1].deliveries[0].id).waiting);
  EXPECT_EQ(queue_size(*sub, "same"), 2u);
}

TEST_F(OrderingQueueTest, AHeadFinishingInTheGroupOfItsSuccessorsIngestPromotesIt) {
  // The new delivery's record is staged by an earlier command of the same group: the head's end
  // must find it through its queue entry, or the new one would wait for ever.
  const auto sub = subscription(Ordering::key);
  const auto head = ingest({sub}, {"k"})[0].deliveries[0];
  const Delivery attempted = stored(head.id);
  Attempt a;
  a.started_at = clock_.now_ms();
  a.outcome = AttemptOutcome::success;
  a.http_status = 200;
  mutations::IngestedEvent next;
  ordering_queue::Advance advance;
  Delivery out;
  auto release = hold_writer();
  auto ingested = submit(*pipeline_, [&](WriteTxn& txn) {
    return mutations::ingest(txn, event("k"), {sub}, ids_, clock_.now_ms(), next);
  });
  auto recorded = submit(*pipeline_, [&](WriteTxn& txn) {
    return mutations::record_attempt(txn, attempted, a, {DeliveryState::succeeded, 0}, sub.get(), out, advance);
  });
  release.set_value();
  ASSERT_TRUE(wait(ingested).ok());
  ASSERT_TRUE(wait(recorded).ok());
  ASSERT_TRUE(next.deliveries[0].waiting);
  ASSERT_EQ(advance.promoted.size(), 1u);
  EXPECT_EQ(advance.promoted[0].id, next.deliveries[0].id);
  EXPECT_TRUE(scheduled(stored(next.deliveries[0].id)));
  EXPECT_FALSE(stored(next.deliveries[0].id).waiting);
}

TEST_F(OrderingQueueTest, CoalescingAttemptsOnlyTheNewestAndSupersedesTheOthers) {
  const auto sub = subscription(Ordering::key, /*coalesce=*/true);
  const auto events = ingest({sub}, {"k", "k", "k", "k"});
  const auto advance = finish(events[0].deliveries[0].id, DeliveryState::succeeded, sub.get());
  ASSERT_EQ(advance.promoted.size(), 1u);
  EXPECT_EQ(advance.promoted[0].id, events[3].deliveries[0].id);
  EXPECT_EQ(advance.superseded, 2u);
  EXPECT_EQ(advance.subscription_id, sub->id);
  for (int i : {1, 2}) {
    const Delivery d = stored(events[i].deliveries[0].id);
    EXPECT_EQ(d.state, DeliveryState::superseded);
    EXPECT_FALSE(d.waiting);
    EXPECT_TRUE(store_->get(Family::completed,
                            keys::completed_key(d.completed_at, keys::CompletedKind::delivery, d.id)));  // retention
    EXPECT_FALSE(store_->get(Family::dead_letters, keys::dead_letter_key(d.completed_at, d.id)));
    Delivery out;
    EXPECT_EQ(
        commit([&](WriteTxn& txn) { return mutations::reschedule_now(txn, d.id, clock_.now_ms(), out); }).error().code,
        Errc::conflict);
  }
  EXPECT_EQ(queue_size(*sub, "k"), 1u);
  EXPECT_TRUE(queries::list_dead(*store_, {})->items.empty());
}

TEST_F(OrderingQueueTest, TheSurveyCountsWhatWaitsBehindEachHeadBySubscription) {
  const auto a = subscription(Ordering::key);
  const auto b = subscription(Ordering::key);
  ingest({a, b}, {"k", "k", "j", "k"});  // a and b: k waits twice behind its head, j has only a head
  ingest({a}, {"j"});                    // a: j waits once
  auto survey = ordering_queue::survey(*store_);
  EXPECT_TRUE(survey.headless.empty());
  EXPECT_EQ(survey.waiting_by_subscription.at(a->id), 3u);
  EXPECT_EQ(survey.waiting_by_subscription.at(b->id), 2u);
  EXPECT_EQ(survey.waiting_by_subscription.size(), 2u);
}

TEST_F(OrderingQueueTest, CoalescingOfMoreThanOneBatchContinuesInTheNextAndAfterARestart) {
  const auto sub = subscription(Ordering::key, /*coalesce=*/true);
  const std::size_t waiting = 2 * ordering_queue::kAdvanceBatch + 10;
  const auto events = ingest({sub}, std::vector<std::string>(waiting + 1, "k"));
  auto advance = finish(events[0].deliveries[0].id, DeliveryState::succeeded, sub.get());
  EXPECT_TRUE(advance.promoted.empty());
  EXPECT_EQ(advance.superseded, ordering_queue::kAdvanceBatch);
  ASSERT_TRUE(advance.unfinished);
  EXPECT_EQ(*advance.unfinished, (ordering_queue::QueueRef{sub->id, "k"}));

  // A crash here: the restart finds the queue without a head.
  reopen();
  const auto survey = ordering_queue::survey(*store_);
  const auto& headless = survey.headless;
  ASSERT_EQ(headless.size(), 1u);
  // Every entry of a headless queue waits.
  EXPECT_EQ(survey.waiting_by_subscription.at(sub->id), waiting - ordering_queue::kAdvanceBatch);
  std::size_t superseded = advance.superseded;
  for (int step = 0; step < 5 && advance.promoted.empty(); ++step) {
    advance = {};
    ASSERT_TRUE(commit([&](WriteTxn& txn) {
                  ordering_queue::advance(txn, headless[0], sub.get(), clock_.now_ms(), advance);
                  return Ok{};
                }).ok());
    superseded += advance.superseded;
  }
  ASSERT_EQ(advance.promoted.size(), 1u);
  EXPECT_EQ(advance.promoted[0].id, events.back().deliveries[0].id);
  EXPECT_EQ(superseded, waiting - 1);
  EXPECT_TRUE(ordering_queue::survey(*store_).headless.empty());
  // advance() of a queue that has a head changes nothing.
  advance = {};
  ASSERT_TRUE(commit([&](WriteTxn& txn) {
                ordering_queue::advance(txn, headless[0], sub.get(), clock_.now_ms(), advance);
                return Ok{};
              }).ok());
  EXPECT_TRUE(advance.promoted.empty());
  EXPECT_EQ(advance.superseded, 0u);
}

TEST_F(OrderingQueueTest, ARetriedDeadDeliveryJoinsTheTailAWaitingOneCannotJumpTheQueue) {
  const auto sub = subscription(Ordering::key);
  const auto events = ingest({sub}, {"k", "k", "k"});
  const std::string first = events[0].deliveries[0].id, second = events[1].deliveries[0].id;
  finish(first, DeliveryState::dead, sub.get());  // second is the head now
  mutations::RetriedDelivery retried;
  ASSERT_TRUE(
      commit([&](WriteTxn& txn) { return mutations::retry_delivery(txn, first, clock_.now_ms(), retried); }).ok());
  EXPECT_TRUE(retried.was_dead);
  EXPECT_TRUE(retried.delivery.waiting);  // behind second and third
  EXPECT_EQ(ordering_queue::blocked_by(*store_, stored(first)), second);
  EXPECT_FALSE(store_->get(Family::dead_letters, keys::dead_letter_key(stored(first).completed_at, first)));

  const Status waiting_retry = commit([&](WriteTxn& txn) {
    return mutations::retry_delivery(txn, events[2].deliveries[0].id, clock_.now_ms(), retried);
  });
  EXPECT_EQ(waiting_retry.error().code, Errc::conflict);

  finish(second, DeliveryState::succeeded, sub.get());
  auto advance = finish(events[2].deliveries[0].id, DeliveryState::succeeded, sub.get());
  ASSERT_EQ(advance.promoted.size(), 1u);
  EXPECT_EQ(advance.promoted[0].id, first);  // last in line
}

TEST_F(OrderingQueueTest, ADeletedOrUnorderedSubscriptionsQueueIsReleasedInBatches) {
  const auto sub = subscription(Ordering::key);
  const std::size_t n = ordering_queue::kAdvanceBatch + 5;
  const auto events = ingest({sub}, std::vector<std::string>(n, "k"));
  // Ordering turned off: the head's end releases a batch and makes the next one the head.
  auto unordered = std::make_shared<Subscription>(*sub);
  unordered->ordering = Ordering::none;
  auto advance = finish(events[0].deliveries[0].id, DeliveryState::succeeded, unordered.get());
  ASSERT_EQ(advance.promoted.size(), ordering_queue::kAdvanceBatch + 1);
  const Delivery released = stored(events[1].deliveries[0].id);
  EXPECT_EQ(released.queue_seq, 0u);
  EXPECT_TRUE(scheduled(released));
  const Delivery new_head = stored(advance.promoted.back().id);
  EXPECT_NE(new_head.queue_seq, 0u);
  EXPECT_EQ(queue_size(*sub, "k"), n - 1 - ordering_queue::kAdvanceBatch);

  // Deleted: discarding the head releases the rest, which the scheduler discards in turn.
  ASSERT_TRUE(commit([&](WriteTxn& txn) { return mutations::delete_subscription(txn, sub->id); }).ok());
  advance = {};
  ASSERT_TRUE(commit([&](WriteTxn& txn) {
                return mutations::remove_delivery(txn, new_head.id, clock_.now_ms(), &advance);
              }).ok());
  EXPECT_EQ(advance.promoted.size(), n - 2 - ordering_queue::kAdvanceBatch);
  EXPECT_EQ(queue_size(*sub, "k"), 0u);
  EXPECT_FALSE(queries::delivery(*store_, new_head.id));
}

}  // namespace ordering_queue_test
}  // namespace relay
