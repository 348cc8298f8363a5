#include "relay/delivery/schedule_window.h"

#include <algorithm>
#include <unordered_set>

#include "storage/queries.h"

namespace relay {

LoadResult read_schedule(Store& store, PayloadCache& payloads, LoadRequest request) {
  constexpr std::size_t kMaxScannedKeys = 65'536;
  LoadResult result;
  std::unordered_set<std::string> parked;  // stored subscription keys already reported
  std::optional<std::string> stopped_at;   // the first key not visited
  std::size_t scanned = 0;
  std::size_t taken = 0;
  bool full = false;
  const std::string lower = request.lower.encode();
  const std::string upper = request.upper.encode();
  store.scan(Family::schedule, ScanRange{lower, upper}, [&](std::string_view key, std::string_view sub) {
    if (full || ++scanned > kMaxScannedKeys) {
      stopped_at = std::string(key);
      return false;
    }
    if (request.only_subscription && sub != *request.only_subscription) return true;
    const auto [listed, unlisted] = request.lane_room.try_emplace(std::string(sub), request.lane_limit);
    if (unlisted && request.room_of_unlisted) listed->second = request.room_of_unlisted(sub);
    std::size_t& room = listed->second;
    if (room == 0) {
      if (parked.emplace(sub).second) {
        result.parked.emplace_back(keys::format_id(keys::kSubscriptionPrefix, sub), keys::ScheduleKey::decode(key));
      }
      return !request.only_subscription;  // a lane reload ends at its first key left on disk
    }
    auto scheduled = keys::ScheduleKey::decode(key);
    auto delivery = queries::delivery(store, scheduled.id);
    if (delivery && delivery->state == DeliveryState::pending && delivery->next_attempt_at == scheduled.due) {
      auto payload = payloads.get(store, delivery->event_id);
      result.items.emplace_back(std::move(scheduled), WindowItem{std::move(*delivery), std::move(payload), false});
      --room;
      // A global load stops at its room; the key that follows, if any, is where the next begins.
      if (++taken == request.room && !request.only_subscription) full = true;
    }
    return true;
  });
  result.reached_end = !stopped_at;
  result.next_cursor = stopped_at ? keys::ScheduleKey::decode(*stopped_at) : request.upper;
  if (stopped_at && request.only_subscription && parked.empty()) {
    // The lane's keys past the scanned range were not looked at: it stays parked there.
    result.parked.emplace_back(keys::format_id(keys::kSubscriptionPrefix, *request.only_subscription),
                               result.next_cursor);
  }
  return result;
}

void ScheduleWindow::removed(const keys::ScheduleKey& key) {
  if (loading_) removed_while_loading_.insert(key);
}

void ScheduleWindow::arrived(keys::ScheduleKey key, WindowItem item) {
  if (loading_) arrived_while_loading_.emplace_back(std::move(key), std::move(item));
}

void ScheduleWindow::lower_cursor(const keys::ScheduleKey& key) {
  cursor_ = std::min(cursor_, key);
  if (loading_) lowered_while_loading_ = std::min(lowered_while_loading_.value_or(key), key);
}

ScheduleWindow::Landed ScheduleWindow::land(LoadResult result) {
  loading_ = false;
  if (!result.reloaded_lane) cursor_ = std::max(cursor_, result.next_cursor);
  if (lowered_while_loading_) cursor_ = std::min(cursor_, *lowered_while_loading_);
  lowered_while_loading_.reset();
  Landed landed;
  for (auto& [key, item] : result.items) {
    if (removed_while_loading_.count(key) != 0) continue;
    if (key >= cursor_) break;
    landed.loaded.emplace_back(std::move(key), std::move(item));
  }
  for (auto& [subscription_id, key] : result.parked) {
    if (key < cursor_) landed.parked.emplace_back(std::move(subscription_id), std::move(key));
  }
  for (auto& [key, item] : arrived_while_loading_) {
    if (key < cursor_) landed.arrived.push_back(std::move(item));
  }
  arrived_while_loading_.clear();
  removed_while_loading_.clear();
  return landed;
}

}  // namespace relay
