// Rendezvous hashing: the same owner on every shard and in every build, keys spread evenly, and
// only the keys of a shard that leaves (or that a joining shard wins) move.

#include "relay/cluster/rendezvous.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace relay::cluster {
namespace rendezvous_test {

using Names = std::vector<std::string>;

std::string key(int i) { return "order-" + std::to_string(i); }

TEST(RendezvousTest, WeightsAreFixedAcrossBuilds) {
  // Computed independently (a Python transcription of the formula in rendezvous.h): a change of
  // these values would move keys between shards of a running cluster.
  EXPECT_EQ(rendezvous_weight("order-42", "relay-0"), 0x846a90c8613d437eULL);
  EXPECT_EQ(rendezvous_weight("order-42", "relay-1"), 0xf2425d52f10db2cdULL);
  EXPECT_EQ(rendezvous_weight("order-42", "relay-2"), 0x6284c9d2e6d96f87ULL);
  EXPECT_EQ(rendezvous_weight("", "a"), 0x60de25dbfdce3954ULL);
  const Names shards{"relay-0", "relay-1", "relay-2"};
  EXPECT_EQ(owner("order-42", shards), "relay-1");
  EXPECT_EQ(owner("evt-client-1", shards), "relay-2");
  EXPECT_EQ(owner("cal_42", shards), "relay-0");
}

TEST(RendezvousTest, OwnerDoesNotDependOnTheListsOrder) {
  const Names a{"relay-0", "relay-1", "relay-2"};
  const Names b{"relay-2", "relay-0", "relay-1"};
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(owner(key(i), a), owner(key(i), b)) << key(i);
}

TEST(RendezvousTest, NoShardsNoOwnerAndOneShardOwnsAll) {
  EXPECT_EQ(owner("k", {}), "");
  EXPECT_EQ(owner("k", {"only"}), "only");
}

TEST(RendezvousTest, KeysSpreadEvenlyOverThreeShards) {
  const Names shards{"relay-0", "relay-1", "relay-2"};
  std::map<std::string, int> counts;
  constexpr int kKeys = 30'000;
  for (int i = 0; i < kKeys; ++i) ++counts[owner(key(i), shards)];
  ASSERT_EQ(counts.size(), 3u);
  // Binomial: the standard deviation is about 82 keys; 5% (500) is six of them.
  for (const auto& [shard, count] : counts) EXPECT_NEAR(count, kKeys / 3, kKeys / 3 / 20) << shard;
}

TEST(RendezvousTest, AShardLeavingMovesOnlyItsOwnKeys) {
  const Names three{"relay-0", "relay-1", "relay-2"};
  const Names two{"relay-0", "relay-2"};
  int moved = 0;
  for (int i = 0; i < 10'000; ++i) {
    const auto before = owner(key(i), three);
    const auto after = owner(key(i), two);
    if (before != "relay-1") {
      EXPECT_EQ(before, after) << key(i);
    } else {
      ++moved;
    }
  }
  EXPECT_NEAR(moved, 10'000 / 3, 300);
}

TEST(RendezvousTest, AShardJoiningTakesAFairShareAndNothingElseMoves) {
  const Names three{"relay-0", "relay-1", "relay-2"};
  const Names four{"relay-0", "relay-1", "relay-2", "relay-3"};
  int taken = 0;
  for (int i = 0; i < 10'000; ++i) {
    const auto before = owner(key(i), three);
    const auto after = owner(key(i), four);
    if (after == "relay-3") {
      ++taken;
    } else {
      EXPECT_EQ(before, after) << key(i);
    }
  }
  EXPECT_NEAR(taken, 10'000 / 4, 300);
}

}  // namespace rendezvous_test
}  // namespace relay::cluster
