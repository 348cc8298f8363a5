// read_schedule, the scheduler's loader, on a real RocksDB: it takes what each subscription has
// room for, reports where a lane without room parks, and says where the next load starts.
#include <gtest/gtest.h>

#include <future>
#include <memory>
#include <string>
#include <vector>

#include "relay/delivery/schedule_window.h"
#include "storage/commit_pipeline.h"
#include "storage/mutations.h"
#include "storage/store.h"
#include "tests/support/temp_dir.h"

namespace relay {
namespace schedule_loader_test {

using keys::ScheduleKey;

constexpr UnixMillis kNow = 1'614'265'330'000;

class ScheduleLoader : public ::testing::Test {
 protected:
  ScheduleLoader() : store_(Store::open(StoreOptions{dir_.str(), false})), pipeline_(*store_, nullptr), ids_(clock_, 1) {
    a_ = subscription();
    b_ = subscription();
  }
  ~ScheduleLoader() override { pipeline_.stop(); }

  std::shared_ptr<const Subscription> subscription() {
    auto sub = std::make_shared<Subscription>();
    sub->id = ids_.next(keys::kSubscriptionPrefix);
    sub->url = "http://127.0.0.1:9/hook";
    sub->secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    commit([&](WriteTxn& txn) { return mutations::put_subscription(txn, *sub); });
    return sub;
  }

  void commit(CommitPipeline::Command command) {
    std::promise<Status> done;
    pipeline_.submit(std::move(command), [&](const Status& s) { done.set_value(s); });
    ASSERT_TRUE(done.get_future().get().ok());
  }

  // One event for `targets`, due now; returns its deliveries' schedule keys, in key order.
  std::vector<ScheduleKey> ingest(const std::vector<std::shared_ptr<const Subscription>>& targets) {
    std::vector<ScheduleKey> out;
    commit([&](WriteTxn& txn) {
      mutations::IngestedEvent ingested;
      const mutations::NewEvent event{"", "meeting.completed", std::make_shared<const std::string>("{}")};
      auto status = mutations::ingest(txn, event, targets, ids_, kNow, ingested);
      for (const auto& d : ingested.deliveries) out.push_back({d.next_attempt_at, d.id});
      return status;
    });
    return out;
  }

  LoadRequest request(std::size_t room, std::size_t room_a, std::size_t room_b) {
    LoadRequest r;
    r.lower = ScheduleKey{};
    r.upper = ScheduleKey{kNow + 30'000, ""};
    r.room = room;
    r.lane_limit = 100;
    r.lane_room.emplace(keys::subscription_key(a_->id), room_a);
    r.lane_room.emplace(keys::subscription_key(b_->id), room_b);
    return r;
  }

  std::vector<ScheduleKey> keys_of(const LoadResult& result) {
    std::vector<ScheduleKey> out;
    for (const auto& [key, item] : result.items) {
      EXPECT_EQ(key, (ScheduleKey{item.delivery.next_attempt_at, item.delivery.id}));
      out.push_back(key);
    }
    return out;
  }

  test::TempDir dir_;
  ManualClock clock_{kNow};
  std::unique_ptr<Store> store_;
  CommitPipeline pipeline_;
  keys::IdGenerator ids_;
  PayloadCache payloads_;
  std::shared_ptr<const Subscription> a_;
  std::shared_ptr<const Subscription> b_;
};

TEST_F(ScheduleLoader, TakesWhatEachLaneHasRoomForAndParksTheOthersAtTheirFirstKey) {
  const auto a1 = ingest({a_})[0];
  const auto b1 = ingest({b_})[0];
  const auto a2 = ingest({a_})[0];
  const auto b2 = ingest({b_})[0];
  const LoadResult result = read_schedule(*store_, payloads_, request(10, 1, 0));
  EXPECT_EQ(keys_of(result), (std::vector<ScheduleKey>{a1}));
  ASSERT_EQ(result.parked.size(), 2u) << "b has no room from its first key, a from its second";
  EXPECT_EQ(result.parked[0], (std::pair<std::string, ScheduleKey>{b_->id, b1}));
  EXPECT_EQ(result.parked[1], (std::pair<std::string, ScheduleKey>{a_->id, a2}));
  EXPECT_TRUE(result.reached_end);
  EXPECT_EQ(result.next_cursor, (ScheduleKey{kNow + 30'000, ""}));
  EXPECT_EQ(*result.items[0].second.payload, "{}");
  (void)b2;
}

TEST_F(ScheduleLoader, ASubscriptionWithoutListedRoomIsAskedForItOnceWhenItsFirstKeyIsMet) {
  const auto c = subscription();
  const auto first = ingest({a_, c});
  const auto second = ingest({a_, c});
  LoadRequest r = request(10, 10, 10);
  std::vector<std::string> asked;
  r.room_of_unlisted = [&](std::string_view stored_key) {
    asked.push_back(keys::format_id(keys::kSubscriptionPrefix, stored_key));
    return std::size_t{1};
  };
  const LoadResult result = read_schedule(*store_, payloads_, r);
  // c was not listed: asked once (b, listed but without keys, and a, listed, never), then held to 1.
  EXPECT_EQ(asked, (std::vector<std::string>{c->id}));
  EXPECT_EQ(keys_of(result), (std::vector<ScheduleKey>{first[0], first[1], second[0]}));
  ASSERT_EQ(result.parked.size(), 1u);
  EXPECT_EQ(result.parked[0], (std::pair<std::string, ScheduleKey>{c->id, second[1]}));
}

TEST_F(ScheduleLoader, AFullLoadStopsAndTheNextStartsAtTheFirstKeyItDidNotVisit) {
  const auto first = ingest({a_, b_});
  const auto second = ingest({a_, b_});
  const LoadResult result = read_schedule(*store_, payloads_, request(3, 10, 10));
  EXPECT_EQ(keys_of(result), (std::vector<ScheduleKey>{first[0], first[1], second[0]}));
  EXPECT_FALSE(result.reached_end);
  EXPECT_EQ(result.next_cursor, second[1]);

  auto next = request(3, 10, 10);
  next.lower = result.next_cursor;
  EXPECT_EQ(keys_of(read_schedule(*store_, payloads_, next)), (std::vector<ScheduleKey>{second[1]}));
}

TEST_F(ScheduleLoader, ALaneReloadReadsOnlyItsLaneAndEndsAtItsFirstKeyWithoutRoom) {
  const auto a1 = ingest({a_})[0];
  ingest({b_});
  const auto a2 = ingest({a_})[0];
  const auto a3 = ingest({a_})[0];
  LoadRequest reload;
  reload.lower = a1;
  reload.upper = ScheduleKey{kNow + 30'000, ""};
  reload.room = 2;
  reload.lane_limit = 100;
  reload.only_subscription = keys::subscription_key(a_->id);
  reload.lane_room.emplace(*reload.only_subscription, 2);
  const LoadResult result = read_schedule(*store_, payloads_, reload);
  EXPECT_EQ(keys_of(result), (std::vector<ScheduleKey>{a1, a2}));
  ASSERT_EQ(result.parked.size(), 1u);
  EXPECT_EQ(result.parked[0], (std::pair<std::string, ScheduleKey>{a_->id, a3}));
}

}  // namespace schedule_loader_test
}  // namespace relay
