#include "relay/subscriptions/local_subscription_writes.h"

#include <boost/asio/use_awaitable.hpp>
#include <memory>
#include <utility>

#include "storage/async_commit.h"
#include "storage/mutations.h"

namespace relay {

namespace asio = boost::asio;

LocalSubscriptionWrites::LocalSubscriptionWrites(CommitPipeline& pipeline, SubscriptionRegistry& registry,
                                                 FailureStreaks& streaks, ChangedHook on_changed)
    : pipeline_(pipeline), registry_(registry), streaks_(streaks), on_changed_(std::move(on_changed)) {}

asio::awaitable<Result<Subscription>> LocalSubscriptionWrites::create(Subscription subscription) {
  auto created = std::make_shared<const Subscription>(std::move(subscription));
  const CommitPipeline::Command command = [created](WriteTxn& txn) { return mutations::put_subscription(txn, *created); };
  const std::function<void()> publish = [&registry = registry_, created] { registry.upsert(*created); };
  if (auto stored = co_await async_commit(pipeline_, command, publish, asio::use_awaitable); !stored) {
    co_return stored.error();
  }
  on_changed_(created->id, created.get());
  co_return *created;
}

asio::awaitable<Result<Subscription>> LocalSubscriptionWrites::update(std::string id, Change change) {
  auto result = std::make_shared<Subscription>();
  const CommitPipeline::Command command = [id, change = std::move(change), result, &streaks = streaks_](WriteTxn& txn) {
    bool enabled_again = false;
    const auto tracked = [&](Subscription& sub) -> Status {
      const bool was_enabled = sub.enabled;
      if (auto changed = change(sub); !changed) return changed;
      enabled_again = !was_enabled && sub.enabled;
      return Ok{};
    };
    const Status updated = mutations::update_subscription(txn, id, tracked, *result);
    if (updated && enabled_again) streaks.clear(txn, id);
    return updated;
  };
  const std::function<void()> publish = [&registry = registry_, result] { registry.upsert(*result); };
  if (auto stored = co_await async_commit(pipeline_, command, publish, asio::use_awaitable); !stored) {
    co_return stored.error();
  }
  on_changed_(id, result.get());
  co_return *result;
}

asio::awaitable<Status> LocalSubscriptionWrites::remove(std::string id) {
  const CommitPipeline::Command command = [id, &streaks = streaks_](WriteTxn& txn) {
    const Status deleted = mutations::delete_subscription(txn, id);
    if (deleted) streaks.clear(txn, id);
    return deleted;
  };
  const std::function<void()> publish = [&registry = registry_, id] { registry.erase(id); };
  if (auto removed = co_await async_commit(pipeline_, command, publish, asio::use_awaitable); !removed) {
    co_return removed;
  }
  on_changed_(id, nullptr);
  co_return Ok{};
}

}  // namespace relay
