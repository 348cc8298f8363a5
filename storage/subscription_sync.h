#pragma once
// The writes of cluster mode's subscription mirror (relay/cluster/subscription_mirror.h): the
// subscriptions family made equal to etcd's subscriptions as of an etcd revision, together with
// that revision (meta "cluster_subscriptions_revision", storage/keys.h), in the same batch. So
// the store always holds the subscriptions of exactly the revision it names, and a restart
// resumes watching etcd after it.
//
// Each write compares with what is stored and reports only what it changed, so that a reload
// of 100,000 unchanged subscriptions rewrites none and touches neither the registry nor the
// scheduler. These run on the writer thread like every mutation.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "relay/core/result.h"
#include "relay/model/subscription.h"
#include "storage/commit_pipeline.h"

namespace relay::mutations {

// What a sync changed: subscriptions stored anew (created or different) and ids removed.
struct SubscriptionSync {
  std::vector<Subscription> stored;
  std::vector<std::string> removed;
  // Of `stored`: the ids that were disabled here and are enabled now (an operator re-enabled
  // them), whose failure streaks end, as LocalSubscriptionWrites ends them on a single node.
  std::vector<std::string> enabled_again;
  bool empty() const { return stored.empty() && removed.empty(); }
};

// A reload from a full read of etcd at `revision`: afterwards the family holds exactly `all`
// and the ids in `keep` (present in etcd but unreadable there: their stored copies stay as
// they are); every other stored subscription is removed.
Status replace_subscriptions(WriteTxn& txn, const std::vector<Subscription>& all, const std::vector<std::string>& keep,
                             std::int64_t revision, SubscriptionSync& out);

// One change seen by the watch: the subscription as etcd has it now, or nullopt when deleted.
struct SubscriptionUpdate {
  std::string id;
  std::optional<Subscription> value;
};
// Changes from etcd's watch, in revision order, up to `revision`. Deleting an absent
// subscription is no change.
Status apply_subscription_updates(WriteTxn& txn, const std::vector<SubscriptionUpdate>& updates,
                                  std::int64_t revision, SubscriptionSync& out);

// The etcd revision the stored subscriptions reflect; 0 when they never came from etcd.
std::int64_t stored_subscriptions_revision(const Store& store);

}  // namespace relay::mutations
