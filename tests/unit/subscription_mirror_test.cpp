// SubscriptionMirror: shards on real RocksDB stores following one fake etcd. Each keeps its
// store, registry and stored revision equal to etcd's subscriptions, through outages,
// compactions and restarts, and read-your-writes holds through wait_applied.

#include "relay/cluster/subscription_mirror.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <future>
#include <map>

#include "relay/cluster/subscription_writes.h"
#include "storage/keys.h"
#include "storage/mutations.h"
#include "storage/queries.h"
#include "storage/records.h"
#include "tests/support/fake_cluster_store.h"
#include "tests/support/io_loop.h"
#include "tests/support/temp_dir.h"

namespace relay::cluster {
namespace subscription_mirror_test {

using test::run_task;
using test::run_until;
using Ids = std::vector<std::string>;
using std::chrono_literals::operator""ms;

// One shard: its data directory, writer, registry, etcd client and mirror, opened as relayd
// opens them (the registry from RocksDB first).
struct Shard {
  Shard(boost::asio::io_context& io, test::FakeClusterStore& etcd, Logger& logger)
      : io(io), client(etcd.another_client()), logger(logger) {
    open();
  }
  ~Shard() { close(); }

  void open() {
    store = Store::open(StoreOptions{dir.str() + "/db", false, 8 << 20});
    pipeline = std::make_unique<CommitPipeline>(*store, nullptr);
    registry = std::make_unique<SubscriptionRegistry>(queries::subscriptions(*store));
    streaks = FailureStreaks();
    SubscriptionMirrorOptions options;
    options.retry_delay = 10ms;
    mirror = std::make_unique<SubscriptionMirror>(io.get_executor(), *client, *store, *pipeline, *registry, streaks,
                                                  logger,
                                                  options, [this](const std::string& id, bool removed) {
                                                    changes.push_back((removed ? "-" : "+") + id);
                                                  });
  }
  // A shutdown: the mirror stops and finishes, then the writer and the store close.
  void close() {
    if (!mirror) return;
    mirror->stop();
    EXPECT_TRUE(run_until(io, [&] { return mirror->idle(); }));
    mirror.reset();
    registry.reset();
    pipeline.reset();
    store.reset();
  }
  void restart() {
    close();
    open();
  }

  Ids registry_ids() const {
    Ids ids;
    registry->for_each([&](const auto& sub) { ids.push_back(sub->id); });
    std::sort(ids.begin(), ids.end());
    return ids;
  }
  Ids stored_ids() const {
    Ids ids;
    for (const auto& sub : queries::subscriptions(*store)) ids.push_back(sub.id);
    return ids;
  }
  // A subscription written straight into this shard's store (as a single-node relay would have).
  void put_local(const Subscription& sub) {
    std::promise<Status> done;
    pipeline->submit([sub](WriteTxn& txn) { return mutations::put_subscription(txn, sub); },
                     [&](const Status& s) { done.set_value(s); });
    ASSERT_TRUE(done.get_future().get().ok());
    registry->upsert(sub);
  }

  boost::asio::io_context& io;
  test::TempDir dir;
  std::unique_ptr<test::FakeClusterStore> client;
  Logger& logger;
  std::unique_ptr<Store> store;
  std::unique_ptr<CommitPipeline> pipeline;
  std::unique_ptr<SubscriptionRegistry> registry;
  FailureStreaks streaks;
  std::unique_ptr<SubscriptionMirror> mirror;
  std::vector<std::string> changes;
};

class SubscriptionMirrorTest : public ::testing::Test {
 protected:
  Subscription sub(const std::string& url = "https://example.com/hook") {
    Subscription s;
    s.id = ids_.next(keys::kSubscriptionPrefix);
    s.url = url;
    s.created_at = s.updated_at = clock_.now_ms();
    return s;
  }
  // A write by another shard (or etcdctl): straight into etcd.
  std::int64_t put_in_etcd(const Subscription& s) { return etcd_.put(keys_.subscription(s.id), records::to_record(s).dump()); }
  std::int64_t delete_in_etcd(const Subscription& s) { return etcd_.erase(keys_.subscription(s.id)); }
  // A new subscription, written by another shard.
  Subscription new_in_etcd() {
    Subscription s = sub();
    put_in_etcd(s);
    return s;
  }

