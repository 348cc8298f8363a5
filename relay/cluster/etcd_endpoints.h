#pragma once
// EtcdEndpoints: what EtcdClusterStore and its watch threads share about the etcd members: their
// client URLs, the one that answered last (tried first next time), and whether etcd was
// reachable at the last outcome. Thread-safe: the store's io thread and every watch thread
// update it.

#include <atomic>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "relay/core/logger.h"

namespace relay::cluster {

class EtcdEndpoints {
 public:
  EtcdEndpoints(std::vector<std::string> urls, Logger& logger) : urls_(std::move(urls)), logger_(logger) {}

  const std::vector<std::string>& urls() const { return urls_; }
  std::size_t preferred() const { return preferred_.load(std::memory_order_relaxed); }
  bool reachable() const { return reachable_.load(std::memory_order_relaxed); }

  // `index` served a request or a watch.
  void answered(std::size_t index) {
    preferred_.store(index, std::memory_order_relaxed);
    set_reachable(true, urls_[index]);
  }
  // No endpoint served; `why` is the last failure.
  void unreachable(std::string_view why) { set_reachable(false, why); }

 private:
  // The transitions are logged, not every failure: an etcd outage would otherwise log once per
  // request and once per watch reconnection.
  void set_reachable(bool value, std::string_view detail) {
    if (reachable_.exchange(value) == value) return;
    if (value) {
      logger_.info("etcd reachable", {{"endpoint", detail}});
    } else {
      logger_.warn("etcd unreachable", {{"error", detail}});
    }
  }

  const std::vector<std::string> urls_;
  Logger& logger_;
  std::atomic<std::size_t> preferred_{0};
  std::atomic<bool> reachable_{false};
};

}  // namespace relay::cluster
