#include "storage/keys.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace relay {
namespace keys_test {

TEST(KeysTest, IdsRoundTripAndSortByCreationTime) {
  ManualClock clock(1'700'000'000'000);
  keys::IdGenerator ids(clock, 0xdeadbeef);
  std::vector<std::string> made;
  for (int i = 0; i < 100; ++i) {
    made.push_back(ids.next(keys::kEventPrefix));
    clock.advance(i % 3);  // several ids within one millisecond too
  }
  EXPECT_TRUE(std::is_sorted(made.begin(), made.end()));
  EXPECT_EQ(std::adjacent_find(made.begin(), made.end()), made.end());
  for (const auto& id : made) {
    ASSERT_EQ(id.size(), 4u + 32u);
    const auto raw = keys::parse_id(id, keys::kEventPrefix);
    ASSERT_TRUE(raw.has_value());
    EXPECT_EQ(keys::format_id(keys::kEventPrefix, std::string_view(raw->data(), raw->size())), id);
  }
  EXPECT_EQ(keys::id_time(made.front()), 1'700'000'000'000);
  EXPECT_EQ(keys::id_instance(made.front(), keys::kEventPrefix), 0xdeadbeefu);
  EXPECT_FALSE(keys::id_instance(made.front(), keys::kDeliveryPrefix));
  EXPECT_FALSE(keys::id_instance("evt_garbage", keys::kEventPrefix));
}

TEST(KeysTest, ParseRejectsWrongPrefixLengthAndDigits) {
  const std::string good = "evt_" + std::string(32, 'a');
  EXPECT_TRUE(keys::parse_id(good, keys::kEventPrefix));
  EXPECT_FALSE(keys::parse_id(good, keys::kDeliveryPrefix));
  EXPECT_FALSE(keys::parse_id("evt_" + std::string(31, 'a'), keys::kEventPrefix));
  EXPECT_FALSE(keys::parse_id("evt_" + std::string(31, 'a') + "G", keys::kEventPrefix));
  EXPECT_FALSE(keys::parse_id("evt_" + std::string(32, 'A'), keys::kEventPrefix));  // lowercase only
  EXPECT_FALSE(keys::parse_id("", keys::kEventPrefix));
  EXPECT_EQ(keys::id_time("garbage"), 0);
}

TEST(KeysTest, ScheduleKeysOrderByDueTimeThenId) {
  ManualClock clock(1'000);
  keys::IdGenerator ids(clock, 1);
  const std::string early = ids.next(keys::kDeliveryPrefix);
  const std::string late = ids.next(keys::kDeliveryPrefix);
  // Big-endian times sort numerically even across byte boundaries.
  EXPECT_LT(keys::schedule_key(255, late), keys::schedule_key(256, early));
  EXPECT_LT(keys::schedule_key(1'000, early), keys::schedule_key(1'000, late));
  EXPECT_LT(keys::schedule_key(1'000, late), keys::time_bound(1'001));
  const auto decoded = keys::decode_schedule_key(keys::schedule_key(123'456'789'012, late));
  EXPECT_EQ(decoded.time, 123'456'789'012);
  EXPECT_EQ(decoded.id, late);
}

TEST(KeysTest, CompletedAndEventDeliveryKeysDecode) {
  ManualClock clock(5'000);
  keys::IdGenerator ids(clock, 7);
  const std::string event = ids.next(keys::kEventPrefix);
  const std::string delivery = ids.next(keys::kDeliveryPrefix);
  const auto done = keys::decode_completed_key(keys::completed_key(42, keys::CompletedKind::event, event));
  EXPECT_EQ(done.time, 42);
  EXPECT_EQ(done.kind, keys::CompletedKind::event);
  EXPECT_EQ(done.id, event);
  const std::string link = keys::event_delivery_key(event, delivery);
  EXPECT_EQ(link.substr(0, keys::kIdBytes), keys::id_prefix(event));
  EXPECT_EQ(keys::decode_event_delivery_key(link), delivery);
  EXPECT_LT(link, keys::prefix_end(keys::id_prefix(event)));
}

TEST(KeysTest, PrefixEndCarriesOverFullBytes) {
  EXPECT_EQ(keys::prefix_end(std::string("a\xff", 2)), "b");
  EXPECT_EQ(keys::prefix_end(std::string("\xff\xff", 2)), "");
  EXPECT_EQ(keys::prefix_end("ab"), "ac");
}

TEST(KeysTest, U64RoundTrip) {
  std::string out;
  keys::append_u64(out, 0x0102030405060708ull);
  ASSERT_EQ(out.size(), 8u);
  EXPECT_EQ(out[0], '\x01');
  EXPECT_EQ(keys::read_u64(out), 0x0102030405060708ull);
}

}  // namespace keys_test
}  // namespace relay
