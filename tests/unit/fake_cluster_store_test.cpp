// The fake etcd of the cluster tests (tests/support/fake_cluster_store.h) keeps etcd's rules:
// revisions, compare-and-swap, leases, ordered watches through the executor, compaction, and
// outages that lose nothing.

#include "tests/support/fake_cluster_store.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <vector>

#include "tests/support/io_loop.h"

namespace relay::test {
namespace fake_cluster_store_test {

using namespace relay::cluster;
using std::chrono_literals::operator""s;

class FakeClusterStoreTest : public ::testing::Test {
 protected:
  Result<TxnResult> txn(Txn t) { return run_task(io_, etcd_.commit(std::move(t))); }
  Result<RangeResult> range(std::string key, bool prefix) { return run_task(io_, etcd_.range(std::move(key), prefix)); }

  boost::asio::io_context io_;
  ManualClock clock_{1'000'000};
  FakeClusterStore etcd_{io_.get_executor(), clock_};
};

struct Recorder {
  std::vector<WatchBatch> batches;
  std::vector<std::string> seen() const {
    std::vector<std::string> out;
    for (const auto& b : batches) {
      for (const auto& e : b.events) {
        out.push_back((e.kind == WatchEvent::Kind::put ? "put " : "del ") + e.kv.key + "@" +
                      std::to_string(e.kv.mod_revision));
      }
    }
    return out;
  }
  ClusterStore::WatchCallback callback() {
    return [this](WatchBatch b) { batches.push_back(std::move(b)); };
  }
};

using Seen = std::vector<std::string>;

TEST_F(FakeClusterStoreTest, RevisionsAndCompareAndSwap) {
  EXPECT_EQ(etcd_.revision(), 1);
  Txn create;
  create.compares = {Compare{"/k", 0}};
  create.then = {Put{"/k", "v1", 0}, Put{"/j", "x", 0}};
  auto created = txn(create);
  ASSERT_TRUE(created.ok());
  EXPECT_TRUE(created->succeeded);
  EXPECT_EQ(created->revision, 2);  // one transaction, one revision
  // The same compare fails now, and changes nothing.
  auto again = txn(create);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->succeeded);
  EXPECT_EQ(etcd_.revision(), 2);

  Txn update;
  update.compares = {Compare{"/k", 2}};
  update.then = {Put{"/k", "v2", 0}};
  ASSERT_TRUE(txn(update)->succeeded);
  const auto kv = etcd_.get("/k");
  ASSERT_TRUE(kv);
  EXPECT_EQ(kv->value, "v2");
  EXPECT_EQ(kv->create_revision, 2);
  EXPECT_EQ(kv->mod_revision, 3);
  EXPECT_FALSE(txn(update)->succeeded);  // stale mod_revision

  auto all = range("/", true);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->kvs.size(), 2u);
  EXPECT_EQ(all->kvs[0].key, "/j");  // key order
  EXPECT_EQ(all->revision, 3);
  EXPECT_EQ(range("/k", false)->kvs.size(), 1u);
  EXPECT_TRUE(range("/absent", false)->kvs.empty());

  // Deleting nothing is no change.
  Txn nothing;
  nothing.then = {Delete{"/absent"}};
  EXPECT_EQ(txn(nothing)->revision, 3);
}

