#pragma once
// SubscriptionWrites: subscription changes in cluster mode, written to etcd (the cluster's one
// copy) with compare-and-swap, so that concurrent writes through any shards serialize there
// (spec section 2: a PATCH never resurrects a deleted subscription, and of two concurrent
// PATCHes neither is lost). Each shard's SubscriptionMirror then applies the change; a caller
// that must answer with the change in effect on this shard waits for the answered revision
// (SubscriptionMirror::wait_applied).
//
// - create: only if the id is absent (conflict otherwise);
// - update: reads the current value, applies `change` to it, writes it if the value's
//   mod_revision is still the one read; on a lost race, again from the new value, up to
//   max_attempts times (then conflict);
// - remove: deletes the value read if it is still that one (same loop).
// not_found when the subscription is absent, unavailable when etcd does not answer, internal when
// the stored value does not decode. The value is storage/records.h's to_record, as JSON text.
//
// Threading: on the executor's thread, like ClusterStore.

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <functional>
#include <string>

#include "relay/cluster/cluster_keys.h"
#include "relay/cluster/cluster_store.h"
#include "relay/core/result.h"
#include "relay/model/subscription.h"

namespace relay::cluster {

// A subscription as etcd holds it after a write, and the revision to wait for.
struct WrittenSubscription {
  Subscription subscription;  // for remove(): as it was when deleted
  std::int64_t revision = 0;
};

class SubscriptionWrites {
 public:
  // Applied to the current value; an error from it is the answer and nothing is written. It may
  // run more than once (once per lost race), each time on a fresh copy.
  using Change = std::function<Status(Subscription&)>;

  SubscriptionWrites(ClusterStore& cluster, const std::string& prefix, int max_attempts = 8);

  boost::asio::awaitable<Result<WrittenSubscription>> create(Subscription subscription);
  boost::asio::awaitable<Result<WrittenSubscription>> update(std::string id, Change change);
  boost::asio::awaitable<Result<WrittenSubscription>> remove(std::string id);
  // The subscription as etcd holds it now (revision: its mod_revision).
  boost::asio::awaitable<Result<WrittenSubscription>> get(std::string id);

 private:
  ClusterStore& cluster_;
  ClusterKeys keys_;
  int max_attempts_;
};

}  // namespace relay::cluster
