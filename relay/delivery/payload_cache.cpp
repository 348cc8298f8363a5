#include "relay/delivery/payload_cache.h"

#include "storage/queries.h"

namespace relay {

std::shared_ptr<const std::string> PayloadCache::get(Store& store, const std::string& event_id) {
  {
    std::lock_guard lock(mutex_);
    if (const auto it = by_event_.find(event_id); it != by_event_.end()) return it->second;
  }
  // Read without the lock: the pool's threads read at the same time.
  auto event = queries::event(store, event_id);
  auto payload = event ? event->payload : std::make_shared<const std::string>("null");
  std::lock_guard lock(mutex_);
  if (!by_event_.emplace(event_id, payload).second) return payload;  // read twice meanwhile
  order_.push_back(event_id);
  bytes_ += payload->size();
  while (bytes_ > capacity_bytes_ && order_.size() > 1) {
    const auto oldest = by_event_.find(order_.front());
    bytes_ -= oldest->second->size();
    by_event_.erase(oldest);
    order_.pop_front();
  }
  return payload;
}

}  // namespace relay
