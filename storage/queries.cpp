#include "storage/queries.h"

#include <algorithm>
#include <cstdlib>

#include "storage/keys.h"
#include "storage/records.h"

namespace relay::queries {

namespace {

// Records examined per page before answering with a cursor, so that a selective filter over a
// large store cannot hold a pool thread for long.
constexpr std::size_t kScanBudget = 20'000;

bool matches(const Delivery& d, const DeliveryFilter& f) {
  return (f.subscription_id.empty() || d.subscription_id == f.subscription_id) &&
         (f.event_id.empty() || d.event_id == f.event_id) && (!f.state || d.state == *f.state) &&
         (f.event_type.empty() || d.event_type == f.event_type) && (f.tenant.empty() || d.tenant == f.tenant);
}

}  // namespace

std::optional<Event> event(const Store& store, const std::string& id) {
  if (!keys::parse_id(id, keys::kEventPrefix)) return std::nullopt;
  auto bytes = store.get(Family::events, keys::event_key(id));
  return bytes ? records::decode_event(*bytes) : std::nullopt;
}

std::optional<Delivery> delivery(const Store& store, const std::string& id) {
  if (!keys::parse_id(id, keys::kDeliveryPrefix)) return std::nullopt;
  auto bytes = store.get(Family::deliveries, keys::delivery_key(id));
  return bytes ? records::decode_delivery(*bytes) : std::nullopt;
}

std::vector<Delivery> deliveries_of_event(const Store& store, const std::string& event_id) {
  std::vector<Delivery> out;
  if (!keys::parse_id(event_id, keys::kEventPrefix)) return out;
  const std::string prefix = keys::id_prefix(event_id);
  store.scan(Family::event_deliveries, ScanRange{prefix, keys::prefix_end(prefix)}, [&](std::string_view key, auto) {
    if (auto d = delivery(store, keys::decode_event_delivery_key(key))) out.push_back(std::move(*d));
    return true;
  });
  return out;
}

std::vector<Attempt> attempts(const Store& store, const std::string& delivery_id) {
  std::vector<Attempt> out;
  if (!keys::parse_id(delivery_id, keys::kDeliveryPrefix)) return out;
  const std::string prefix = keys::id_prefix(delivery_id);
  store.scan(Family::attempts, ScanRange{prefix, keys::prefix_end(prefix)}, [&](auto, std::string_view value) {
    if (auto a = records::decode_attempt(value)) out.push_back(std::move(*a));
    return true;
  });
  return out;
}

std::vector<Subscription> subscriptions(const Store& store) {
  std::vector<Subscription> out;
  store.scan(Family::subscriptions, ScanRange{}, [&](auto, std::string_view value) {
    if (auto s = records::decode_subscription(value)) out.push_back(std::move(*s));
    return true;
  });
  return out;
}

std::vector<EventTypeStats> event_types(const Store& store) {
  std::vector<EventTypeStats> out;
  store.scan(Family::event_types, ScanRange{}, [&](std::string_view type, std::string_view value) {
    if (auto s = records::decode_event_type_stats(type, value)) out.push_back(std::move(*s));
    return true;
  });
  return out;
}

Result<DeliveryPage> list_deliveries(const Store& store, const DeliveryFilter& filter) {
  DeliveryPage page;
  if (!filter.event_id.empty()) {
    // The event's own index is small: no budget needed. Same bounds and cursor as below.
    std::string cursor_key;
    if (!filter.cursor.empty()) {
      const auto raw = keys::parse_id(filter.cursor, keys::kDeliveryPrefix);
      if (!raw) return make_error(Errc::invalid_field, "cursor is not valid");
      cursor_key.assign(raw->data(), raw->size());
    }
    auto all = deliveries_of_event(store, filter.event_id);
    for (auto it = all.rbegin(); it != all.rend(); ++it) {
      const UnixMillis created = keys::id_time(it->id);
      if (created < filter.since || (filter.until > 0 && created >= filter.until)) continue;
      if (!cursor_key.empty() && keys::delivery_key(it->id) >= cursor_key) continue;
      if (!matches(*it, filter)) continue;
      if (page.items.size() == filter.limit) {
        page.next_cursor = page.items.back().id;
        break;
      }
      page.items.push_back(std::move(*it));
    }
    return page;
  }
  ScanRange range{keys::id_time_bound(filter.since), filter.until > 0 ? keys::id_time_bound(filter.until) : "", true};
  if (!filter.cursor.empty()) {
    const auto raw = keys::parse_id(filter.cursor, keys::kDeliveryPrefix);
    if (!raw) return make_error(Errc::invalid_field, "cursor is not valid");
    const std::string cursor_key(raw->data(), raw->size());
    if (range.upper.empty() || cursor_key < range.upper) range.upper = cursor_key;
  }
  std::size_t visited = 0;
  std::string last_key;
  store.scan(Family::deliveries, range, [&](std::string_view key, std::string_view value) {
    last_key = key;
    if (auto d = records::decode_delivery(value); d && matches(*d, filter)) page.items.push_back(std::move(*d));
    return page.items.size() < filter.limit && ++visited < kScanBudget;
  });
  if (page.items.size() >= filter.limit || visited >= kScanBudget) {
    page.next_cursor = keys::format_id(keys::kDeliveryPrefix, last_key);
  }
  return page;
}

Result<DeliveryPage> list_dead(const Store& store, const DeliveryFilter& filter) {
  DeliveryPage page;
  ScanRange range{keys::time_bound(filter.since), filter.until > 0 ? keys::time_bound(filter.until) : "", true};
  if (!filter.cursor.empty()) {
    // A DLQ cursor is "<dead_at ms>.<delivery id>": the key of the last item returned.
    const auto dot = filter.cursor.find('.');
    const std::string time_part = filter.cursor.substr(0, dot);
    const std::string id_part = dot == std::string::npos ? "" : filter.cursor.substr(dot + 1);
    char* end = nullptr;
    const long long dead_at = std::strtoll(time_part.c_str(), &end, 10);
    if (time_part.empty() || *end != '\0' || dead_at < 0 || !keys::parse_id(id_part, keys::kDeliveryPrefix)) {
      return make_error(Errc::invalid_field, "cursor is not valid");
    }
    const std::string cursor_key = keys::dead_letter_key(dead_at, id_part);
    if (range.upper.empty() || cursor_key < range.upper) range.upper = cursor_key;
  }
  std::size_t visited = 0;
  std::string last_key;
  store.scan(Family::dead_letters, range, [&](std::string_view key, auto) {
    last_key = key;
    auto d = delivery(store, keys::decode_dead_letter_key(key).id);
    if (d && matches(*d, filter)) page.items.push_back(std::move(*d));
    return page.items.size() < filter.limit && ++visited < kScanBudget;
  });
  if (page.items.size() >= filter.limit || visited >= kScanBudget) {
    const auto last = keys::decode_dead_letter_key(last_key);
    page.next_cursor = std::to_string(last.time) + "." + last.id;
  }
  return page;
}

std::uint64_t count_keys(const Store& store, Family family) {
  std::uint64_t n = 0;
  store.scan(family, ScanRange{}, [&](auto, auto) {
    ++n;
    return true;
  });
  return n;
}

namespace {

// Stored subscription keys (16 bytes) to ids, formatted once per subscription rather than per key.
template <typename Value>
std::unordered_map<std::string, Value> by_subscription_id(std::unordered_map<std::string, Value> by_stored_key) {
  std::unordered_map<std::string, Value> out;
  for (auto& [stored, value] : by_stored_key) out.emplace(keys::format_id(keys::kSubscriptionPrefix, stored), value);
  return out;
}

}  // namespace

std::unordered_map<std::string, std::uint64_t> count_schedule_by_subscription(const Store& store) {
  std::unordered_map<std::string, std::uint64_t> counts;
  store.scan(Family::schedule, ScanRange{}, [&](auto, std::string_view sub) {
    ++counts[std::string(sub)];
    return true;
  });
  return by_subscription_id(std::move(counts));
}

DueSchedule due_by_subscription(const Store& store, UnixMillis now, std::size_t budget) {
  DueSchedule result;
  std::unordered_map<std::string, DueSchedule::Due> due;
  std::size_t visited = 0;
  store.scan(Family::schedule, ScanRange{"", keys::time_bound(now + 1)}, [&](std::string_view key, std::string_view sub) {
    if (++visited > budget) return false;
    auto [it, first] = due.try_emplace(std::string(sub));
    if (first) it->second.oldest = keys::decode_schedule_key(key).time;  // keys are in due order
    ++it->second.count;
    return true;
  });
  result.by_subscription = by_subscription_id(std::move(due));
  return result;
}

}  // namespace relay::queries
