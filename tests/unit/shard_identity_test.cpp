// A data directory's shard identity (cluster mode): claimed once, kept across restarts, the
// shard number as the instance part of every id, and refused for another shard or for a
// single-node relay's data.

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "storage/keys.h"
#include "storage/store.h"
#include "tests/support/temp_dir.h"

namespace relay {
namespace shard_identity_test {

std::unique_ptr<Store> open_store(const test::TempDir& dir) {
  return Store::open(StoreOptions{dir.str() + "/db", false, 8 << 20});
}

// The message of the runtime_error `f` throws ("" and a test failure when none).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no std::runtime_error";
  return "";
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(ShardIdentityTest, ClaimMakesTheNumberTheInstanceIdForGood) {
  test::TempDir dir;
  {
    auto store = open_store(dir);
    EXPECT_FALSE(store->shard());
    store->claim_shard({"relay-1", 2});
    EXPECT_EQ(store->instance_id(), 2u);
    EXPECT_EQ(store->shard(), (ShardIdentity{"relay-1", 2}));
    // An id made now names shard 2: its bytes 6..9 are the instance id.
    ManualClock clock(1'000);
    keys::IdGenerator ids(clock, store->instance_id());
    const auto raw = keys::raw(ids.next(keys::kEventPrefix));
    EXPECT_EQ(keys::read_u32(std::string_view(raw).substr(6, 4)), 2u);
  }
  // A restart, in cluster mode or not, keeps both.
  auto store = open_store(dir);
  EXPECT_EQ(store->instance_id(), 2u);
  EXPECT_EQ(store->shard(), (ShardIdentity{"relay-1", 2}));
  store->claim_shard({"relay-1", 2});  // the same claim again: nothing to do
  EXPECT_EQ(store->instance_id(), 2u);
}

TEST(ShardIdentityTest, AnotherShardNameOrNumberIsRefused) {
  test::TempDir dir;
  open_store(dir)->claim_shard({"relay-1", 2});
  auto store = open_store(dir);
  const auto other_name = error_of([&] { store->claim_shard({"relay-7", 2}); });
  EXPECT_TRUE(contains(other_name, "belongs to shard 'relay-1' (number 2)")) << other_name;
  EXPECT_TRUE(contains(other_name, "--shard relay-1")) << other_name;
  const auto other_number = error_of([&] { store->claim_shard({"relay-1", 3}); });
  EXPECT_TRUE(contains(other_number, "belongs to shard 'relay-1' (number 2)")) << other_number;
  // Nothing changed.
  EXPECT_EQ(store->shard(), (ShardIdentity{"relay-1", 2}));
  EXPECT_EQ(store->instance_id(), 2u);
}

TEST(ShardIdentityTest, ASingleNodeRelaysDataIsRefused) {
  for (const Family family : {Family::events, Family::deliveries, Family::jobs, Family::subscriptions}) {
    test::TempDir dir;
    auto store = open_store(dir);
    const auto random_id = store->instance_id();
    rocksdb::WriteBatch batch;
    ASSERT_TRUE(batch.Put(store->handle(family), "some-id", "record").ok());
    ASSERT_TRUE(store->write(batch).ok());
    const auto message = error_of([&] { store->claim_shard({"relay-0", 1}); });
    EXPECT_TRUE(contains(message, "single-node relay")) << message;
    EXPECT_FALSE(store->shard());
    EXPECT_EQ(store->instance_id(), random_id);
  }
}

TEST(ShardIdentityTest, AnEmptySingleNodeDirectoryCanBeClaimed) {
  test::TempDir dir;
  {
    auto store = open_store(dir);
    // Only meta and a family the claim does not look at (event-type counts have no ids).
    rocksdb::WriteBatch batch;
    ASSERT_TRUE(batch.Put(store->handle(Family::event_types), "t", "x").ok());
    ASSERT_TRUE(store->write(batch).ok());
  }
  auto store = open_store(dir);
  store->claim_shard({"relay-0", 1});
  EXPECT_EQ(store->instance_id(), 1u);
}

TEST(ShardIdentityTest, AnIncompleteStoredIdentityIsReported) {
  test::TempDir dir;
  auto store = open_store(dir);
  rocksdb::WriteBatch batch;
  ASSERT_TRUE(batch.Put(store->handle(Family::meta), keys::kMetaShardName, "relay-0").ok());
  ASSERT_TRUE(store->write(batch).ok());
  const auto message = error_of([&] { (void)store->shard(); });
  EXPECT_TRUE(contains(message, "incomplete shard identity")) << message;
}

}  // namespace shard_identity_test
}  // namespace relay
