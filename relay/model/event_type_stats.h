#pragma once
// How often an event type was published and when last (GET /v1/event-types).

#include <cstdint>
#include <string>

#include "relay/core/clock.h"

namespace relay {

struct EventTypeStats {
  std::string type;
  std::uint64_t count = 0;
  UnixMillis last_seen = 0;
};

}  // namespace relay
