#include "relay/subscriptions/subscription_registry.h"

#include <algorithm>

#include "relay/model/event_type.h"

namespace relay {

std::shared_ptr<const Subscription> SubscriptionSet::find(const std::string& id) const {
  const auto it = subscriptions_.find(id);
  return it == subscriptions_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<const Subscription>> SubscriptionSet::matching(std::string_view type) const {
  std::vector<std::shared_ptr<const Subscription>> out;
  for (const auto& [id, sub] : subscriptions_) {
    if (!sub->enabled) continue;
    if (std::any_of(sub->event_types.begin(), sub->event_types.end(),
                    [&](const std::string& pattern) { return pattern_matches(pattern, type); })) {
      out.push_back(sub);
    }
  }
  // Deterministic order (by id, i.e. creation time) so fan-out order is reproducible.
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a->id < b->id; });
  return out;
}

SubscriptionRegistry::SubscriptionRegistry(std::vector<Subscription> initial) {
  SubscriptionSet::Map map;
  for (auto& sub : initial) {
    std::string id = sub.id;
    map.emplace(std::move(id), std::make_shared<const Subscription>(std::move(sub)));
  }
  current_ = std::make_shared<const SubscriptionSet>(std::move(map));
}

std::shared_ptr<const SubscriptionSet> SubscriptionRegistry::snapshot() const {
  std::lock_guard lock(mutex_);
  return current_;
}

void SubscriptionRegistry::upsert(const Subscription& subscription) {
  std::lock_guard lock(mutex_);
  SubscriptionSet::Map map = current_->all();
  map[subscription.id] = std::make_shared<const Subscription>(subscription);
  current_ = std::make_shared<const SubscriptionSet>(std::move(map));
}

void SubscriptionRegistry::erase(const std::string& id) {
  std::lock_guard lock(mutex_);
  SubscriptionSet::Map map = current_->all();
  map.erase(id);
  current_ = std::make_shared<const SubscriptionSet>(std::move(map));
}

}  // namespace relay
