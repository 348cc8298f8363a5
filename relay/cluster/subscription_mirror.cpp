#include "relay/cluster/subscription_mirror.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <exception>
#include <nlohmann/json.hpp>

#include "storage/async_commit.h"
#include "storage/keys.h"
#include "storage/records.h"

namespace relay::cluster {

namespace asio = boost::asio;

SubscriptionMirror::SubscriptionMirror(asio::any_io_executor executor, ClusterStore& cluster, Store& store,
                                       CommitPipeline& pipeline, SubscriptionRegistry& registry,
                                       FailureStreaks& streaks, Logger& logger, SubscriptionMirrorOptions options,
                                       ChangeHook on_change)
    : executor_(std::move(executor)),
      cluster_(cluster),
      store_(store),
      pipeline_(pipeline),
      registry_(registry),
      streaks_(streaks),
      logger_(logger),
      options_(std::move(options)),
      on_change_(std::move(on_change)),
      keys_(options_.prefix),
      wake_(executor_) {}

SubscriptionMirror::~SubscriptionMirror() { stop(); }

void SubscriptionMirror::start() {
  applied_ = mutations::stored_subscriptions_revision(store_);
  ++running_;
  asio::co_spawn(executor_, run(), [this](const std::exception_ptr& error) {
    --running_;
    if (error) std::rethrow_exception(error);
  });
}

void SubscriptionMirror::stop() {
  stopped_ = true;
  watch_.reset();
  wake_.cancel();
  for (auto& waiter : waiters_) waiter.timer->cancel();
}

asio::awaitable<void> SubscriptionMirror::pause(std::chrono::milliseconds delay) {
  wake_.expires_after(delay);
  boost::system::error_code ec;
  co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

asio::awaitable<void> SubscriptionMirror::run() {
  // Every start reads everything, a restart too: a watch resumed from the stored revision cannot
  // tell when it has caught up with what changed while the shard was away, and until then the
  // shard would deliver to subscriptions deleted or disabled meanwhile.
  while (!stopped_) {
    if (!co_await reload()) {
      co_await pause(options_.retry_delay);
      continue;
    }
    if (stopped_) break;
    const bool compacted = co_await follow();
    if (!compacted) break;
    logger_.info("subscription watch compacted in etcd: reading every subscription again",
                 {{"revision", applied_}});
  }
}

asio::awaitable<bool> SubscriptionMirror::reload() {
  const std::string prefix = keys_.subscriptions();
  auto read = co_await cluster_.range(prefix, true);
  if (stopped_) co_return false;
  if (!read) {
    unreachable(read.error());
    co_return false;
  }
  reachable();
  if (read->revision < applied_) {
    logger_.warn("etcd's revision is below the one the stored subscriptions reflect (etcd replaced?): "
                 "taking etcd's subscriptions",
                 {{"etcd_revision", read->revision}, {"stored_revision", applied_}});
  }
  auto all = std::make_shared<std::vector<Subscription>>();
  auto keep = std::make_shared<std::vector<std::string>>();
  for (const auto& kv : read->kvs) {
    const auto id = id_of(kv.key);
    if (!id) continue;
    if (auto sub = decode(kv)) {
      all->push_back(std::move(*sub));
    } else {
      keep->push_back(*id);
    }
  }
  const std::int64_t revision = read->revision;
  auto result = std::make_shared<mutations::SubscriptionSync>();
  const CommitPipeline::Command command = [all, keep, revision, result](WriteTxn& txn) {
    return mutations::replace_subscriptions(txn, *all, *keep, revision, *result);
  };
  if (!co_await commit(command, result, revision)) co_return false;
  synced_ = true;
  logger_.info("subscriptions read from etcd",
               {{"revision", revision}, {"subscriptions", all->size()}, {"changed", result->stored.size()},
                {"removed", result->removed.size()}});
  co_return true;
}

asio::awaitable<bool> SubscriptionMirror::follow() {
  pending_.clear();
  watch_ = cluster_.watch(keys_.subscriptions(), applied_ + 1, [this](WatchBatch batch) {
    pending_.push_back(std::move(batch));
    wake();
  });
  while (!stopped_) {
    if (pending_.empty()) {
      co_await pause(std::chrono::hours(24));
      continue;
    }
    if (pending_.front().compacted) {
      watch_.reset();
      pending_.clear();
      co_return true;
    }
    // Every batch delivered so far, up to a compaction, in one commit.
    auto updates = std::make_shared<std::vector<mutations::SubscriptionUpdate>>();
    std::int64_t revision = applied_;
    std::size_t batches = 0;
    for (const auto& batch : pending_) {
      if (batch.compacted) break;
      ++batches;
      for (const auto& event : batch.events) {
        revision = std::max(revision, event.kv.mod_revision);
        auto id = id_of(event.kv.key);
        if (!id) continue;
        if (event.kind == WatchEvent::Kind::del) {
          updates->push_back({std::move(*id), std::nullopt});
          unreadable_logged_.erase(event.kv.key);
        } else if (auto sub = decode(event.kv)) {
          updates->push_back({std::move(*id), std::move(*sub)});
        }
      }
    }
    auto result = std::make_shared<mutations::SubscriptionSync>();
    const CommitPipeline::Command command = [updates, revision, result](WriteTxn& txn) {
      return mutations::apply_subscription_updates(txn, *updates, revision, *result);
    };
    if (!co_await commit(command, result, revision)) {
      co_await pause(options_.retry_delay);  // the batches stay queued
      continue;
    }
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(batches));
  }
  watch_.reset();
  co_return false;
}

asio::awaitable<bool> SubscriptionMirror::commit(const CommitPipeline::Command& sync_command,
                                                 const std::shared_ptr<mutations::SubscriptionSync>& result,
                                                 std::int64_t revision) {
  const std::function<void()> publish = [&registry = registry_, result] {
    for (const auto& sub : result->stored) registry.upsert(sub);
    for (const auto& id : result->removed) registry.erase(id);
  };
  const CommitPipeline::Command command = [sync_command, result, &streaks = streaks_](WriteTxn& txn) {
    const Status synced = sync_command(txn);
    if (synced) {
      for (const auto& id : result->removed) streaks.clear(txn, id);
      for (const auto& id : result->enabled_again) streaks.clear(txn, id);
    }
    return synced;
  };
  const Status status = co_await async_commit(pipeline_, command, publish, asio::use_awaitable);
  if (!status) {
    logger_.warn("cannot store the subscriptions from etcd: retrying",
                 {{"revision", revision}, {"error", status.error().message}});
    co_return false;
  }
  if (logger_.enabled(LogLevel::debug)) {
    for (const auto& sub : result->stored) {
      logger_.debug("subscription stored from etcd", {{"subscription", sub.id}, {"revision", revision}});
    }
    for (const auto& id : result->removed) {
      logger_.debug("subscription removed from etcd", {{"subscription", id}, {"revision", revision}});
    }
  }
  advance(revision);
  if (on_change_) {
    for (const auto& sub : result->stored) on_change_(sub.id, false);
    for (const auto& id : result->removed) on_change_(id, true);
  }
  co_return true;
}

void SubscriptionMirror::unreachable(const Error& error) {
  if (std::exchange(unreachable_logged_, true)) return;
  logger_.warn("cannot read the subscriptions from etcd: serving the stored ones, retrying",
               {{"revision", applied_}, {"error", error.message}});
}

void SubscriptionMirror::reachable() {
  if (std::exchange(unreachable_logged_, false)) logger_.info("etcd answers again: following its subscriptions");
}

void SubscriptionMirror::advance(std::int64_t revision) {
  applied_ = revision;
  for (auto& waiter : waiters_) {
    if (waiter.revision <= applied_) waiter.timer->cancel();
  }
}

asio::awaitable<bool> SubscriptionMirror::wait_applied(std::int64_t revision, std::chrono::milliseconds timeout) {
  if (applied_ >= revision) co_return true;
  ++running_;
  asio::steady_timer timer(executor_);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const auto waiter = waiters_.insert(waiters_.end(), Waiter{revision, &timer});
  while (applied_ < revision && !stopped_ && std::chrono::steady_clock::now() < deadline) {
    timer.expires_at(deadline);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  waiters_.erase(waiter);
  --running_;
  co_return applied_ >= revision;
}

std::optional<std::string> SubscriptionMirror::id_of(const std::string& key) {
  const auto id = ClusterKeys::suffix(key, keys_.subscriptions());
  if (id && keys::parse_id(*id, keys::kSubscriptionPrefix)) return std::string(*id);
  if (unreadable_logged_.insert(key).second) {
    logger_.warn("ignoring an etcd key under the subscriptions prefix that names no subscription", {{"key", key}});
  }
  return std::nullopt;
}

std::optional<Subscription> SubscriptionMirror::decode(const KeyValue& kv) {
  std::optional<Subscription> sub;
  try {
    sub = records::subscription_from_record(nlohmann::json::parse(kv.value));
  } catch (const nlohmann::json::exception&) {
    sub.reset();
  }
  if (sub && kv.key == keys_.subscription(sub->id)) {
    unreadable_logged_.erase(kv.key);
    return sub;
  }
  if (unreadable_logged_.insert(kv.key).second) {
    logger_.warn("ignoring a subscription in etcd that does not decode: this shard keeps its own copy, if any",
                 {{"key", kv.key}, {"revision", kv.mod_revision}});
  }
  return std::nullopt;
}

}  // namespace relay::cluster
