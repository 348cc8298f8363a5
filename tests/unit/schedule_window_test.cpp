// ScheduleWindow: the cursor and the reconciliation of a load with what changed while it ran,
// which keep "every schedule key below the cursor is in memory, except a parked lane's from its
// parked key on".
#include "relay/delivery/schedule_window.h"

#include <gtest/gtest.h>

namespace relay {
namespace schedule_window_test {

using keys::ScheduleKey;

WindowItem item(const std::string& id, UnixMillis due) {
  WindowItem i;
  i.delivery.id = id;
  i.delivery.subscription_id = "sub_a";
  i.delivery.next_attempt_at = due;
  return i;
}

LoadResult loaded(std::vector<std::pair<std::string, UnixMillis>> keys, ScheduleKey next_cursor) {
  LoadResult result;
  for (const auto& [id, due] : keys) result.items.emplace_back(ScheduleKey{due, id}, item(id, due));
  result.next_cursor = std::move(next_cursor);
  return result;
}

std::vector<std::string> ids(const ScheduleWindow::Landed& landed) {
  std::vector<std::string> out;
  for (const auto& [key, i] : landed.loaded) out.push_back(key.id);
  return out;
}

TEST(ScheduleKey, OrdersAsItsEncodingAndRoundTrips) {
  const ScheduleKey a{1'000, "dlv_0193000000000000000000000000000a"};
  const ScheduleKey b{1'000, "dlv_0193000000000000000000000000000b"};
  const ScheduleKey later{1'001, "dlv_01930000000000000000000000000000"};
  const ScheduleKey bound{1'001, ""};
  EXPECT_LT(a, b);
  EXPECT_LT(a.encode(), b.encode());
  EXPECT_LT(b, bound);
  EXPECT_LT(b.encode(), bound.encode());
  EXPECT_LT(bound, later);
  EXPECT_LT(bound.encode(), later.encode());
  EXPECT_LT(ScheduleKey{}, a) << "the first cursor is below every key";
  EXPECT_EQ(ScheduleKey::decode(a.encode()), a);
}

TEST(ScheduleWindow, ALoadMovesTheCursorAndALaneReloadDoesNot) {
  ScheduleWindow window;
  EXPECT_FALSE(window.covers({0, "dlv_1"}));
  window.begin_load();
  auto landed = window.land(loaded({{"dlv_1", 10}, {"dlv_2", 20}}, ScheduleKey{30, ""}));
  EXPECT_EQ(ids(landed), (std::vector<std::string>{"dlv_1", "dlv_2"}));
  EXPECT_EQ(window.cursor(), (ScheduleKey{30, ""}));
  EXPECT_TRUE(window.covers({29, "dlv_9"}));
  EXPECT_FALSE(window.covers({30, ""}));

  window.begin_load();
  auto reload = loaded({{"dlv_3", 25}}, ScheduleKey{90, ""});
  reload.reloaded_lane = "sub_a";
  landed = window.land(std::move(reload));
  EXPECT_EQ(ids(landed), (std::vector<std::string>{"dlv_3"}));
  EXPECT_EQ(window.cursor(), (ScheduleKey{30, ""}));
}

TEST(ScheduleWindow, KeysThatWentAwayWhileALoadRanAreNotLoadedAgain) {
  ScheduleWindow window;
  window.removed({10, "dlv_1"});  // not loading: nothing to remember
  window.begin_load();
  window.removed({20, "dlv_2"});
  const auto landed = window.land(loaded({{"dlv_1", 10}, {"dlv_2", 20}, {"dlv_3", 30}}, ScheduleKey{40, ""}));
  EXPECT_EQ(ids(landed), (std::vector<std::string>{"dlv_1", "dlv_3"}));
}

TEST(ScheduleWindow, DeliveriesThatArrivedAboveTheOldCursorComeBackIfTheLoadPassedThem) {
  ScheduleWindow window;
  window.arrived({5, "dlv_0"}, item("dlv_0", 5));  // not loading: the next load reads it
  window.begin_load();
  window.arrived({15, "dlv_1"}, item("dlv_1", 15));  // the load's snapshot may not have it
  window.arrived({50, "dlv_2"}, item("dlv_2", 50));  // above the new cursor: a later load reads it
  const auto landed = window.land(loaded({}, ScheduleKey{40, ""}));
  ASSERT_EQ(landed.arrived.size(), 1u);
  EXPECT_EQ(landed.arrived[0].delivery.id, "dlv_1");
  window.begin_load();
  EXPECT_TRUE(window.land(loaded({}, ScheduleKey{40, ""})).arrived.empty()) << "reported once";
}

TEST(ScheduleWindow, ACursorLoweredWhileALoadRanStaysLoweredAndWhatTheLoadReadAboveItStaysOnDisk) {
  ScheduleWindow window;
  window.begin_load();
  window.land(loaded({}, ScheduleKey{10, ""}));
  window.begin_load();
  window.lower_cursor({5, "dlv_x"});  // memory was full when dlv_x arrived
  const auto landed = window.land(loaded({{"dlv_1", 12}}, ScheduleKey{40, ""}));
  EXPECT_EQ(window.cursor(), (ScheduleKey{5, "dlv_x"}));
  EXPECT_TRUE(landed.loaded.empty()) << "above the cursor: the next load reads it again";
}

TEST(ScheduleWindow, OnlyParkedKeysBelowTheCursorPark) {
  ScheduleWindow window;
  window.begin_load();
  auto result = loaded({}, ScheduleKey{40, ""});
  result.parked.emplace_back("sub_a", ScheduleKey{12, "dlv_1"});
  result.parked.emplace_back("sub_b", ScheduleKey{40, "dlv_2"});
  const auto landed = window.land(std::move(result));
  ASSERT_EQ(landed.parked.size(), 1u);
  EXPECT_EQ(landed.parked[0].first, "sub_a");
}

}  // namespace schedule_window_test
}  // namespace relay
