#include "relay/app/relay_app.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/thread_pool.hpp>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <openssl/rand.h>

#include "metrics/relay_metrics.h"
#include "relay/api/api_context.h"
#include "relay/api/api_router.h"
#include "relay/api/cluster_router.h"
#include "relay/app/cluster_node.h"
#include "relay/core/periodic_task.h"
#include "relay/delivery/delivery_scheduler.h"
#include "relay/delivery/destination_guard.h"
#include "relay/delivery/egress_thread.h"
#include "relay/delivery/job_runner.h"
#include "relay/delivery/retention_cleaner.h"
#include "relay/http/http_server.h"
#include "relay/subscriptions/local_subscription_writes.h"
#include "storage/keys.h"
#include "storage/queries.h"

namespace relay {

namespace asio = boost::asio;

namespace {

constexpr auto kStorageGaugeInterval = std::chrono::seconds(10);

DestinationPolicy destination_policy(const Config& config) {
  DestinationPolicy policy;
  policy.allow_private_networks = config.allow_private_networks || config.dev;
  policy.allow_cidrs = config.allow_cidrs;
  return policy;
}

// Development mode: one admin key per data directory, made once and printed at every start.
Config with_dev_key(Config config) {
  if (!config.dev || !config.api_keys.empty()) return config;
  const auto path = std::filesystem::path(config.data_dir) / "dev-api-key";
  std::string key;
  if (std::ifstream in(path); in) std::getline(in, key);
  if (key.size() < 8) {
    unsigned char random[16];
    RAND_bytes(random, sizeof random);
    key = keys::format_id("dev_", std::string_view(reinterpret_cast<const char*>(random), sizeof random));
    std::ofstream(path) << key << "\n";
    std::filesystem::permissions(path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  }
  config.api_keys.push_back({ApiScope::admin, key});
  std::cout << "relayd development mode: admin API key " << key << " (kept in " << path.string() << ")" << std::endl;
  return config;
}

}  // namespace

int run_relay(const Config& base_config) {
  const DestinationPolicy destinations = destination_policy(base_config);
  std::filesystem::create_directories(base_config.data_dir);
  const Config config = with_dev_key(base_config);
  Logger logger(config.log_level);
  SystemClock clock;

  auto store = Store::open(StoreOptions{config.data_dir, config.sync_writes});
  RelayMetrics metrics(RELAY_VERSION);
  CommitPipeline pipeline(
      *store, [&metrics](double seconds, std::size_t commands) { metrics.storage_commit(seconds, commands); },
      [&metrics, &logger](bool writable, const std::string& reason) {
        metrics.set_storage_writable(writable);
        if (writable) {
          logger.info("storage writable again: accepting writes");
        } else {
          logger.error("storage not writable: refusing writes until it recovers", {{"error", reason}});
        }
      });
  SubscriptionRegistry subscriptions(queries::subscriptions(*store));
  FailureStreaks streaks;  // used by the writer thread's commands only

  asio::io_context io(1);
  asio::thread_pool blocking_pool(2);
  // Cluster mode: the shard's number is claimed before anything makes an id.
  std::optional<ClusterNode> cluster;
  if (config.cluster.enabled()) cluster.emplace(io, config, *store, pipeline, subscriptions, streaks, clock, logger, metrics);
  keys::IdGenerator ids(clock, store->instance_id());
  std::atomic<bool> draining{false};

  EgressOptions egress_options;
  egress_options.destinations = destinations;
  egress_options.connect_timeout_ms = config.connect_timeout_ms;
  egress_options.ca_file = config.ca_file;
  EgressThread egress(io, egress_options);

  SchedulerOptions scheduler_options;
  scheduler_options.retry = RetryPolicy{config.retry_initial_ms, config.retry_max_delay_ms, config.retry_window_ms};
  scheduler_options.attempt_timeout_ms = config.attempt_timeout_ms;
  scheduler_options.max_in_flight = config.max_in_flight;
  scheduler_options.circuit_probe_interval_ms = config.circuit_probe_interval_ms;
  scheduler_options.disable_after_ms = config.disable_after_ms;
  DeliveryScheduler scheduler(io, scheduler_options, clock, logger, *store, pipeline, subscriptions, egress, metrics,
                              blocking_pool, ids, streaks);
  DeliveryGauges gauges(io, clock, *store, subscriptions, scheduler, metrics, blocking_pool);
  RetentionCleaner cleaner(io, RetentionOptions{config.retention_ms, config.dlq_retention_ms,
                                                 std::chrono::milliseconds(config.retention_interval_ms)}, clock, logger, *store,
                           pipeline, blocking_pool, [&scheduler](std::size_t n) { scheduler.dead_removed(n); });

  JobRunnerOptions job_options;
  job_options.chunk = config.job_chunk;
  job_options.retention.retention_ms = config.job_retention_ms;
  job_options.retention.interval = std::chrono::milliseconds(config.retention_interval_ms);
  JobRunner jobs(io, job_options, clock, logger, *store, pipeline, subscriptions, ids, scheduler, metrics,
                 blocking_pool);

  // The scheduler and the metrics follow every subscription change: on a single node as the API
  // writes it, in cluster mode as etcd's copy reaches this shard.
  const auto subscription_changed = [&scheduler, &metrics](const std::string& id, bool removed) {
    scheduler.subscription_changed(id);
    if (removed) metrics.forget_subscription(id);
  };
  LocalSubscriptionWrites local_writes(pipeline, subscriptions, streaks,
                                       [subscription_changed](const std::string& id, const Subscription* now) {
                                         subscription_changed(id, now == nullptr);
                                       });
  SubscriptionWrites& subscription_writes = cluster ? cluster->subscription_writes() : local_writes;

  ApiContext context{config,  clock,   logger,    *store,        pipeline, subscriptions, subscription_writes, ids,
                     metrics, scheduler, blocking_pool, draining, jobs};
  std::optional<ClusterRouter> cluster_router;
  if (cluster) {
    cluster_router.emplace(cluster->view(), cluster->peers(), metrics, logger,
                           ClusterRouter::Options{.timeout = std::chrono::milliseconds(config.cluster.timeout_ms),
                                                  .api_key = peer_api_key(config),
                                                  .max_body_bytes = config.max_body_bytes});
    // A subscription this shard disabled (disable_after) is disabled through etcd, on every shard.
    scheduler.on_auto_disabled([&cluster](const Subscription& disabled) {
      cluster->write_in_background(disabled.id, [at = disabled.disabled_at](Subscription& sub) -> Status {
        if (!sub.enabled) return make_error(Errc::conflict, "disabled already");
        set_enabled(sub, false, at, DisabledReason::failing);
        sub.updated_at = at;
        return Ok{};
      });
    });
  }
  ApiRouter router(context, cluster_router ? &*cluster_router : nullptr);
  HttpServerOptions server_options;
  server_options.max_body_bytes = config.max_body_bytes;
  // One body of the largest size always fits, or such requests could never be served.
  server_options.max_body_memory = std::max(config.max_body_memory, config.max_body_bytes);
  server_options.max_connections = config.max_connections;
  HttpServer server(io, server_options,
                    HttpHandlers{[&router](HttpRequest request) { return router.handle(std::move(request)); },
                                 [&router](const HttpRequest& header) { return router.screen(header); },
                                 [&router](int status) { return router.reject(status); }},
                    logger, metrics);
  const auto endpoint = server.listen(config.listen_host, config.listen_port);

  asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    logger.info("shutting down", {{"signal", signal}, {"grace_ms", config.shutdown_grace_ms}});
    draining = true;
    if (cluster) cluster->leave();
    server.drain();
    cleaner.stop();
    jobs.stop();
    scheduler.drain(std::chrono::milliseconds(config.shutdown_grace_ms), [&io] { io.stop(); });
  });

  // relay_storage_bytes: sizing the files is disk work, for the pool.
  PeriodicTask storage_gauge(io, kStorageGaugeInterval, [&blocking_pool, &store = *store, &metrics] {
    asio::post(blocking_pool, [&store, &metrics] { metrics.set_storage_bytes(store.sst_bytes(), store.wal_bytes()); });
  });
  storage_gauge.start();
  if (cluster) {
    cluster->start(ClusterNode::Hooks{subscription_changed,
                                      [&scheduler](std::size_t live) { scheduler.set_shards(live); }});
  }
  scheduler.start(nullptr);
  gauges.start();
  cleaner.start();
  jobs.start();
  server.start();
  logger.info("listening", {{"address", endpoint.address().to_string()},
                            {"port", endpoint.port()},
                            {"data_dir", config.data_dir},
                            {"durability", config.sync_writes ? "fsync" : "buffered"},
                            {"subscriptions", subscriptions.size()}});
  io.run();
  if (cluster) cluster->finish();

  blocking_pool.join();
  pipeline.stop();
  logger.info("stopped");
  return 0;
}

}  // namespace relay
