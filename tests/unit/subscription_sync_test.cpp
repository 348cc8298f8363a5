// The subscription mirror's writes (storage/subscription_sync.h) on a real RocksDB: the family
// made equal to etcd's set with the revision in the same batch, reporting only real changes.

#include "storage/subscription_sync.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "storage/keys.h"
#include "storage/mutations.h"
#include "storage/queries.h"
#include "tests/support/store_fixture.h"

namespace relay {
namespace subscription_sync_test {

using Ids = std::vector<std::string>;

class SubscriptionSyncTest : public test::StoreFixture {
 protected:
  Subscription sub(const std::string& url = "https://example.com/hook") {
    Subscription s;
    s.id = ids_.next(keys::kSubscriptionPrefix);
    s.url = url;
    return s;
  }

  Ids stored_ids() {
    Ids out;
    for (const auto& s : queries::subscriptions(*store_)) out.push_back(s.id);
    return out;
  }

  static Ids ids_of(const mutations::SubscriptionSync& sync) {
    Ids out;
    for (const auto& s : sync.stored) out.push_back(s.id);
    return out;
  }

  mutations::SubscriptionSync replace(const std::vector<Subscription>& all, const Ids& keep, std::int64_t revision) {
    mutations::SubscriptionSync out;
    const Status status = commit([&](WriteTxn& txn) { return mutations::replace_subscriptions(txn, all, keep, revision, out); });
    EXPECT_TRUE(status.ok());
    return out;
  }

  mutations::SubscriptionSync apply(const std::vector<mutations::SubscriptionUpdate>& updates, std::int64_t revision) {
    mutations::SubscriptionSync out;
    const Status status =
        commit([&](WriteTxn& txn) { return mutations::apply_subscription_updates(txn, updates, revision, out); });
    EXPECT_TRUE(status.ok());
    return out;
  }

  ManualClock clock_{1'760'000'000'000};
  keys::IdGenerator ids_{clock_, 9};
};

TEST_F(SubscriptionSyncTest, ReplaceMakesTheFamilyEqualAndKeepsTheRevision) {
  EXPECT_EQ(mutations::stored_subscriptions_revision(*store_), 0);
  const auto a = sub();
  const auto b = sub();
  const auto local_only = sub();
  const auto unreadable_in_etcd = sub();
  for (const auto* s : {&a, &local_only, &unreadable_in_etcd}) {
    ASSERT_TRUE(commit([s](WriteTxn& txn) { return mutations::put_subscription(txn, *s); }).ok());
  }
  auto changed_a = a;
  changed_a.url = "https://example.com/changed";

  const auto sync = replace({changed_a, b}, {unreadable_in_etcd.id}, 42);
  EXPECT_EQ(ids_of(sync), (Ids{changed_a.id, b.id}));
  EXPECT_EQ(sync.removed, (Ids{local_only.id}));
  Ids expected{a.id, b.id, unreadable_in_etcd.id};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(stored_ids(), expected);
  EXPECT_EQ(queries::subscriptions(*store_)[0].url, "https://example.com/changed");
  EXPECT_EQ(mutations::stored_subscriptions_revision(*store_), 42);

  // The same set again changes nothing but the revision.
  const auto again = replace({changed_a, b}, {unreadable_in_etcd.id}, 50);
  EXPECT_TRUE(again.empty());
  EXPECT_EQ(mutations::stored_subscriptions_revision(*store_), 50);
}

TEST_F(SubscriptionSyncTest, UpdatesApplyTheLastChangeOfEachId) {
  const auto a = sub();
  const auto b = sub();
  auto a2 = a;
  a2.description = "second";
  const auto sync = apply({{a.id, a}, {b.id, b}, {a.id, a2}, {b.id, std::nullopt}}, 7);
  ASSERT_EQ(sync.stored.size(), 1u);
  EXPECT_EQ(sync.stored[0].description, "second");
  EXPECT_TRUE(sync.removed.empty());  // b was never stored: deleting it is no change
  EXPECT_EQ(stored_ids(), (Ids{a.id}));
  EXPECT_EQ(mutations::stored_subscriptions_revision(*store_), 7);

  const auto deleted = apply({{a.id, std::nullopt}}, 8);
  EXPECT_EQ(deleted.removed, (Ids{a.id}));
  EXPECT_TRUE(stored_ids().empty());
}

TEST_F(SubscriptionSyncTest, AnUpdateThatNamesNoSubscriptionWritesNothing) {
  auto a = sub();
  mutations::SubscriptionSync out;
  const std::vector<mutations::SubscriptionUpdate> bad{{a.id, a}, {"sub_nothex", std::nullopt}};
  const Status status =
      commit([&](WriteTxn& txn) { return mutations::apply_subscription_updates(txn, bad, 3, out); });
  ASSERT_FALSE(status.ok());
  EXPECT_TRUE(stored_ids().empty());
  EXPECT_EQ(mutations::stored_subscriptions_revision(*store_), 0);
}

TEST_F(SubscriptionSyncTest, TheRevisionSurvivesAReopen) {
  replace({sub()}, {}, 12);
  reopen();
  EXPECT_EQ(mutations::stored_subscriptions_revision(*store_), 12);
  EXPECT_EQ(stored_ids().size(), 1u);
}

}  // namespace subscription_sync_test
}  // namespace relay
