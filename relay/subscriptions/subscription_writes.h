#pragma once
// SubscriptionWrites: how the API creates, changes and deletes subscriptions. Two
// implementations: LocalSubscriptionWrites (single node: one RocksDB commit per change) and, in
// cluster mode, the etcd-backed writes of relay/cluster (compare-and-swap in etcd, every shard's
// store follows). Either way a write answers once the change is durable where it is kept AND in
// this process's SubscriptionRegistry, so a read right after it sees it.
//
// Threading: call from the event loop; the coroutines resume on it.

#include <boost/asio/awaitable.hpp>
#include <functional>
#include <string>

#include "relay/core/result.h"
#include "relay/model/subscription.h"

namespace relay {

class SubscriptionWrites {
 public:
  // Edits the current state of a subscription; an error refuses the change (nothing is
  // written). May run more than once (after a lost compare-and-swap) and on another thread: it
  // must depend only on its argument and what it captured by value.
  using Change = std::function<Status(Subscription&)>;

  virtual ~SubscriptionWrites() = default;

  // Stores a new subscription (its id is new). The stored subscription.
  virtual boost::asio::awaitable<Result<Subscription>> create(Subscription subscription) = 0;
  // Applies `change` to the stored subscription `id`. not_found when there is none.
  virtual boost::asio::awaitable<Result<Subscription>> update(std::string id, Change change) = 0;
  // not_found when there is none.
  virtual boost::asio::awaitable<Status> remove(std::string id) = 0;
};

}  // namespace relay
