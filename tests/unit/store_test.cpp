// Store: opening a real RocksDB in a temporary directory, point reads, bounded scans, and what
// survives a close and reopen.

#include "storage/store.h"

#include <gtest/gtest.h>

#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/support/temp_dir.h"

namespace relay {
namespace store_test {

using KV = std::pair<std::string, std::string>;

std::unique_ptr<Store> open_store(const test::TempDir& dir, bool sync = true) {
  return Store::open(StoreOptions{dir.str() + "/db", sync, 8 << 20});
}

void put(Store& store, Family family, const std::string& key, const std::string& value) {
  rocksdb::WriteBatch batch;
  ASSERT_TRUE(batch.Put(store.handle(family), key, value).ok());
  ASSERT_TRUE(store.write(batch).ok());
}

std::vector<KV> scan_all(const Store& store, Family family, const ScanRange& range) {
  std::vector<KV> out;
  store.scan(family, range, [&](std::string_view key, std::string_view value) {
    out.emplace_back(std::string(key), std::string(value));
    return true;
  });
  return out;
}

TEST(StoreTest, OpenCreatesEveryFamilyAndPointReadsWork) {
  test::TempDir dir;
  auto store = open_store(dir);
  for (std::size_t i = 0; i < static_cast<std::size_t>(Family::count_); ++i) {
    ASSERT_NE(store->handle(static_cast<Family>(i)), nullptr) << "family " << i;
  }
  EXPECT_TRUE(store->sync_writes());
  EXPECT_FALSE(store->get(Family::events, "absent").has_value());
  put(*store, Family::events, "k", "v");
  EXPECT_EQ(store->get(Family::events, "k"), "v");
  // Families are separate key spaces.
  EXPECT_FALSE(store->get(Family::deliveries, "k").has_value());
}

TEST(StoreTest, DataAndInstanceIdSurviveCloseAndReopen) {
  test::TempDir dir;
  std::uint32_t instance = 0;
  {
    auto store = open_store(dir);
    instance = store->instance_id();
    put(*store, Family::subscriptions, "sub", "record");
    put(*store, Family::schedule, std::string("\x00\x01", 2), "due");
  }
  {
    auto store = open_store(dir, /*sync=*/false);
    EXPECT_EQ(store->instance_id(), instance);
    EXPECT_FALSE(store->sync_writes());
    EXPECT_EQ(store->get(Family::subscriptions, "sub"), "record");
    EXPECT_EQ(store->get(Family::schedule, std::string("\x00\x01", 2)), "due");
  }
  // A third open still agrees: the id is stored, not recomputed.
  EXPECT_EQ(open_store(dir)->instance_id(), instance);
}

TEST(StoreTest, DifferentDatabasesGetDifferentInstanceIds) {
  // 32 random bits: two equal ids in a row would mean the id is not random at all.
  test::TempDir a;
  test::TempDir b;
  test::TempDir c;
  const auto ia = open_store(a)->instance_id();
  const auto ib = open_store(b)->instance_id();
  const auto ic = open_store(c)->instance_id();
  EXPECT_FALSE(ia == ib && ib == ic);
}

TEST(StoreTest, ScanVisitsTheHalfOpenRangeInBothDirections) {
  test::TempDir dir;
  auto store = open_store(dir);
  for (const char* key : {"a", "b", "c", "d", "e"}) put(*store, Family::events, key, std::string("v") + key);

  const auto forward = scan_all(*store, Family::events, ScanRange{"b", "e", false});
  EXPECT_EQ(forward, (std::vector<KV>{{"b", "vb"}, {"c", "vc"}, {"d", "vd"}}));

  const auto backward = scan_all(*store, Family::events, ScanRange{"b", "e", true});
  EXPECT_EQ(backward, (std::vector<KV>{{"d", "vd"}, {"c", "vc"}, {"b", "vb"}}));

  // An empty upper bound is unbounded; an empty lower bound starts at the first key.
  EXPECT_EQ(scan_all(*store, Family::events, ScanRange{"d", "", false}).size(), 2u);
  EXPECT_EQ(scan_all(*store, Family::events, ScanRange{}).size(), 5u);
  EXPECT_EQ(scan_all(*store, Family::events, ScanRange{"", "", true}).front().first, "e");
  EXPECT_TRUE(scan_all(*store, Family::events, ScanRange{"x", "z", false}).empty());
  EXPECT_TRUE(scan_all(*store, Family::deliveries, ScanRange{}).empty());
}

TEST(StoreTest, ScanStopsWhenTheVisitorSaysSo) {
  test::TempDir dir;
  auto store = open_store(dir);
  for (const char* key : {"a", "b", "c"}) put(*store, Family::attempts, key, "");
  std::vector<std::string> seen;
  store->scan(Family::attempts, ScanRange{}, [&](std::string_view key, std::string_view) {
    seen.emplace_back(key);
    return seen.size() < 2;
  });
  EXPECT_EQ(seen, (std::vector<std::string>{"a", "b"}));
}

TEST(StoreTest, ScanDoesNotSeeDeletedKeys) {
  test::TempDir dir;
  auto store = open_store(dir);
  for (const char* key : {"a", "b", "c"}) put(*store, Family::schedule, key, "");
  rocksdb::WriteBatch batch;
  ASSERT_TRUE(batch.Delete(store->handle(Family::schedule), "b").ok());
  ASSERT_TRUE(store->write(batch).ok());
  EXPECT_EQ(scan_all(*store, Family::schedule, ScanRange{}), (std::vector<KV>{{"a", ""}, {"c", ""}}));
}

TEST(StoreTest, ReportsWalAndSstBytes) {
  test::TempDir dir;
  auto store = open_store(dir);
  put(*store, Family::events, "k", std::string(4096, 'x'));
  EXPECT_GT(store->wal_bytes(), 0u);
  ASSERT_TRUE(store->db().Flush(rocksdb::FlushOptions(), store->handle(Family::events)).ok());
  EXPECT_GT(store->sst_bytes(), 0u);
}

TEST(StoreTest, OpenFailsWithAClearMessageWhenThePathIsNotADirectory) {
  test::TempDir dir;
  const std::string file = dir.str() + "/plain-file";
  std::ofstream(file) << "not a database";
  try {
    Store::open(StoreOptions{file, true, 8 << 20});
    FAIL() << "opened a database on a plain file";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
  }
}

}  // namespace store_test
}  // namespace relay
