// The event_types merge operator on a real RocksDB: merged counts add up and keep the latest
// time whether RocksDB folds them on read, at a flush (partial merge) or in a compaction (full
// merge); they survive a reopen; and a damaged stored value counts as zero instead of failing
// reads or compactions.

#include "storage/event_type_merge.h"

#include <gtest/gtest.h>

#include "storage/records.h"
#include "storage/store.h"
#include "tests/support/temp_dir.h"

namespace relay {
namespace event_type_merge_test {

constexpr UnixMillis kT = 1'760'000'000'000;

class EventTypeMergeTest : public ::testing::Test {
 protected:
  void SetUp() override { open(); }
  void open() { store_ = Store::open(StoreOptions{dir_.str() + "/db", false, 8 << 20}); }

  void write(const std::function<void(rocksdb::WriteBatch&, rocksdb::ColumnFamilyHandle*)>& fill) {
    rocksdb::WriteBatch batch;
    fill(batch, store_->handle(Family::event_types));
    ASSERT_TRUE(store_->write(batch).ok());
  }
  void count(const std::string& type, std::uint64_t n, UnixMillis seen) {
    write([&](rocksdb::WriteBatch& batch, auto* family) {
      ASSERT_TRUE(batch.Merge(family, type, records::encode_record(EventTypeStats{"", n, seen})).ok());
    });
  }
  EventTypeStats read(const std::string& type) {
    std::string value;
    const rocksdb::Status status =
        store_->db().Get(rocksdb::ReadOptions(), store_->handle(Family::event_types), type, &value);
    EXPECT_TRUE(status.ok()) << status.ToString();
    return records::decode_event_type_stats(type, value).value_or(EventTypeStats{"undecodable", 0, 0});
  }
  void flush() { ASSERT_TRUE(store_->db().Flush(rocksdb::FlushOptions(), store_->handle(Family::event_types)).ok()); }
  void compact() {
    ASSERT_TRUE(store_->db()
                    .CompactRange(rocksdb::CompactRangeOptions(), store_->handle(Family::event_types), nullptr, nullptr)
                    .ok());
  }

  test::TempDir dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(EventTypeMergeTest, CountsAddUpAndTheLatestTimeWins) {
  count("a", 1, kT);
  write([&](rocksdb::WriteBatch& batch, auto* family) {
    for (UnixMillis seen : {kT + 30, kT + 10}) {
      ASSERT_TRUE(batch.Merge(family, "a", records::encode_record(EventTypeStats{"", 1, seen})).ok());
    }
  });
  count("b", 1, kT);
  const EventTypeStats a = read("a");
  EXPECT_EQ(a.type, "a");
  EXPECT_EQ(a.count, 3u);
  EXPECT_EQ(a.last_seen, kT + 30);
  EXPECT_EQ(read("b").count, 1u);
}

TEST_F(EventTypeMergeTest, FoldedCountsAreTheSameAfterFlushCompactionAndReopen) {
  for (int i = 0; i < 5; ++i) count("a", 1, kT + i);
  flush();  // operands without a base value: folded into one operand
  EXPECT_EQ(read("a").count, 5u);
  for (int i = 0; i < 5; ++i) count("a", 2, kT - i);
  compact();  // down to the last level: folded into a value
  EXPECT_EQ(read("a").count, 15u);
  count("a", 1, kT + 100);
  store_.reset();
  open();
  const EventTypeStats a = read("a");
  EXPECT_EQ(a.count, 16u);
  EXPECT_EQ(a.last_seen, kT + 100);
}

TEST_F(EventTypeMergeTest, ADamagedValueCountsAsZeroAndFailsNothing) {
  write([&](rocksdb::WriteBatch& batch, auto* family) { ASSERT_TRUE(batch.Put(family, "a", "garbage").ok()); });
  count("a", 1, kT);
  write([&](rocksdb::WriteBatch& batch, auto* family) { ASSERT_TRUE(batch.Merge(family, "a", "\x04\xff").ok()); });
  count("a", 1, kT + 1);
  EXPECT_EQ(read("a").count, 2u);
  flush();
  compact();
  const EventTypeStats a = read("a");
  EXPECT_EQ(a.count, 2u);
  EXPECT_EQ(a.last_seen, kT + 1);
  // The database still takes writes: no background error was raised.
  count("a", 1, kT + 2);
  EXPECT_EQ(read("a").count, 3u);
}

}  // namespace event_type_merge_test
}  // namespace relay