  Shard& shard() {
    shards_.push_back(std::make_unique<Shard>(io_, etcd_, logger_));
    return *shards_.back();
  }
  // A shard whose mirror runs.
  Shard& started_shard() {
    Shard& s = shard();
    s.mirror->start();
    return s;
  }

  // Waits (running the loop) until the shard has applied everything etcd has and holds `ids`.
  bool follows(const Shard& s, const Ids& ids) {
    return run_until(io_, [&] { return caught_up(s) && holds(s, ids); });
  }
  // Waits until the shard has applied `revision`.
  bool reaches(const Shard& s, std::int64_t revision) {
    return run_until(io_, [&] { return s.mirror->applied_revision() == revision; });
  }
  // Waits until the shard's first full read is done.
  bool synced(const Shard& s) {
    return run_until(io_, [&] { return s.mirror->synced(); });
  }

  static Ids sorted(Ids ids) {
    std::sort(ids.begin(), ids.end());
    return ids;
  }

  // The shard applied everything etcd has. Wait for this, not for holds() alone: the registry
  // changes on the writer thread before the mirror's coroutine resumes (revision, hooks).
  bool caught_up(const Shard& s) const { return s.mirror->applied_revision() == etcd_.revision(); }

  // Both what the registry serves and what RocksDB holds.
  static bool holds(const Shard& s, const Ids& ids) { return s.registry_ids() == sorted(ids) && s.stored_ids() == sorted(ids); }

