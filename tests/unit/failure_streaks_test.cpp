// FailureStreaks on a real RocksDB through the commit pipeline: the streak key is written only
// on transitions (no write at all in a steady state), a rolled-back change is not remembered,
// a deleted subscription gets no key, and the streak survives a reopen.

#include "storage/failure_streaks.h"

#include <gtest/gtest.h>

#include "storage/keys.h"
#include "storage/mutations.h"
#include "tests/support/store_fixture.h"

namespace relay {
namespace failure_streaks_test {

constexpr UnixMillis kT = 1'760'000'000'000;

class FailureStreaksTest : public test::StoreFixture {
 protected:
  FailureStreaksTest() {
    sub_.id = ids_.next(keys::kSubscriptionPrefix);
    sub_.url = "https://example.com/hook";
    EXPECT_TRUE(commit([&](WriteTxn& txn) { return mutations::put_subscription(txn, sub_); }).ok());
  }

  UnixMillis failed(UnixMillis at, const std::string& id = "") {
    UnixMillis since = -1;
    EXPECT_TRUE(commit([&](WriteTxn& txn) -> Status {
                  since = streaks_.failed(txn, id.empty() ? sub_.id : id, at);
                  return Ok{};
                }).ok());
    return since;
  }
  void succeeded() {
    EXPECT_TRUE(commit([&](WriteTxn& txn) -> Status {
                  streaks_.succeeded(txn, sub_.id);
                  return Ok{};
                }).ok());
  }
  UnixMillis stored() const { return stored_streak_start(*store_, sub_.id); }
  rocksdb::SequenceNumber writes() { return store_->db().GetLatestSequenceNumber(); }

  ManualClock clock_{kT};
  keys::IdGenerator ids_{clock_, 7};
  FailureStreaks streaks_;
  Subscription sub_;
};

TEST_F(FailureStreaksTest, TheKeyIsWrittenOnTransitionsAndNothingInASteadyState) {
  EXPECT_EQ(stored(), 0);
  succeeded();  // healthy and succeeding: nothing to write
  auto before = writes();
  succeeded();
  EXPECT_EQ(writes(), before);

  EXPECT_EQ(failed(kT), kT) << "the first failure starts the streak";
  EXPECT_EQ(stored(), kT);
  before = writes();
  EXPECT_EQ(failed(kT + 1'000), kT) << "later failures keep its start";
  EXPECT_EQ(failed(kT + 2'000), kT);
  EXPECT_EQ(writes(), before) << "a failing steady state writes nothing";
  EXPECT_EQ(stored(), kT);

  succeeded();
  EXPECT_EQ(stored(), 0) << "the first success ends it";
  before = writes();
  succeeded();
  EXPECT_EQ(writes(), before);
  EXPECT_EQ(failed(kT + 5'000), kT + 5'000) << "a new streak starts at the next failure";
  EXPECT_EQ(stored(), kT + 5'000);
}

TEST_F(FailureStreaksTest, ARolledBackChangeIsForgottenAndReadAgain) {
  // The command fails after starting the streak: its write rolls back, and so must the memory.
  const Status rolled_back = commit([&](WriteTxn& txn) -> Status {
    EXPECT_EQ(streaks_.failed(txn, sub_.id, kT), kT);
    return make_error(Errc::conflict, "the rest of the command failed");
  });
  ASSERT_FALSE(rolled_back.ok());
  EXPECT_EQ(stored(), 0);
  EXPECT_EQ(failed(kT + 3'000), kT + 3'000) << "not the start that never committed";
  EXPECT_EQ(stored(), kT + 3'000);

  // Likewise an end that rolls back leaves the streak running.
  ASSERT_FALSE(commit([&](WriteTxn& txn) -> Status {
                 streaks_.succeeded(txn, sub_.id);
                 return make_error(Errc::conflict, "no");
               }).ok());
  EXPECT_EQ(failed(kT + 4'000), kT + 3'000);
  ASSERT_FALSE(commit([&](WriteTxn& txn) -> Status {
                 streaks_.clear(txn, sub_.id);
                 return make_error(Errc::conflict, "no");
               }).ok());
  EXPECT_EQ(failed(kT + 5'000), kT + 3'000);
  EXPECT_EQ(stored(), kT + 3'000);
}

TEST_F(FailureStreaksTest, CommandsOfOneGroupSeeEachOthersStreaks) {
  auto release = hold_writer();
  UnixMillis first = 0, second = 0, third = 0;
  auto a = submit(*pipeline_, [&](WriteTxn& txn) -> Status {
    first = streaks_.failed(txn, sub_.id, kT);
    return Ok{};
  });
  auto b = submit(*pipeline_, [&](WriteTxn& txn) -> Status {
    streaks_.succeeded(txn, sub_.id);
    second = streaks_.failed(txn, sub_.id, kT + 2'000);
    return Ok{};
  });
  auto c = submit(*pipeline_, [&](WriteTxn& txn) -> Status {
    third = streaks_.failed(txn, sub_.id, kT + 3'000);
    return Ok{};
  });
  release.set_value();
  ASSERT_TRUE(wait(a).ok() && wait(b).ok() && wait(c).ok());
  EXPECT_EQ(first, kT);
  EXPECT_EQ(second, kT + 2'000);
  EXPECT_EQ(third, kT + 2'000);
  EXPECT_EQ(stored(), kT + 2'000);
}

TEST_F(FailureStreaksTest, ADeletedSubscriptionGetsNoKeyAndClearingRemovesIt) {
  const std::string deleted = ids_.next(keys::kSubscriptionPrefix);
  EXPECT_EQ(failed(kT, deleted), 0);
  EXPECT_FALSE(store_->get(Family::failure_streaks, keys::failure_streak_key(deleted)).has_value());

  failed(kT);
  ASSERT_TRUE(commit([&](WriteTxn& txn) -> Status {
                streaks_.clear(txn, sub_.id);
                return mutations::delete_subscription(txn, sub_.id);
              }).ok());
  EXPECT_EQ(stored(), 0);
  EXPECT_EQ(failed(kT + 1'000), 0) << "deleted now: an attempt still in flight leaves no key";
  EXPECT_EQ(stored(), 0);
}

TEST_F(FailureStreaksTest, TheStreakSurvivesAReopen) {
  failed(kT);
  failed(kT + 1'000);
  reopen();
  FailureStreaks after_restart;  // a new process remembers nothing
  UnixMillis since = 0;
  ASSERT_TRUE(commit([&](WriteTxn& txn) -> Status {
                since = after_restart.failed(txn, sub_.id, kT + 60'000);
                return Ok{};
              }).ok());
  EXPECT_EQ(since, kT);
}

}  // namespace failure_streaks_test
}  // namespace relay
