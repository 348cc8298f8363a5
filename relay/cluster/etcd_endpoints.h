#pragma once
// EtcdEndpoints: what EtcdClusterStore and its watch threads share about the etcd members: their
// client URLs, the one that answered last (tried first next time), and whether etcd was
// reachable (answered and accepted relay's credentials) at the last outcome. Thread-safe: the store's io thread and every watch thread
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
  // `index` did not answer: when it is the one tried first, the next call or watch starts at
  // the one after it, so that a member that swallows requests is not every call's first try.
  void failed(std::size_t index) {
    std::size_t expected = index;
    preferred_.compare_exchange_strong(expected, (index + 1) % urls_.size(), std::memory_order_relaxed);
  }
  // No endpoint served; `why` is the last failure.
  void unreachable(std::string_view why) { set_reachable(false, why); }
  // etcd answered but refused relay's credentials (a wrong password, an unknown user): as
  // useless as no answer, and a configuration error the operator must hear about.
  // Logged once until etcd accepts them again, also when etcd was never reachable before.
  void refused(std::string_view why) {
    reachable_.store(false);
    if (!refused_.exchange(true)) logger_.error("etcd refuses relay's credentials", {{"error", why}});
  }

 private:
  // The transitions are logged, not every failure: an etcd outage would otherwise log once per
  // request and once per watch reconnection.
  void set_reachable(bool value, std::string_view detail) {
    if (value) refused_.store(false);
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
  std::atomic<bool> refused_{false};
};

}  // namespace relay::cluster
