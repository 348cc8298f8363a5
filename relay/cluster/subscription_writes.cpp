#include "relay/cluster/subscription_writes.h"

#include <nlohmann/json.hpp>
#include <optional>

#include "storage/records.h"

namespace relay::cluster {

namespace asio = boost::asio;

namespace {

std::string encode(const Subscription& sub) { return records::to_record(sub).dump(); }

std::optional<Subscription> decode(const std::string& value) {
  try {
    return records::subscription_from_record(nlohmann::json::parse(value));
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

Error lost_races(const std::string& id, int attempts) {
  return make_error(Errc::conflict, "subscription " + id + " changed concurrently " + std::to_string(attempts) +
                                        " times in a row: try again");
}

}  // namespace

SubscriptionWrites::SubscriptionWrites(ClusterStore& cluster, const std::string& prefix, int max_attempts)
    : cluster_(cluster), keys_(prefix), max_attempts_(max_attempts) {}

asio::awaitable<Result<WrittenSubscription>> SubscriptionWrites::get(std::string id) {
  const std::string key = keys_.subscription(id);
  auto read = co_await cluster_.range(key, false);
  if (!read) co_return read.error();
  if (read->kvs.empty()) co_return make_error(Errc::not_found, "no subscription " + id);
  auto sub = decode(read->kvs.front().value);
  if (!sub || sub->id != id) co_return make_error(Errc::internal, "subscription " + id + " in etcd is unreadable");
  co_return WrittenSubscription{std::move(*sub), read->kvs.front().mod_revision};
}

asio::awaitable<Result<WrittenSubscription>> SubscriptionWrites::create(Subscription subscription) {
  const std::string key = keys_.subscription(subscription.id);
  Txn txn;
  txn.compares.push_back(Compare{key, 0});
  txn.then.emplace_back(Put{key, encode(subscription), 0});
  auto written = co_await cluster_.commit(std::move(txn));
  if (!written) co_return written.error();
  if (!written->succeeded) co_return make_error(Errc::conflict, "subscription " + subscription.id + " exists already");
  co_return WrittenSubscription{std::move(subscription), written->revision};
}

asio::awaitable<Result<WrittenSubscription>> SubscriptionWrites::update(std::string id, Change change) {
  const std::string key = keys_.subscription(id);
  for (int attempt = 0; attempt < max_attempts_; ++attempt) {
    auto current = co_await get(id);
    if (!current) co_return current.error();
    Subscription sub = current->subscription;
    if (auto changed = change(sub); !changed) co_return changed.error();
    sub.id = id;  // a change never moves a subscription
    Txn txn;
    txn.compares.push_back(Compare{key, current->revision});
    txn.then.emplace_back(Put{key, encode(sub), 0});
    auto written = co_await cluster_.commit(std::move(txn));
    if (!written) co_return written.error();
    if (written->succeeded) co_return WrittenSubscription{std::move(sub), written->revision};
  }
  co_return lost_races(id, max_attempts_);
}

asio::awaitable<Result<WrittenSubscription>> SubscriptionWrites::remove(std::string id) {
  const std::string key = keys_.subscription(id);
  for (int attempt = 0; attempt < max_attempts_; ++attempt) {
    const std::string read_key = key;
    auto read = co_await cluster_.range(read_key, false);
    if (!read) co_return read.error();
    if (read->kvs.empty()) co_return make_error(Errc::not_found, "no subscription " + id);
    const KeyValue& kv = read->kvs.front();
    Txn txn;
    txn.compares.push_back(Compare{key, kv.mod_revision});
    txn.then.emplace_back(Delete{key});
    auto deleted = co_await cluster_.commit(std::move(txn));
    if (!deleted) co_return deleted.error();
    if (deleted->succeeded) {
      // An unreadable value is deleted all the same: the answer then carries only the id.
      Subscription gone;
      if (auto sub = decode(kv.value)) gone = std::move(*sub);
      gone.id = id;
      co_return WrittenSubscription{std::move(gone), deleted->revision};
    }
  }
  co_return lost_races(id, max_attempts_);
}

}  // namespace relay::cluster
