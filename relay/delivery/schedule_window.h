#pragma once
// The part of the `schedule` family the scheduler mirrors in memory, and the loads that move it.
//
// Invariant: every schedule key below the cursor is in memory (waiting, ready or in flight),
// except those of a parked lane from its parked key on, which may be on disk only (a lane reload
// reads them back, in due order, up to the cursor). Keys at or above the cursor are on disk only;
// a global load reads the next ones, in key (= due time) order, on the blocking pool and moves the
// cursor past what it read. While a load runs, the window remembers what changed in the range it
// reads (keys that went away, deliveries that arrived above the old cursor, a lowered cursor) and
// reconciles them when the load lands, so that no key is lost or loaded twice.
//
// read_schedule() is the loader's scan; ScheduleWindow holds the cursor and the reconciliation.
// Which lane takes what is the scheduler's business (lane.h): a request carries each
// subscription's room, and a subscription without room costs a key comparison per key.

#include <cstddef>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <functional>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "relay/delivery/payload_cache.h"
#include "relay/model/delivery.h"
#include "storage/keys.h"
#include "storage/store.h"

namespace relay {

// A delivery in memory.
struct WindowItem {
  Delivery delivery;
  std::shared_ptr<const std::string> payload;
  bool in_flight = false;  // from dispatch until the attempt's record is written
};

// A delivery's key in `schedule`.
inline keys::ScheduleKey schedule_key_of(const Delivery& d) { return {d.next_attempt_at, d.id}; }

// What the loader reads. A global load reads [lower, upper) for every subscription; a lane
// reload reads the parked deliveries of one subscription below the cursor. Either way a
// subscription without room is reported with its first key left on disk, so that it parks there.
struct LoadRequest {
  keys::ScheduleKey lower;
  keys::ScheduleKey upper;
  std::size_t room = 0;  // items to read at most
  std::size_t lane_limit = 0;
  std::unordered_map<std::string, std::size_t> lane_room;  // by stored subscription key
  // The room of a subscription absent from lane_room, asked (on the loader's thread) when its
  // first key is met; unset: lane_limit. Lets a load cost what its range holds, not the number
  // of subscriptions.
  std::function<std::size_t(std::string_view stored_key)> room_of_unlisted;
  std::optional<std::string> only_subscription;            // stored key of the lane being reloaded
};

struct LoadResult {
  std::vector<std::pair<keys::ScheduleKey, WindowItem>> items;  // in key order
  keys::ScheduleKey next_cursor;                                // global load: where the next one starts
  bool reached_end = true;
  std::optional<std::string> reloaded_lane;                     // subscription id of a lane reload
  std::vector<std::pair<std::string, keys::ScheduleKey>> parked;  // (subscription id, first key left on disk)
};

// Runs on the blocking pool; reads the pending deliveries the request has room for, with their
// payloads. Visits at most 65,536 keys, so that a load's time on the pool stays bounded when most
// keys belong to lanes without room.
LoadResult read_schedule(Store& store, PayloadCache& payloads, LoadRequest request);

class ScheduleWindow {
 public:
  const keys::ScheduleKey& cursor() const { return cursor_; }
  // Whether the key is one memory mirrors (or a parked lane left on disk).
  bool covers(const keys::ScheduleKey& key) const { return key < cursor_; }
  bool loading() const { return loading_; }

  void begin_load() { loading_ = true; }
  // A key in memory went away (its delivery was recorded, expired or discarded).
  void removed(const keys::ScheduleKey& key);
  // A delivery that was not below the cursor when it arrived; a running load may have missed it.
  void arrived(keys::ScheduleKey key, WindowItem item);
  // Memory is full: `key` and what follows stay on disk for the loader.
  void lower_cursor(const keys::ScheduleKey& key);

  struct Landed {
    std::vector<std::pair<keys::ScheduleKey, WindowItem>> loaded;   // to admit, in key order
    std::vector<std::pair<std::string, keys::ScheduleKey>> parked;  // lanes to park, below the cursor
    std::vector<WindowItem> arrived;                                // to insert again, below the cursor
  };
  // Ends the running load: moves the cursor (a lane reload does not) and reconciles what
  // changed meanwhile. Loaded items whose key went away meanwhile are dropped.
  Landed land(LoadResult result);

 private:
  keys::ScheduleKey cursor_;  // below every key at first
  bool loading_ = false;
  std::set<keys::ScheduleKey> removed_while_loading_;
  std::vector<std::pair<keys::ScheduleKey, WindowItem>> arrived_while_loading_;
  std::optional<keys::ScheduleKey> lowered_while_loading_;
};

}  // namespace relay