TEST_F(FakeClusterStoreTest, LeasesExpireByClockOrByTestAndTakeTheirKeys) {
  const auto lease = run_task(io_, etcd_.grant_lease(10s));
  ASSERT_TRUE(lease.ok());
  Txn put;
  put.then = {Put{"/live/a", "a", *lease}};
  ASSERT_TRUE(txn(put)->succeeded);

  clock_.advance(6'000);
  ASSERT_TRUE(run_task(io_, etcd_.keep_alive(*lease)).ok());
  clock_.advance(6'000);  // 12 s after the grant, 6 s after the keep-alive
  etcd_.expire_due_leases();
  EXPECT_TRUE(etcd_.get("/live/a"));
  clock_.advance(4'000);
  etcd_.expire_due_leases();
  EXPECT_FALSE(etcd_.get("/live/a"));
  EXPECT_FALSE(etcd_.lease_exists(*lease));
  const auto late = run_task(io_, etcd_.keep_alive(*lease));
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().code, Errc::not_found);
  // A put on a lease that is gone is refused as a whole.
  const auto refused = txn(put);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::not_found);

  const auto other = run_task(io_, etcd_.grant_lease(10s));
  Txn put_b;
  put_b.then = {Put{"/live/b", "b", *other}};
  ASSERT_TRUE(txn(put_b)->succeeded);
  EXPECT_TRUE(etcd_.expire_lease(*other));
  EXPECT_FALSE(etcd_.get("/live/b"));
  EXPECT_EQ(etcd_.lease_count(), 0u);
}

TEST_F(FakeClusterStoreTest, WatchesReplayFromTheirRevisionInOrderThroughTheExecutor) {
  etcd_.put("/w/a", "1");   // rev 2
  etcd_.put("/x/a", "1");   // rev 3, not under /w/
  etcd_.put("/w/b", "1");   // rev 4
  Recorder recorder;
  auto handle = etcd_.watch("/w/", 3, recorder.callback());
  EXPECT_TRUE(recorder.batches.empty());  // never inline
  ASSERT_TRUE(run_until(io_, [&] { return recorder.seen().size() == 1; }));
  EXPECT_EQ(recorder.seen(), (Seen{"put /w/b@4"}));

  etcd_.erase("/w/a");    // rev 5
  etcd_.put("/w/c", "1");  // rev 6
  EXPECT_EQ(recorder.batches.size(), 1u);
  ASSERT_TRUE(run_until(io_, [&] { return recorder.seen().size() == 3; }));
  EXPECT_EQ(recorder.seen(), (Seen{"put /w/b@4", "del /w/a@5", "put /w/c@6"}));
  EXPECT_EQ(recorder.batches.size(), 3u);  // one batch per revision

  // Destroying the handle ends it: nothing more arrives.
  handle.reset();
  etcd_.put("/w/d", "1");
  run_for(io_, std::chrono::milliseconds(20));
  EXPECT_EQ(recorder.seen().size(), 3u);
  EXPECT_EQ(etcd_.active_watches(), 0u);
}

TEST_F(FakeClusterStoreTest, CompactionEndsOlderWatches) {
  etcd_.put("/w/a", "1");  // 2
  etcd_.put("/w/a", "2");  // 3
  etcd_.put("/w/a", "3");  // 4
  etcd_.compact(4);
  Recorder old_watch;
  auto a = etcd_.watch("/w/", 3, old_watch.callback());
  Recorder current;
  auto b = etcd_.watch("/w/", 4, current.callback());
  ASSERT_TRUE(run_until(io_, [&] { return !old_watch.batches.empty() && !current.batches.empty(); }));
  ASSERT_EQ(old_watch.batches.size(), 1u);
  EXPECT_TRUE(old_watch.batches[0].compacted);
  EXPECT_EQ(current.seen(), (Seen{"put /w/a@4"}));
  etcd_.put("/w/a", "4");
  ASSERT_TRUE(run_until(io_, [&] { return current.seen().size() == 2; }));
  EXPECT_EQ(old_watch.batches.size(), 1u);  // ended
}

TEST_F(FakeClusterStoreTest, UnreachableRefusesCallsAndPausesWatchesWithoutLosingChanges) {
  Recorder recorder;
  auto handle = etcd_.watch("/w/", 0, recorder.callback());
  etcd_.set_reachable(false);
  EXPECT_FALSE(etcd_.reachable());
  const auto refused = range("/w/", true);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::unavailable);
  EXPECT_EQ(run_task(io_, etcd_.grant_lease(10s)).error().code, Errc::unavailable);
  // Other clients keep changing etcd meanwhile.
  etcd_.put("/w/a", "1");
  etcd_.put("/w/b", "1");
  run_for(io_, std::chrono::milliseconds(20));
  EXPECT_TRUE(recorder.batches.empty());
  etcd_.set_reachable(true);
  ASSERT_TRUE(run_until(io_, [&] { return recorder.seen().size() == 2; }));
  EXPECT_EQ(recorder.seen(), (Seen{"put /w/a@2", "put /w/b@3"}));
}

TEST_F(FakeClusterStoreTest, ClientsShareDataButNotReachability) {
  auto other = etcd_.another_client();
  Recorder recorder;
  auto handle = other->watch("/w/", 0, recorder.callback());
  etcd_.set_reachable(false);
  ASSERT_TRUE(run_task(io_, other->range("/w/", true)).ok());
  Txn put;
  put.then = {Put{"/w/a", "1", 0}};
  ASSERT_TRUE(run_task(io_, other->commit(put))->succeeded);
  ASSERT_TRUE(run_until(io_, [&] { return recorder.seen().size() == 1; }));
  EXPECT_EQ(etcd_.get("/w/a")->value, "1");
}

}  // namespace fake_cluster_store_test
}  // namespace relay::test
