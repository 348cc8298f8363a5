#pragma once
// The one place where relay's ids and RocksDB keys are encoded.
//
// Ids are 16 bytes: 6 bytes of Unix milliseconds, 4 bytes of instance id, 6 bytes of a
// per-process counter, all big-endian, so that byte order is creation order and an id names
// the instance that made it (spec section 4). As text an id is a prefix ("evt_", "sub_",
// "dlv_") and 32 lowercase hex digits, which sorts the same way.
//
// Keys are built from ids and big-endian integers so that RocksDB's bytewise order is time order:
//   meta (default)    "instance_id"            -> u32         part of every id made here
//                     "shard_name"             -> text        cluster mode: the shard this data
//                     "shard_number"           -> u32           directory belongs to (= instance_id)
//                     "cluster_subscriptions_revision" -> u64  etcd revision the subscriptions
//                                                              family reflects (cluster mode)
//   events            evt                      -> Event record
//   deliveries        dlv                      -> Delivery record
//   schedule          due_ms(8) dlv            -> sub         pending deliveries by due time
//   dead_letters      dead_at(8) dlv           -> sub         the dead-letter queue
//   completed         done_at(8) kind(1) id    -> ""          retention of succeeded deliveries
//                                                              and of events without deliveries
//   event_deliveries  evt dlv                  -> ""          deliveries of an event
//   attempts          dlv number(4)            -> Attempt record
//   subscriptions     sub                      -> Subscription record
//   idempotency       client id (text)         -> evt
//   event_types       type (text)              -> EventTypeStats record
//   jobs              job                      -> Job record
//   ordering_queues   sub key_len(2) key seq(8) -> dlv        unfinished deliveries of an ordering key
//   failure_streaks   sub                      -> since_ms(8)  subscriptions whose attempts all fail

#include <array>
#include <compare>
#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "relay/core/clock.h"

namespace relay::keys {

constexpr std::size_t kIdBytes = 16;
using RawId = std::array<char, kIdBytes>;

inline constexpr std::string_view kEventPrefix = "evt_";
inline constexpr std::string_view kSubscriptionPrefix = "sub_";
inline constexpr std::string_view kDeliveryPrefix = "dlv_";
inline constexpr std::string_view kJobPrefix = "job_";

// Keys of the meta family (above).
inline constexpr const char* kMetaInstanceId = "instance_id";
inline constexpr const char* kMetaShardName = "shard_name";
inline constexpr const char* kMetaShardNumber = "shard_number";
inline constexpr const char* kMetaSubscriptionsRevision = "cluster_subscriptions_revision";

// Makes unique, time-ordered ids. Thread-safe.
class IdGenerator {
 public:
  IdGenerator(const Clock& clock, std::uint32_t instance_id);
  std::string next(std::string_view prefix);

 private:
  const Clock& clock_;
  std::uint32_t instance_id_;
  std::atomic<std::uint64_t> counter_;
};

// The 16 raw bytes of a textual id with the expected prefix, or nullopt if it is not one.
std::optional<RawId> parse_id(std::string_view text, std::string_view prefix);
std::string format_id(std::string_view prefix, std::string_view raw);
// The creation time encoded in an id (textual, any prefix); 0 if it is not an id.
UnixMillis id_time(std::string_view text);
// The instance part of an id with the expected prefix (in cluster mode, the number of the shard
// that made it), or nullopt if it is not one.
std::optional<std::uint32_t> id_instance(std::string_view text, std::string_view prefix);

void append_u64(std::string& out, std::uint64_t value);
void append_u32(std::string& out, std::uint32_t value);
std::uint64_t read_u64(std::string_view bytes);
std::uint32_t read_u32(std::string_view bytes);

// Raw id bytes of an id that is known to be valid (it was made by relay).
std::string raw(std::string_view id);

std::string event_key(std::string_view event_id);
std::string delivery_key(std::string_view delivery_id);
std::string subscription_key(std::string_view subscription_id);
std::string job_key(std::string_view job_id);
// A failing subscription's key in `failure_streaks` (its raw id, like subscription_key) and the
// value: the start of its streak of failed attempts, 8 bytes big-endian.
std::string failure_streak_key(std::string_view subscription_id);
std::string encode_streak_start(UnixMillis since);
// nullopt when `value` is not 8 bytes.
std::optional<UnixMillis> decode_streak_start(std::string_view value);
std::string schedule_key(UnixMillis due, std::string_view delivery_id);
std::string dead_letter_key(UnixMillis dead_at, std::string_view delivery_id);

enum class CompletedKind : char { delivery = 'd', event = 'e' };
std::string completed_key(UnixMillis done_at, CompletedKind kind, std::string_view id);
std::string event_delivery_key(std::string_view event_id, std::string_view delivery_id);
std::string attempt_key(std::string_view delivery_id, std::uint32_t number);
// All keys of the ordering queue of (subscription, ordering key): the subscription's raw id, the
// key's length (2 bytes) and bytes. One entry is that prefix and a seq (8, big-endian).
std::string queue_prefix(std::string_view subscription_id, std::string_view ordering_key);
std::string queue_key(std::string_view subscription_id, std::string_view ordering_key, std::uint64_t seq);
struct QueueEntry {
  std::string subscription_id;  // "sub_..."
  std::string ordering_key;
  std::uint64_t seq = 0;
};
// nullopt when `key` is not one queue_key() made.
std::optional<QueueEntry> decode_queue_key(std::string_view key);
// All keys of a column family keyed by "<id> ..." for one id: [prefix, prefix_end).
std::string id_prefix(std::string_view id);
std::string prefix_end(std::string_view prefix);
// The smallest key of a time-ordered family at or after `t`.
std::string time_bound(UnixMillis t);
// The smallest raw id (a key of a family keyed by id) made at or after `t`.
std::string id_time_bound(UnixMillis t);

// Decoding of time-ordered keys: (time, textual id).
struct TimedKey {
  UnixMillis time = 0;
  std::string id;
};
TimedKey decode_schedule_key(std::string_view key);     // id as "dlv_..."

// A `schedule` key as a value: due time, then delivery id, ordered as their encoding is (textual
// ids sort as their bytes). An empty id is the first key of its millisecond, a bound; {0, ""} is
// below every key. Due times are never negative.
struct ScheduleKey {
  UnixMillis due = 0;
  std::string id;  // "dlv_..."

  friend auto operator<=>(const ScheduleKey&, const ScheduleKey&) = default;
  friend bool operator==(const ScheduleKey&, const ScheduleKey&) = default;
  std::string encode() const;
  static ScheduleKey decode(std::string_view key);
};
TimedKey decode_dead_letter_key(std::string_view key);  // id as "dlv_..."
struct CompletedEntry {
  UnixMillis time = 0;
  CompletedKind kind = CompletedKind::delivery;
  std::string id;  // "dlv_..." or "evt_..."
};
CompletedEntry decode_completed_key(std::string_view key);
std::string decode_event_delivery_key(std::string_view key);  // the "dlv_..." part

}  // namespace relay::keys
