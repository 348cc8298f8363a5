#pragma once
// Everything the API handlers depend on, passed in by the application so that any part can be
// built alone in a test.

#include <atomic>
#include <boost/asio/thread_pool.hpp>

#include "relay/config/config.h"
#include "relay/core/clock.h"
#include "relay/core/logger.h"
#include "relay/subscriptions/subscription_registry.h"
#include "storage/commit_pipeline.h"
#include "storage/failure_streaks.h"
#include "storage/keys.h"
#include "storage/store.h"

namespace relay {

class RelayMetrics;
class DeliveryScheduler;
class JobRunner;

struct ApiContext {
  const Config& config;
  const Clock& clock;
  Logger& logger;
  Store& store;
  CommitPipeline& pipeline;
  SubscriptionRegistry& subscriptions;
  keys::IdGenerator& ids;
  RelayMetrics& metrics;
  DeliveryScheduler& scheduler;
  boost::asio::thread_pool& blocking_pool;  // scans and point reads of the read API
  const std::atomic<bool>& draining;        // set on SIGTERM: ingress answers 503
  JobRunner& jobs;                          // replay and large DLQ retries (relay/delivery/job_runner.h)
  FailureStreaks& streaks;                  // writer thread: cleared when a subscription is enabled or deleted
};

}  // namespace relay
