#pragma once
// Event payloads read on the blocking pool by the scheduler's loads and lane reloads. Ten
// subscriptions to one event park and reload separately: without it each reload reads (and, for
// an older backlog, decompresses) the same event again. Bounded in bytes (payloads go up to
// --max-body); those still held by in-memory deliveries are shared with them, not copied.
// Thread-safe: loads and the payload reads of enqueue() run on the pool at the same time.

#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "storage/store.h"

namespace relay {

class PayloadCache {
 public:
  explicit PayloadCache(std::size_t capacity_bytes = 8 << 20) : capacity_bytes_(capacity_bytes) {}

  // The event's payload, read from `store` unless cached; "null" for an event that is gone.
  std::shared_ptr<const std::string> get(Store& store, const std::string& event_id);

 private:
  const std::size_t capacity_bytes_;
  std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<const std::string>> by_event_;
  std::deque<std::string> order_;  // oldest first
  std::size_t bytes_ = 0;
};

}  // namespace relay
