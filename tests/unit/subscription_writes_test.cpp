// SubscriptionWrites against the fake etcd: compare-and-swap creates, updates and deletes that
// serialize concurrent writers, and the errors the API maps to statuses.

#include "relay/cluster/subscription_writes.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include "storage/keys.h"
#include "storage/records.h"
#include "tests/support/fake_cluster_store.h"
#include "tests/support/io_loop.h"

namespace relay::cluster {
namespace subscription_writes_test {

using test::run_task;

class SubscriptionWritesTest : public ::testing::Test {
 protected:
  Subscription sub() {
    Subscription s;
    s.id = ids_.next(keys::kSubscriptionPrefix);
    s.url = "https://example.com/hook";
    return s;
  }
  std::optional<Subscription> in_etcd(const std::string& id) {
    const auto kv = etcd_.get(keys_.subscription(id));
    if (!kv) return std::nullopt;
    return records::subscription_from_record(nlohmann::json::parse(kv->value));
  }
  static SubscriptionWrites::Change describe(std::string text) {
    return [text](Subscription& s) -> Status {
      s.description += text;
      return Ok{};
    };
  }

  boost::asio::io_context io_;
  ManualClock clock_{1'795'687'200'000};
  keys::IdGenerator ids_{clock_, 1};
  test::FakeClusterStore etcd_{io_.get_executor(), clock_};
  ClusterKeys keys_{"/relay/"};
  SubscriptionWrites writes_{etcd_, "/relay/"};
};

TEST_F(SubscriptionWritesTest, CreateStoresTheRecordOnlyOnce) {
  auto a = sub();
  a.secret = "whsec_c2VjcmV0";
  const auto created = run_task(io_, writes_.create(a));
  ASSERT_TRUE(created.ok());
  EXPECT_EQ(created->revision, etcd_.revision());
  EXPECT_EQ(created->revision, etcd_.get(keys_.subscription(a.id))->mod_revision);
  ASSERT_TRUE(in_etcd(a.id));
  EXPECT_EQ(records::to_record(*in_etcd(a.id)), records::to_record(a));  // secrets included
  const auto again = run_task(io_, writes_.create(a));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, Errc::conflict);
  const auto read = run_task(io_, writes_.get(a.id));
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->subscription.secret, a.secret);
}

TEST_F(SubscriptionWritesTest, UpdateAppliesTheChangeToTheCurrentValue) {
  const auto a = sub();
  ASSERT_TRUE(run_task(io_, writes_.create(a)).ok());
  const auto updated = run_task(io_, writes_.update(a.id, describe("x")));
  ASSERT_TRUE(updated.ok());
  EXPECT_EQ(updated->subscription.description, "x");
  EXPECT_EQ(updated->revision, etcd_.revision());
  EXPECT_EQ(in_etcd(a.id)->description, "x");
}

TEST_F(SubscriptionWritesTest, AConcurrentWriterIsNeverLost) {
  const auto a = sub();
  ASSERT_TRUE(run_task(io_, writes_.create(a)).ok());
  // Another shard's write lands between this update's read and its compare-and-swap.
  int calls = 0;
  const SubscriptionWrites::Change racing = [&](Subscription& s) -> Status {
    if (++calls == 1) {
      auto other = s;
      other.description += "other;";
      etcd_.put(keys_.subscription(a.id), records::to_record(other).dump());
    }
    s.description += "mine;";
    return Ok{};
  };
  const auto updated = run_task(io_, writes_.update(a.id, racing));
  ASSERT_TRUE(updated.ok());
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(in_etcd(a.id)->description, "other;mine;");
}

TEST_F(SubscriptionWritesTest, EndlessRacesAnswerConflict) {
  const auto a = sub();
  ASSERT_TRUE(run_task(io_, writes_.create(a)).ok());
  const SubscriptionWrites::Change always_raced = [&](Subscription& s) -> Status {
    etcd_.put(keys_.subscription(a.id), records::to_record(s).dump());
    return Ok{};
  };
  const auto updated = run_task(io_, writes_.update(a.id, always_raced));
  ASSERT_FALSE(updated.ok());
  EXPECT_EQ(updated.error().code, Errc::conflict);
}

TEST_F(SubscriptionWritesTest, ARefusedChangeWritesNothing) {
  const auto a = sub();
  ASSERT_TRUE(run_task(io_, writes_.create(a)).ok());
  const auto before = etcd_.revision();
  const SubscriptionWrites::Change refuse = [](Subscription&) -> Status {
    return make_error(Errc::invalid_field, "field 'url' must be a URL");
  };
  const auto refused = run_task(io_, writes_.update(a.id, refuse));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::invalid_field);
  EXPECT_EQ(etcd_.revision(), before);
}

TEST_F(SubscriptionWritesTest, RemoveAndTheAbsent) {
  const auto a = sub();
  ASSERT_TRUE(run_task(io_, writes_.create(a)).ok());
  const auto removed = run_task(io_, writes_.remove(a.id));
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(removed->subscription.url, a.url);
  EXPECT_EQ(removed->revision, etcd_.revision());
  EXPECT_FALSE(in_etcd(a.id));
  // A change of a deleted subscription never brings it back.
  for (const auto& result : {run_task(io_, writes_.update(a.id, describe("x"))), run_task(io_, writes_.remove(a.id)),
                             run_task(io_, writes_.get(a.id))}) {
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.error().code, Errc::not_found);
  }
  EXPECT_FALSE(in_etcd(a.id));
}

TEST_F(SubscriptionWritesTest, AnUnreadableValueIsAnInternalErrorButCanBeDeleted) {
  const auto a = sub();
  etcd_.put(keys_.subscription(a.id), "garbage");
  const auto updated = run_task(io_, writes_.update(a.id, describe("x")));
  ASSERT_FALSE(updated.ok());
  EXPECT_EQ(updated.error().code, Errc::internal);
  const auto removed = run_task(io_, writes_.remove(a.id));
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(removed->subscription.id, a.id);
}

TEST_F(SubscriptionWritesTest, AnUnreachableEtcdIsUnavailable) {
  const auto a = sub();
  etcd_.set_reachable(false);
  for (const auto& result : {run_task(io_, writes_.create(a)), run_task(io_, writes_.update(a.id, describe("x"))),
                             run_task(io_, writes_.remove(a.id))}) {
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.error().code, Errc::unavailable);
  }
}

}  // namespace subscription_writes_test
}  // namespace relay::cluster
