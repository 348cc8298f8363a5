#include "relay/subscriptions/subscription_registry.h"

#include <algorithm>
#include <mutex>
#include <nlohmann/json.hpp>

#include "relay/model/event_type.h"
#include "relay/routing/payload_filter.h"

namespace relay {

namespace {

// Where a pattern goes in a bucket: "*", a prefix ("meeting." for "meeting.*") or an exact type.
enum class PatternKind { any, prefix, exact };

PatternKind kind_of(std::string_view pattern) {
  if (pattern == "*") return PatternKind::any;
  if (pattern.size() >= 2 && pattern.ends_with(".*")) return PatternKind::prefix;
  return PatternKind::exact;
}

template <typename Entry>
bool by_id(const Entry* a, const Entry* b) {
  return a->id < b->id;
}

template <typename Entry>
void insert_sorted(std::vector<Entry*>& list, Entry* entry) {
  list.insert(std::lower_bound(list.begin(), list.end(), entry, by_id<Entry>), entry);
}

template <typename Entry>
void remove_from(std::vector<Entry*>& list, Entry* entry) {
  std::erase(list, entry);
}

// A list of a map keyed by type or prefix: the entry leaves it, and an emptied list leaves the map.
template <typename Map, typename Entry>
void remove_from(Map& map, std::string_view key, Entry* entry) {
  const auto it = map.find(key);
  if (it == map.end()) return;
  remove_from(it->second, entry);
  if (it->second.empty()) map.erase(it);
}

// The subscription's distinct patterns: a subscription sits once in each list it belongs to.
std::vector<std::string_view> distinct_patterns(const Subscription& sub) {
  std::vector<std::string_view> patterns(sub.event_types.begin(), sub.event_types.end());
  std::sort(patterns.begin(), patterns.end());
  patterns.erase(std::unique(patterns.begin(), patterns.end()), patterns.end());
  return patterns;
}

}  // namespace

SubscriptionRegistry::SubscriptionRegistry(std::vector<Subscription> initial) {
  for (const auto& sub : initial) upsert(sub);
}

SubscriptionRegistry::~SubscriptionRegistry() = default;

std::shared_ptr<const Subscription> SubscriptionRegistry::find(std::string_view id) const {
  std::shared_lock lock(mutex_);
  const auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : it->second->subscription;
}

std::size_t SubscriptionRegistry::size() const {
  std::shared_lock lock(mutex_);
  return by_id_.size();
}

void SubscriptionRegistry::for_each(const std::function<void(const std::shared_ptr<const Subscription>&)>& visit) const {
  std::shared_lock lock(mutex_);
  for (const auto& [id, entry] : by_id_) visit(entry->subscription);
}

std::vector<std::shared_ptr<const Subscription>> SubscriptionRegistry::matching(const RoutedEvent& event) const {
  // Candidates by tenant and type, from at most two buckets; each list is in id order, so with
  // one list contributing (the common case) no sort is needed.
  std::vector<const Entry*> candidates;
  std::size_t lists = 0;
  const auto take = [&](const std::vector<Entry*>& list) {
    if (list.empty()) return;
    ++lists;
    candidates.insert(candidates.end(), list.begin(), list.end());
  };
  // relay's own operational events reach only patterns that name them (model/event_type.h):
  // never the `*` lists.
  const bool reserved = is_reserved_event_type(event.type);
  std::shared_lock lock(mutex_);
  const auto visit = [&](const Bucket& bucket) {
    if (const auto it = bucket.exact.find(event.type); it != bucket.exact.end()) take(it->second);
    if (!bucket.prefixes.empty()) {
      // "meeting.*" matches "meeting.bot.joined" through its prefixes "meeting." and
      // "meeting.bot."; a prefix must leave at least one character of the type after it.
      for (std::size_t dot = event.type.find('.'); dot != std::string_view::npos && dot + 1 < event.type.size();
           dot = event.type.find('.', dot + 1)) {
        if (const auto it = bucket.prefixes.find(event.type.substr(0, dot + 1)); it != bucket.prefixes.end()) {
          take(it->second);
        }
      }
    }
    if (!reserved) take(bucket.any);
  };
  if (!event.tenant.empty()) {
    if (const auto it = tenants_.find(event.tenant); it != tenants_.end()) visit(it->second);
  }
  if (const auto it = tenants_.find(std::string_view{}); it != tenants_.end()) visit(it->second);
  if (lists > 1) {
    std::sort(candidates.begin(), candidates.end(), by_id<const Entry>);
    candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
  }

  std::vector<std::shared_ptr<const Subscription>> out;
  FilterSubject subject(event.type, event.payload);
  for (const Entry* entry : candidates) {
    if (!entry->subscription->enabled || entry->unmatchable) continue;
    if (entry->filter && !entry->filter->matches(subject)) continue;
    out.push_back(entry->subscription);
  }
  return out;
}

SubscriptionRegistry::Page SubscriptionRegistry::page(std::string_view tenant, std::string_view after,
                                                      std::size_t limit) const {
  Page page;
  std::shared_lock lock(mutex_);
  const std::map<std::string_view, Entry*>* members = &ordered_;
  if (!tenant.empty()) {
    const auto it = tenants_.find(tenant);
    if (it == tenants_.end()) return page;
    members = &it->second.members;
  }
  for (auto it = after.empty() ? members->begin() : members->upper_bound(after); it != members->end(); ++it) {
    if (page.items.size() == limit) {
      page.more = true;
      break;
    }
    page.items.push_back(it->second->subscription);
  }
  return page;
}

void SubscriptionRegistry::upsert(const Subscription& subscription) {
  // Compiled before taking the lock: readers never wait for a compile.
  std::shared_ptr<const PayloadFilter> filter;
  bool unmatchable = false;
  if (!subscription.filter.empty()) {
    const auto spec = nlohmann::json::parse(subscription.filter, nullptr, /*allow_exceptions=*/false);
    auto compiled = PayloadFilter::compile(spec);
    if (compiled) {
      filter = std::move(*compiled);
    } else {
      unmatchable = true;
    }
  }
  auto stored = std::make_shared<const Subscription>(subscription);

  std::unique_lock lock(mutex_);
  auto [it, inserted] = by_id_.try_emplace(subscription.id);
  if (inserted) {
    it->second = std::make_unique<Entry>();
    it->second->id = subscription.id;
    ordered_.emplace(it->second->id, it->second.get());
  } else {
    unindex(*it->second);
  }
  Entry& entry = *it->second;
  entry.subscription = std::move(stored);
  entry.filter = std::move(filter);
  entry.unmatchable = unmatchable;
  index(entry);
}

void SubscriptionRegistry::erase(std::string_view id) {
  std::unique_lock lock(mutex_);
  const auto it = by_id_.find(id);
  if (it == by_id_.end()) return;
  unindex(*it->second);
  ordered_.erase(it->second->id);
  by_id_.erase(it);
}

void SubscriptionRegistry::index(Entry& entry) {
  const Subscription& sub = *entry.subscription;
  Bucket& bucket = tenants_[sub.tenant];
  bucket.members.emplace(entry.id, &entry);
  for (const std::string_view pattern : distinct_patterns(sub)) {
    switch (kind_of(pattern)) {
      case PatternKind::any:
        insert_sorted(bucket.any, &entry);
        break;
      case PatternKind::prefix:
        insert_sorted(bucket.prefixes[std::string(pattern.substr(0, pattern.size() - 1))], &entry);
        break;
      case PatternKind::exact:
        insert_sorted(bucket.exact[std::string(pattern)], &entry);
        break;
    }
  }
}

void SubscriptionRegistry::unindex(Entry& entry) {
  const Subscription& sub = *entry.subscription;
  const auto found = tenants_.find(sub.tenant);
  if (found == tenants_.end()) return;
  Bucket& bucket = found->second;
  for (const std::string_view pattern : distinct_patterns(sub)) {
    switch (kind_of(pattern)) {
      case PatternKind::any:
        remove_from(bucket.any, &entry);
        break;
      case PatternKind::prefix:
        remove_from(bucket.prefixes, pattern.substr(0, pattern.size() - 1), &entry);
        break;
      case PatternKind::exact:
        remove_from(bucket.exact, pattern, &entry);
        break;
    }
  }
  bucket.members.erase(entry.id);
  // A tenant whose last subscription left takes no memory.
  if (bucket.members.empty()) tenants_.erase(found);
}

}  // namespace relay
