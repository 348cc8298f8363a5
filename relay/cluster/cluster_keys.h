#pragma once
// The one place where cluster mode's etcd keys and values are encoded (docs/cluster.md, "Key
// layout"). Everything lives under a prefix P (--cluster-prefix, "/relay/" by default), so that
// several clusters can share one etcd:
//
//   P shards/names/<name>        {"number": N}                 permanent: a name keeps its number
//   P shards/numbers/<N:010>     {"name": "<name>"}            permanent: a number is never reused
//   P shards/live/<name>         {"name", "number", "advertise", "started_at"}   on a 10 s lease
//   P subscriptions/<sub_id>     the subscription's stored JSON record (storage/records.h
//                                to_record), secrets included
//
// Numbers are zero-padded to 10 digits (every uint32) so that etcd's byte order is number order.
// Decoders take any bytes: what is not one valid value is nullopt (logged by the caller).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "relay/core/clock.h"

namespace relay::cluster {

// `[a-z0-9-]{1,63}`, the --shard flag's form (a DNS label without the rules on hyphens).
bool is_valid_shard_name(std::string_view name);

// A shard as the live registry shows it.
struct LiveShard {
  std::string name;
  std::uint32_t number = 0;
  std::string advertise;  // base URL of its API
  UnixMillis started_at = 0;

  friend bool operator==(const LiveShard&, const LiveShard&) = default;
};

class ClusterKeys {
 public:
  // `prefix` gets a trailing '/' when it has none.
  explicit ClusterKeys(std::string prefix);

  const std::string& prefix() const { return prefix_; }

  // Every key of the shard registry (names, numbers and live), for one range and one watch.
  std::string shards() const { return prefix_ + "shards/"; }
  std::string shard_names() const { return prefix_ + "shards/names/"; }
  std::string shard_name(std::string_view name) const;
  std::string shard_numbers() const { return prefix_ + "shards/numbers/"; }
  std::string shard_number(std::uint32_t number) const;
  std::string live_shards() const { return prefix_ + "shards/live/"; }
  std::string live_shard(std::string_view name) const;
  std::string subscriptions() const { return prefix_ + "subscriptions/"; }
  std::string subscription(std::string_view id) const;

  // The part of `key` after `prefix` (one of the prefixes above); nullopt when `key` is not under
  // it or the rest is empty.
  static std::optional<std::string_view> suffix(std::string_view key, std::string_view prefix);
  // The number of a shard_number() key's suffix: ten digits, at least 1.
  static std::optional<std::uint32_t> parse_number(std::string_view suffix);

 private:
  std::string prefix_;
};

// Values of the registry's keys.
std::string encode_name_value(std::uint32_t number);               // names/<name>
std::optional<std::uint32_t> decode_name_value(std::string_view value);
std::string encode_number_value(std::string_view name);            // numbers/<N>
std::optional<std::string> decode_number_value(std::string_view value);
std::string encode_live_value(const LiveShard& shard);              // live/<name>
std::optional<LiveShard> decode_live_value(std::string_view value);

}  // namespace relay::cluster
