#include "relay/cluster/mirrored_subscription_writes.h"

#include <utility>

namespace relay::cluster {

namespace asio = boost::asio;

asio::awaitable<void> MirroredSubscriptionWrites::applied(std::int64_t revision, std::string id) {
  const bool in_effect = co_await mirror_.wait_applied(revision, apply_timeout_);
  if (!in_effect) {
    logger_.warn("a subscription written to etcd is not applied on this shard yet",
                 {{"subscription", id}, {"revision", revision}, {"waited_ms", apply_timeout_.count()}});
  }
}

asio::awaitable<Result<Subscription>> MirroredSubscriptionWrites::create(Subscription subscription) {
  auto written = co_await etcd_.create(std::move(subscription));
  if (!written) co_return written.error();
  std::string written_id = written->subscription.id;
  co_await applied(written->revision, std::move(written_id));
  co_return std::move(written->subscription);
}

asio::awaitable<Result<Subscription>> MirroredSubscriptionWrites::update(std::string id, Change change) {
  std::string target = id;
  auto written = co_await etcd_.update(std::move(target), std::move(change));
  if (!written) co_return written.error();
  co_await applied(written->revision, std::move(id));
  co_return std::move(written->subscription);
}

asio::awaitable<Status> MirroredSubscriptionWrites::remove(std::string id) {
  std::string target = id;
  auto written = co_await etcd_.remove(std::move(target));
  if (!written) co_return written.error();
  co_await applied(written->revision, std::move(id));
  co_return Ok{};
}

}  // namespace relay::cluster