  boost::asio::io_context io_;
  ManualClock clock_{1'795'687'200'000};
  keys::IdGenerator ids_{clock_, 1};
  Logger logger_{LogLevel::error};
  test::FakeClusterStore etcd_{io_.get_executor(), clock_};
  ClusterKeys keys_{"/relay/"};
  std::vector<std::unique_ptr<Shard>> shards_;
};

TEST_F(SubscriptionMirrorTest, ANewShardTakesEtcdsSubscriptionsAndDropsItsOwn) {
  const auto a = new_in_etcd();
  const auto b = new_in_etcd();
  auto& s = shard();
  const auto local = sub();
  s.put_local(local);
  s.mirror->start();
  EXPECT_EQ(s.mirror->applied_revision(), 0);
  ASSERT_TRUE(synced(s));
  EXPECT_TRUE(holds(s, {a.id, b.id}));
  EXPECT_EQ(s.mirror->applied_revision(), etcd_.revision());
  EXPECT_EQ(mutations::stored_subscriptions_revision(*s.store), etcd_.revision());
  EXPECT_EQ(sorted(s.changes), sorted({"+" + a.id, "+" + b.id, "-" + local.id}));
  // The stored copy is etcd's, every field.
  EXPECT_EQ(records::to_record(*s.registry->find(a.id)), records::to_record(a));
}

TEST_F(SubscriptionMirrorTest, ChangesInEtcdReachTheStoreAndTheRegistry) {
  auto a = new_in_etcd();
  const auto b = new_in_etcd();
  auto& s = started_shard();
  ASSERT_TRUE(follows(s, {a.id, b.id}));
  s.changes.clear();

  const auto c = new_in_etcd();
  a.url = "https://example.com/moved";
  put_in_etcd(a);
  const auto last = delete_in_etcd(b);
  ASSERT_TRUE(reaches(s, last));
  EXPECT_TRUE(holds(s, {a.id, c.id}));
  EXPECT_EQ(s.registry->find(a.id)->url, "https://example.com/moved");
  EXPECT_EQ(mutations::stored_subscriptions_revision(*s.store), last);
  EXPECT_EQ(sorted(s.changes), sorted({"+" + c.id, "+" + a.id, "-" + b.id}));

  // A change to another part of etcd moves the revision but is no subscription change.
  etcd_.put("/relay/shards/live/x", "{}");
  const auto d = sub();
  const auto after = put_in_etcd(d);
  ASSERT_TRUE(reaches(s, after));
  EXPECT_TRUE(holds(s, {a.id, c.id, d.id}));
}

TEST_F(SubscriptionMirrorTest, TwoShardsFollowOneEtcdAndReadTheirWrites) {
  auto& one = started_shard();
  auto& two = started_shard();
  ASSERT_TRUE(synced(one));
  ASSERT_TRUE(synced(two));

  // A write through shard one, answered once shard one uses it (read-your-writes)...
  SubscriptionWrites writes(*one.client, "/relay/");
  const auto a = sub();
  auto created = run_task(io_, writes.create(a));
  ASSERT_TRUE(created.ok());
  EXPECT_TRUE(run_task(io_, one.mirror->wait_applied(created->revision, 5'000ms)));
  ASSERT_NE(one.registry->find(a.id), nullptr);
  // ...and used by shard two as well.
  EXPECT_TRUE(run_task(io_, two.mirror->wait_applied(created->revision, 5'000ms)));
  ASSERT_NE(two.registry->find(a.id), nullptr);

  const SubscriptionWrites::Change disable = [&](Subscription& s) -> Status {
    set_enabled(s, false, clock_.now_ms());
    return Ok{};
  };
  auto updated = run_task(io_, writes.update(a.id, disable));
  ASSERT_TRUE(updated.ok());
  EXPECT_TRUE(run_task(io_, two.mirror->wait_applied(updated->revision, 5'000ms)));
  EXPECT_FALSE(two.registry->find(a.id)->enabled);

  auto removed = run_task(io_, writes.remove(a.id));
  ASSERT_TRUE(removed.ok());
  EXPECT_TRUE(run_task(io_, one.mirror->wait_applied(removed->revision, 5'000ms)));
  EXPECT_TRUE(run_task(io_, two.mirror->wait_applied(removed->revision, 5'000ms)));
  EXPECT_TRUE(holds(one, {}));
  EXPECT_TRUE(holds(two, {}));
}

TEST_F(SubscriptionMirrorTest, WaitAppliedTimesOutWhileTheShardCannotSeeTheChange) {
  auto& s = started_shard();
  ASSERT_TRUE(synced(s));
  s.client->set_reachable(false);
  const auto rev = put_in_etcd(sub());
  EXPECT_FALSE(run_task(io_, s.mirror->wait_applied(rev, 50ms)));
  EXPECT_TRUE(run_task(io_, s.mirror->wait_applied(s.mirror->applied_revision(), 50ms)));  // already there
  s.client->set_reachable(true);
  EXPECT_TRUE(run_task(io_, s.mirror->wait_applied(rev, 5'000ms)));
}

TEST_F(SubscriptionMirrorTest, AnOutageLosesNothing) {
  const auto a = new_in_etcd();
  const auto b = new_in_etcd();
  auto& s = started_shard();
  ASSERT_TRUE(follows(s, {a.id, b.id}));
  s.client->set_reachable(false);
  const auto c = new_in_etcd();
  delete_in_etcd(a);
  auto b2 = b;
  b2.description = "changed while away";
  const auto last = put_in_etcd(b2);
  test::run_for(io_, 30ms);
  EXPECT_TRUE(holds(s, {a.id, b.id}));  // the shard keeps serving what it has
  s.client->set_reachable(true);
  ASSERT_TRUE(reaches(s, last));
  EXPECT_TRUE(holds(s, {b.id, c.id}));
  EXPECT_EQ(s.registry->find(b.id)->description, "changed while away");
}

TEST_F(SubscriptionMirrorTest, ACompactionPastTheShardReloadsAndDropsWhatWasDeletedMeanwhile) {
  const auto a = new_in_etcd();
  const auto b = new_in_etcd();
  auto& s = started_shard();
  ASSERT_TRUE(follows(s, {a.id, b.id}));
  s.client->set_reachable(false);
  delete_in_etcd(b);
  const auto c = new_in_etcd();
  etcd_.compact(etcd_.revision());
  s.changes.clear();
  s.client->set_reachable(true);
  ASSERT_TRUE(follows(s, {a.id, c.id}));
  EXPECT_EQ(s.mirror->applied_revision(), etcd_.revision());
  EXPECT_EQ(sorted(s.changes), sorted({"-" + b.id, "+" + c.id}));  // a did not change
  // Following again after the reload.
  const auto d = new_in_etcd();
  ASSERT_TRUE(follows(s, {a.id, c.id, d.id}));
}

TEST_F(SubscriptionMirrorTest, EtcdUnreachableAtStartKeepsTheStoredSubscriptions) {
  auto& s = shard();
  const auto local = sub();
  s.put_local(local);
  const auto a = new_in_etcd();
  s.client->set_reachable(false);
  s.mirror->start();
  test::run_for(io_, 50ms);
  EXPECT_FALSE(s.mirror->synced());
  EXPECT_TRUE(holds(s, {local.id}));
  s.client->set_reachable(true);
  ASSERT_TRUE(synced(s));
  EXPECT_TRUE(holds(s, {a.id}));
}

TEST_F(SubscriptionMirrorTest, ARestartReadsEverythingAgainBeforeItCountsAsSynced) {
  const auto a = new_in_etcd();
  const auto b = new_in_etcd();
  auto& s = started_shard();
  ASSERT_TRUE(follows(s, {a.id, b.id}));
  const auto applied = s.mirror->applied_revision();
  s.close();

  // While the shard is down: one created, one deleted, and a subscription planted in its store
  // that etcd never had. A resumed watch would bring the first two at some point; the shard must
  // not count itself synced before it holds exactly etcd's.
  const auto c = new_in_etcd();
  delete_in_etcd(b);
  s.open();
  const auto planted = sub();
  s.put_local(planted);
  s.changes.clear();
  s.mirror->start();
  EXPECT_EQ(s.mirror->applied_revision(), applied);  // from the store, before etcd answers
  EXPECT_FALSE(s.mirror->synced());
  ASSERT_TRUE(synced(s));
  EXPECT_TRUE(holds(s, {a.id, c.id})) << "synced means exactly etcd's subscriptions";
  EXPECT_EQ(s.mirror->applied_revision(), etcd_.revision());
  EXPECT_EQ(sorted(s.changes), sorted({"-" + b.id, "-" + planted.id, "+" + c.id}));  // a did not change
  // Following again after the read.
  const auto d = new_in_etcd();
  ASSERT_TRUE(follows(s, {a.id, c.id, d.id}));
}

TEST_F(SubscriptionMirrorTest, ARestartOnAReplacedEtcdReadsEverythingAgain) {
  const auto a = sub();
  for (int i = 0; i < 5; ++i) put_in_etcd(a);  // revision 6
  auto& s = started_shard();
  ASSERT_TRUE(reaches(s, 6));
  s.close();
  // A new, empty etcd (revision 1) with one other subscription.
  test::FakeClusterStore fresh(io_.get_executor(), clock_);
  const auto b = sub();
  fresh.put(keys_.subscription(b.id), records::to_record(b).dump());
  s.client = fresh.another_client();
  s.open();
  s.mirror->start();
  ASSERT_TRUE(reaches(s, fresh.revision()));
  EXPECT_TRUE(holds(s, {b.id}));
  s.close();
}

TEST_F(SubscriptionMirrorTest, UndecodableValuesAreSkipped) {
  const auto a = new_in_etcd();
  etcd_.put(keys_.subscription("sub_garbage"), "{}");
  const auto b = sub();
  etcd_.put(keys_.subscription(b.id), "not json");
  const auto c = sub();
  etcd_.put(keys_.subscription(c.id), records::to_record(a).dump());  // names another id
  auto& s = started_shard();
  ASSERT_TRUE(synced(s));
  EXPECT_TRUE(holds(s, {a.id}));
  EXPECT_EQ(s.mirror->applied_revision(), etcd_.revision());
  // An undecodable change later is skipped too; the revision still moves on.
  const auto bad = etcd_.put(keys_.subscription(a.id), "[1,2]");
  ASSERT_TRUE(reaches(s, bad));
  EXPECT_TRUE(holds(s, {a.id}));
  EXPECT_EQ(s.registry->find(a.id)->url, a.url);
}

}  // namespace subscription_mirror_test
}  // namespace relay::cluster
