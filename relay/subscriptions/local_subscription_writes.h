#pragma once
// LocalSubscriptionWrites: a single node's subscription writes (SubscriptionWrites). Each change
// is one read-modify-write on the commit pipeline's writer thread (storage/mutations), so
// concurrent changes serialize there, each applied to what the one before it left; once durable
// the registry is updated on the writer thread, in commit order, and then `on_changed` runs on
// the event loop (the scheduler and the metrics follow subscriptions through it). A
// subscription enabled again or deleted loses its failure streak in the same batch
// (storage/failure_streaks.h): an operator has looked at its failures, and a streak left running
// would disable it again at its first failure.

#include <functional>
#include <string>

#include "relay/subscriptions/subscription_registry.h"
#include "relay/subscriptions/subscription_writes.h"
#include "storage/commit_pipeline.h"
#include "storage/failure_streaks.h"

namespace relay {

class LocalSubscriptionWrites final : public SubscriptionWrites {
 public:
  // A subscription was created, changed or (nullptr) deleted; runs on the event loop.
  using ChangedHook = std::function<void(const std::string& id, const Subscription* now)>;

  // `streaks` is the writer thread's (shared with the scheduler's commands).
  LocalSubscriptionWrites(CommitPipeline& pipeline, SubscriptionRegistry& registry, FailureStreaks& streaks,
                          ChangedHook on_changed);

  boost::asio::awaitable<Result<Subscription>> create(Subscription subscription) override;
  boost::asio::awaitable<Result<Subscription>> update(std::string id, Change change) override;
  boost::asio::awaitable<Status> remove(std::string id) override;

 private:
  CommitPipeline& pipeline_;
  SubscriptionRegistry& registry_;
  FailureStreaks& streaks_;
  ChangedHook on_changed_;
};

}  // namespace relay
