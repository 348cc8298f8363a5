// ShardDirectory against the fake etcd: numbers allocated once and never twice, liveness kept
// with a lease through expiries and outages, and every shard's view of the others.

#include "relay/cluster/shard_directory.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <set>

#include "tests/support/fake_cluster_store.h"
#include "tests/support/io_loop.h"

namespace relay::cluster {
namespace shard_directory_test {

using test::run_task;
using test::run_until;
using Names = std::vector<std::string>;

class ShardDirectoryTest : public ::testing::Test {
 protected:
  ~ShardDirectoryTest() override {
    for (auto& dir : dirs_) dir->stop();
    EXPECT_TRUE(run_until(io_, [&] {
      return std::all_of(dirs_.begin(), dirs_.end(), [](const auto& d) { return d->idle(); });
    }));
  }

  // A shard's directory on its own client of the fake etcd.
  ShardDirectory& shard(const std::string& name, test::FakeClusterStore* client = nullptr) {
    if (client == nullptr) {
      clients_.push_back(etcd_.another_client());
      client = clients_.back().get();
    }
    ShardDirectoryOptions options;
    options.name = name;
    options.keep_alive_interval = std::chrono::milliseconds(10);
    options.retry_delay = std::chrono::milliseconds(10);
    dirs_.push_back(std::make_unique<ShardDirectory>(io_.get_executor(), *client, clock_, logger_, options));
    return *dirs_.back();
  }

  test::FakeClusterStore& client_of(std::size_t i) { return *clients_.at(i); }

  std::uint32_t allocate(ShardDirectory& dir, std::uint32_t known = 0) {
    auto number = run_task(io_, dir.allocate(known));
    EXPECT_TRUE(number.ok()) << number.error().message;
    return number.ok() ? *number : 0;
  }

  void join(ShardDirectory& dir, const std::string& advertise) {
    allocate(dir);
    const auto joined = run_task(io_, dir.join(advertise));
    EXPECT_TRUE(joined.ok()) << joined.error().message;
  }

  static Names names(const ShardDirectory& dir) { return dir.live_names(); }

  boost::asio::io_context io_;
  ManualClock clock_{1'795'687'200'000};
  Logger logger_{LogLevel::error};
  test::FakeClusterStore etcd_{io_.get_executor(), clock_};
  ClusterKeys keys_{"/relay/"};
  std::vector<std::unique_ptr<test::FakeClusterStore>> clients_;
  std::vector<std::unique_ptr<ShardDirectory>> dirs_;
};

TEST_F(ShardDirectoryTest, ANameGetsTheSmallestFreeNumberOnceAndForAll) {
  auto& a = shard("relay-a");
  auto& b = shard("relay-b");
  EXPECT_EQ(allocate(a), 1u);
  EXPECT_EQ(allocate(b), 2u);
  EXPECT_EQ(a.number(), 1u);
  // Asked again (a restart), the same number.
  EXPECT_EQ(allocate(shard("relay-a")), 1u);
  EXPECT_EQ(decode_name_value(etcd_.get(keys_.shard_name("relay-b"))->value), 2u);
  EXPECT_EQ(decode_number_value(etcd_.get(keys_.shard_number(2))->value), "relay-b");
  // A hole left by hand (numbers/ 3 taken without a name) is skipped; names are permanent.
  etcd_.put(keys_.shard_number(3), encode_number_value("relay-x"));
  EXPECT_EQ(allocate(shard("relay-c")), 4u);
}

TEST_F(ShardDirectoryTest, ShardsStartingTogetherGetDistinctNumbers) {
  constexpr int kShards = 6;
  std::vector<ShardDirectory*> dirs;
  for (int i = 0; i < kShards; ++i) dirs.push_back(&shard("relay-" + std::to_string(i)));
  std::vector<std::optional<Result<std::uint32_t>>> results(kShards);
  for (int i = 0; i < kShards; ++i) {
    auto* dir = dirs[i];
    boost::asio::co_spawn(
        io_, [&results, i, dir]() -> boost::asio::awaitable<void> { results[i].emplace(co_await dir->allocate()); },
        boost::asio::detached);
  }
  ASSERT_TRUE(run_until(io_, [&] {
    return std::all_of(results.begin(), results.end(), [](const auto& r) { return r.has_value(); });
  }));
  std::set<std::uint32_t> numbers;
  for (const auto& r : results) {
    ASSERT_TRUE(r->ok()) << r->error().message;
    numbers.insert(**r);
  }
  EXPECT_EQ(numbers, (std::set<std::uint32_t>{1, 2, 3, 4, 5, 6}));
}

TEST_F(ShardDirectoryTest, TheDataDirectorysNumberMustAgreeWithEtcd) {
  auto& a = shard("relay-a");
  EXPECT_EQ(allocate(a), 1u);
  // etcd lost its registry (a new etcd): the data directory's number is taken again.
  etcd_.erase(keys_.shard_name("relay-b"));
  EXPECT_EQ(allocate(shard("relay-b"), /*known=*/5), 5u);
  EXPECT_EQ(decode_number_value(etcd_.get(keys_.shard_number(5))->value), "relay-b");
  EXPECT_EQ(allocate(shard("relay-c")), 2u);

  // etcd gives the name another number than the data directory holds.
  auto wrong = run_task(io_, shard("relay-a").allocate(/*known=*/3));
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().code, Errc::conflict);
  EXPECT_NE(wrong.error().message.find("number 1"), std::string::npos) << wrong.error().message;
  // The data directory's number belongs to another name.
  auto taken = run_task(io_, shard("relay-d").allocate(/*known=*/5));
  ASSERT_FALSE(taken.ok());
  EXPECT_EQ(taken.error().code, Errc::conflict);
  EXPECT_NE(taken.error().message.find("relay-b"), std::string::npos) << taken.error().message;
  EXPECT_FALSE(etcd_.get(keys_.shard_name("relay-d")));
}

TEST_F(ShardDirectoryTest, BadNamesAndAnUnreachableEtcdAreErrors) {
  auto bad = run_task(io_, shard("Relay_A").allocate());
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, Errc::invalid_field);
  auto& a = shard("relay-a");
  client_of(1).set_reachable(false);
  auto down = run_task(io_, a.allocate());
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.error().code, Errc::unavailable);
}

