#pragma once
// An event as published by an internal service and kept until retention removes it.

#include <memory>
#include <string>

#include "relay/core/clock.h"

namespace relay {

struct Event {
  std::string id;          // "evt_..." (relay's id, time-ordered)
  std::string client_id;   // the publisher's id / Idempotency-Key, empty when none was given
  std::string type;        // e.g. "meeting.completed"
  std::string tenant;      // the customer it belongs to; empty: none (only tenant-less subscriptions match)
  std::string ordering_key;  // events sharing one are delivered in order (ordering "key"); empty: none
  // The payload as compact JSON text: exactly the body of every delivery attempt. Shared so
  // that the deliveries of one event do not copy it.
  std::shared_ptr<const std::string> payload;
  UnixMillis created_at = 0;
};

}  // namespace relay
