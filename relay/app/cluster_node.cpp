#include "relay/app/cluster_node.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <optional>
#include <utility>

namespace relay {

namespace asio = boost::asio;

namespace {

constexpr auto kReachabilityInterval = std::chrono::seconds(1);
constexpr auto kBackgroundRetryDelay = std::chrono::seconds(1);
constexpr int kBackgroundAttempts = 600;  // ten minutes of etcd out of reach

std::chrono::milliseconds cluster_timeout(const Config& config) {
  return std::chrono::milliseconds(config.cluster.timeout_ms);
}

cluster::EtcdOptions etcd_options(const Config& config) {
  cluster::EtcdOptions options;
  options.endpoints = config.cluster.etcd_endpoints;
  options.request_timeout = cluster_timeout(config);
  options.tls = {config.cluster.etcd_ca_file, config.cluster.etcd_cert_file, config.cluster.etcd_key_file};
  options.credentials = {config.cluster.etcd_user, config.cluster.etcd_password};
  return options;
}

cluster::ShardDirectoryOptions directory_options(const Config& config) {
  cluster::ShardDirectoryOptions options;
  options.prefix = config.cluster.prefix;
  options.name = config.cluster.shard;
  return options;
}

cluster::SubscriptionMirrorOptions mirror_options(const Config& config) {
  cluster::SubscriptionMirrorOptions options;
  options.prefix = config.cluster.prefix;
  return options;
}

// Runs `io` until `task` has an answer: the start needs etcd's before anything else runs.
template <typename T>
T run_until_answered(asio::io_context& io, asio::awaitable<T> task) {
  std::optional<T> answer;
  asio::co_spawn(
      io, [&answer, task = std::move(task)]() mutable -> asio::awaitable<void> { answer.emplace(co_await std::move(task)); },
      asio::detached);
  while (!answer) {
    if (io.run_one() == 0) throw std::runtime_error("cluster: the start ended without etcd's answer");
  }
  // The answer was the io_context's last work, which stopped it: the service runs it again.
  if (io.stopped()) io.restart();
  return std::move(*answer);
}

}  // namespace

ClusterNode::ClusterNode(asio::io_context& io, const Config& config, Store& store, CommitPipeline& pipeline,
                         SubscriptionRegistry& registry, FailureStreaks& streaks, const Clock& clock, Logger& logger,
                         RelayMetrics& metrics)
    : io_(io),
      config_(config),
      logger_(logger),
      metrics_(metrics),
      etcd_(io, etcd_options(config), logger),
      directory_(io.get_executor(), etcd_, clock, logger, directory_options(config)),
      mirror_(io.get_executor(), etcd_, store, pipeline, registry, streaks, logger, mirror_options(config),
              [this](const std::string& id, bool removed) {
                if (hooks_.subscription_changed) hooks_.subscription_changed(id, removed);
              }),
      etcd_writes_(etcd_, config.cluster.prefix),
      writes_(etcd_writes_, mirror_, logger, cluster_timeout(config)),
      view_(directory_),
      peers_(io),
      reachability_(io, kReachabilityInterval, [this] { metrics_.set_cluster_etcd_up(etcd_.reachable()); }) {
  metrics_.add_cluster_state();
  const std::string& name = config.cluster.shard;
  const auto stored = store.shard();
  if (stored && stored->name != name) {
    // Before etcd is asked: a misnamed shard would otherwise take a number for good.
    throw ConfigError("the data directory " + config.data_dir + " belongs to shard '" + stored->name +
                      "', not to --shard " + name);
  }
  const std::uint32_t known = stored ? stored->number : 0;
  const auto number = run_until_answered(io_, directory_.allocate(known));
  if (number) {
    etcd_answered_ = true;
    logger_.info("shard number from etcd", {{"shard", name}, {"number", *number}});
  } else if (number.error().code == Errc::unavailable && known != 0) {
    directory_.set_number(known);
    logger_.warn("etcd does not answer: starting with the shard number the data directory holds",
                 {{"shard", name}, {"number", known}, {"error", number.error().message}});
  } else {
    throw ConfigError("cluster: no shard number for '" + name + "': " + number.error().message);
  }
  store.claim_shard(ShardIdentity{name, directory_.number()});
}

ClusterNode::~ClusterNode() = default;

void ClusterNode::start(Hooks hooks) {
  hooks_ = std::move(hooks);
  directory_.on_change([this] { publish_state(); });
  mirror_.start();
  ++background_;
  asio::co_spawn(
      io_,
      [this]() -> asio::awaitable<void> {
        std::string advertise = config_.cluster.advertise;
        const Status joined = co_await directory_.join(std::move(advertise));
        if (!joined) {
          logger_.warn("cannot register as live in etcd yet: retrying in the background",
                       {{"error", joined.error().message}});
        }
        --background_;
      },
      asio::detached);
  publish_state();
  reachability_.start();
  await_first_view();
}

void ClusterNode::await_first_view() {
  // Without etcd at the start, nothing would come: the shard goes on with what it stored.
  if (!etcd_answered_) return;
  const auto ready = [this] { return directory_.loaded() && mirror_.synced(); };
  const auto deadline = std::chrono::steady_clock::now() + cluster_timeout(config_);
  while (!ready() && !io_.stopped() && std::chrono::steady_clock::now() < deadline) io_.run_one_until(deadline);
  if (!ready()) {
    logger_.warn("etcd did not give the live shards and the subscriptions in time: starting with the stored "
                 "subscriptions, taking the whole of each subscription's limits until it does",
                 {{"shards_read", directory_.loaded()}, {"subscriptions_read", mirror_.synced()}});
  }
}

void ClusterNode::publish_state() {
  const cluster::ShardCounts counts = directory_.counts();
  metrics_.set_cluster_shards(counts.live, counts.down);
  if (hooks_.live_shards) hooks_.live_shards(std::max<std::size_t>(counts.live, 1));
}

void ClusterNode::write_in_background(std::string subscription_id, relay::SubscriptionWrites::Change change) {
  ++background_;
  asio::co_spawn(
      io_,
      [this, id = std::move(subscription_id), change = std::move(change)]() -> asio::awaitable<void> {
        for (int attempt = 0; attempt < kBackgroundAttempts && !stopped_; ++attempt) {
          std::string target = id;
          relay::SubscriptionWrites::Change copy = change;
          const auto written = co_await writes_.update(std::move(target), std::move(copy));
          if (written || written.error().code != Errc::unavailable) {
            // not_found: deleted meanwhile; conflict: the change no longer applies.
            if (!written && written.error().code != Errc::not_found && written.error().code != Errc::conflict) {
              logger_.error("cannot write a subscription change to etcd",
                            {{"subscription", id}, {"error", written.error().message}});
            }
            break;
          }
          asio::steady_timer pause(io_, kBackgroundRetryDelay);
          co_await pause.async_wait(asio::use_awaitable);
        }
        --background_;
      },
      asio::detached);
}

void ClusterNode::leave() {
  if (stopped_) return;
  ++background_;
  asio::co_spawn(
      io_,
      [this]() -> asio::awaitable<void> {
        co_await directory_.leave();
        --background_;
      },
      asio::detached);
}

void ClusterNode::finish() {
  stopped_ = true;
  directory_.stop();
  mirror_.stop();
  reachability_.stop();
  io_.restart();
  const auto deadline = std::chrono::steady_clock::now() + cluster_timeout(config_) + std::chrono::seconds(1);
  while (!(directory_.idle() && mirror_.idle() && background_ == 0) && std::chrono::steady_clock::now() < deadline) {
    io_.run_one_for(std::chrono::milliseconds(100));
  }
}

}  // namespace relay