TEST_F(ShardDirectoryTest, JoinedShardsSeeEachOther) {
  auto& b = shard("relay-b");
  auto& a = shard("relay-a");
  int changes = 0;
  a.on_change([&] { ++changes; });
  join(b, "http://b:8080");
  join(a, "http://a:8080");
  ASSERT_TRUE(run_until(io_, [&] { return names(a) == Names{"relay-a", "relay-b"} && names(b) == names(a); }));
  EXPECT_GT(changes, 0);
  EXPECT_TRUE(a.loaded());
  const auto found = a.find_by_number(1);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->name, "relay-b");
  EXPECT_EQ(found->advertise, "http://b:8080");
  EXPECT_EQ(found->started_at, clock_.now_ms());
  EXPECT_EQ(a.self().number, 2u);
  EXPECT_FALSE(a.find_by_number(3));
  EXPECT_EQ(a.counts().live, 2u);
  EXPECT_EQ(a.counts().down, 0u);
  const auto live = decode_live_value(etcd_.get(keys_.live_shard("relay-a"))->value);
  ASSERT_TRUE(live);
  EXPECT_EQ(live->advertise, "http://a:8080");
  EXPECT_NE(etcd_.get(keys_.live_shard("relay-a"))->lease, 0);
}

TEST_F(ShardDirectoryTest, TheLeaseIsKeptAliveLongPastItsTtl) {
  auto& a = shard("relay-a");
  join(a, "http://a");
  const auto lease = etcd_.get(keys_.live_shard("relay-a"))->lease;
  for (int i = 0; i < 5; ++i) {  // 25 s on the clock, a 10 s lease
    const auto before = etcd_.keep_alives();
    clock_.advance(5'000);
    ASSERT_TRUE(run_until(io_, [&] { return etcd_.keep_alives() > before; }));
    etcd_.expire_due_leases();
    ASSERT_TRUE(etcd_.lease_exists(lease));
  }
  EXPECT_EQ(etcd_.get(keys_.live_shard("relay-a"))->lease, lease);
}

TEST_F(ShardDirectoryTest, AnExpiredLeaseIsGrantedAndPutAgain) {
  auto& a = shard("relay-a");
  auto& b = shard("relay-b");
  join(a, "http://a");
  join(b, "http://b");
  const auto lease = etcd_.get(keys_.live_shard("relay-a"))->lease;
  ASSERT_TRUE(etcd_.expire_lease(lease));
  ASSERT_TRUE(run_until(io_, [&] {
    const auto kv = etcd_.get(keys_.live_shard("relay-a"));
    return kv && kv->lease != lease;
  }));
  ASSERT_TRUE(run_until(io_, [&] { return names(b) == Names{"relay-a", "relay-b"}; }));
}

TEST_F(ShardDirectoryTest, AnUnreachableShardStaysLiveToItselfAndComesBack) {
  auto& a = shard("relay-a");
  auto& b = shard("relay-b");
  join(a, "http://a");
  join(b, "http://b");
  ASSERT_TRUE(run_until(io_, [&] { return names(b).size() == 2; }));
  client_of(0).set_reachable(false);
  // etcd lets a's lease run out while a cannot reach it.
  clock_.advance(11'000);
  etcd_.expire_due_leases();
  ASSERT_TRUE(run_until(io_, [&] { return names(b) == Names{"relay-b"}; }));
  EXPECT_EQ(b.counts().down, 1u);
  // a still counts itself (and what it knew).
  EXPECT_EQ(names(a), (Names{"relay-a", "relay-b"}));
  client_of(0).set_reachable(true);
  ASSERT_TRUE(run_until(io_, [&] { return names(b) == Names{"relay-a", "relay-b"}; }));
  EXPECT_EQ(b.counts().down, 0u);
}

TEST_F(ShardDirectoryTest, LeavingIsSeenAtOnceAndCountsAsDown) {
  auto& a = shard("relay-a");
  auto& b = shard("relay-b");
  join(a, "http://a");
  join(b, "http://b");
  ASSERT_TRUE(run_until(io_, [&] { return names(b).size() == 2; }));
  run_task(io_, a.leave());
  EXPECT_FALSE(etcd_.get(keys_.live_shard("relay-a")));
  EXPECT_EQ(etcd_.lease_count(), 1u);
  ASSERT_TRUE(run_until(io_, [&] { return names(b) == Names{"relay-b"}; }));
  EXPECT_EQ(b.counts().live, 1u);
  EXPECT_EQ(b.counts().down, 1u);
  EXPECT_EQ(names(a), (Names{"relay-b"}));

  // Joining again (one keeper, the new one) keeps it live past its ttl.
  ASSERT_TRUE(run_task(io_, a.join("http://a2")).ok());
  ASSERT_TRUE(run_until(io_, [&] { return names(b) == Names{"relay-a", "relay-b"}; }));
  EXPECT_EQ(b.find("relay-a")->advertise, "http://a2");
  const auto lease = etcd_.get(keys_.live_shard("relay-a"))->lease;
  clock_.advance(8'000);
  ASSERT_TRUE(run_until(io_, [&] { return etcd_.lease_deadline(lease) >= clock_.now_ms() + 10'000; }));
  clock_.advance(8'000);
  etcd_.expire_due_leases();
  EXPECT_TRUE(etcd_.lease_exists(lease));
  EXPECT_TRUE(etcd_.get(keys_.live_shard("relay-a")));
}

TEST_F(ShardDirectoryTest, AWatchPastACompactionReadsTheRegistryAgain) {
  auto& a = shard("relay-a");
  auto& b = shard("relay-b");
  auto& c = shard("relay-c");
  join(a, "http://a");
  join(b, "http://b");
  join(c, "http://c");
  ASSERT_TRUE(run_until(io_, [&] { return names(b).size() == 3; }));
  client_of(1).set_reachable(false);  // b's watch falls behind
  run_task(io_, a.leave());
  etcd_.compact(etcd_.revision());
  client_of(1).set_reachable(true);
  ASSERT_TRUE(run_until(io_, [&] { return names(b) == Names{"relay-b", "relay-c"}; }));
  EXPECT_EQ(b.counts().down, 1u);
  // And it keeps watching afterwards.
  run_task(io_, c.leave());
  ASSERT_TRUE(run_until(io_, [&] { return names(b) == Names{"relay-b"}; }));
}

TEST_F(ShardDirectoryTest, JoiningWhileEtcdIsDownRegistersOnceItIsBack) {
  auto& a = shard("relay-a");
  allocate(a);
  client_of(0).set_reachable(false);
  const auto joined = run_task(io_, a.join("http://a"));
  EXPECT_FALSE(joined.ok());
  EXPECT_EQ(names(a), (Names{"relay-a"}));  // live to itself
  EXPECT_FALSE(etcd_.get(keys_.live_shard("relay-a")));
  client_of(0).set_reachable(true);
  ASSERT_TRUE(run_until(io_, [&] { return etcd_.get(keys_.live_shard("relay-a")).has_value(); }));
  ASSERT_TRUE(run_until(io_, [&] { return a.loaded(); }));
}

}  // namespace shard_directory_test
}  // namespace relay::cluster
