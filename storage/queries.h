#pragma once
// Read-side queries for the API. They scan RocksDB and so run on the blocking pool, never on
// the event loop. Every scan is bounded by a key range and a budget of records visited.

#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "relay/core/result.h"
#include "relay/model/delivery.h"
#include "relay/model/event.h"
#include "relay/model/event_type_stats.h"
#include "relay/model/subscription.h"
#include "storage/store.h"

namespace relay::queries {

std::optional<Event> event(const Store& store, const std::string& id);
std::optional<Delivery> delivery(const Store& store, const std::string& id);
std::vector<Delivery> deliveries_of_event(const Store& store, const std::string& event_id);
std::vector<Attempt> attempts(const Store& store, const std::string& delivery_id);
std::vector<Subscription> subscriptions(const Store& store);
std::vector<EventTypeStats> event_types(const Store& store);

struct DeliveryFilter {
  std::string subscription_id;
  std::string event_id;
  std::optional<DeliveryState> state;
  std::string event_type;
  std::string tenant;    // the event's tenant, exactly
  UnixMillis since = 0;  // creation time (for the DLQ: time of death), inclusive
  UnixMillis until = 0;  // exclusive; 0 = no bound
  std::size_t limit = 100;
  std::string cursor;    // from a previous page's next_cursor
};

struct DeliveryPage {
  std::vector<Delivery> items;
  std::string next_cursor;  // empty on the last page
};

// Newest first. A page may hold fewer than `limit` items and still have a next_cursor when
// the scan budget ran out before the range did.
Result<DeliveryPage> list_deliveries(const Store& store, const DeliveryFilter& filter);
// Dead deliveries, most recently dead first.
Result<DeliveryPage> list_dead(const Store& store, const DeliveryFilter& filter);

// Number of keys in a family (startup gauges); bounded only by the family's size.
std::uint64_t count_keys(const Store& store, Family family);

// The `schedule` family's keys counted by the subscription id their values name (startup
// gauges); bounded only by the family's size.
std::unordered_map<std::string, std::uint64_t> count_schedule_by_subscription(const Store& store);

// The schedule keys due by `now`, by subscription id, with each one's oldest due time: the
// depth gauges' periodic pass. Visits at most `budget` keys (the oldest ones).
struct DueSchedule {
  struct Due {
    std::uint64_t count = 0;
    UnixMillis oldest = 0;
  };
  std::unordered_map<std::string, Due> by_subscription;
};
DueSchedule due_by_subscription(const Store& store, UnixMillis now, std::size_t budget);

}  // namespace relay::queries
