#pragma once
// The current subscriptions, held in memory because every ingest matches against them.
// Readers take an immutable snapshot; writers (the commit pipeline, after a subscription
// change is durable) publish a new one. Thread-safe.

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "relay/model/subscription.h"

namespace relay {

class SubscriptionSet {
 public:
  using Map = std::unordered_map<std::string, std::shared_ptr<const Subscription>>;

  explicit SubscriptionSet(Map subscriptions) : subscriptions_(std::move(subscriptions)) {}

  std::shared_ptr<const Subscription> find(const std::string& id) const;
  // Enabled subscriptions whose patterns match `type`.
  std::vector<std::shared_ptr<const Subscription>> matching(std::string_view type) const;
  const Map& all() const { return subscriptions_; }

 private:
  Map subscriptions_;
};

class SubscriptionRegistry {
 public:
  explicit SubscriptionRegistry(std::vector<Subscription> initial);

  std::shared_ptr<const SubscriptionSet> snapshot() const;
  void upsert(const Subscription& subscription);
  void erase(const std::string& id);

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const SubscriptionSet> current_;
};

}  // namespace relay
