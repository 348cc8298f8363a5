#pragma once
// ClusterView: what the API's cluster layer (relay/api/cluster_router.h) needs to know about the
// cluster, and nothing more: this shard, the live shards, the shard an id's number names, and
// the shard that owns a routing key. The application adapts the shard directory and rendezvous
// hashing to it; tests give a fixed cluster.
//
// Threading: called on the io_context's thread; answers are copies, so that a membership change
// between two calls never invalidates what the caller holds.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace relay::cluster {

struct ShardInfo {
  std::string name;      // --shard, [a-z0-9-]{1,63}
  std::uint32_t number = 0;  // allocated once in etcd; the instance part of every id it makes
  std::string base_url;  // --advertise: where the other shards reach its API, e.g. "http://10.0.0.5:8080"
  bool live = false;     // registered with a lease that etcd still keeps
};

class ClusterView {
 public:
  virtual ~ClusterView() = default;

  // This shard.
  virtual ShardInfo self() const = 0;
  // Every live shard, this one included when it is registered (callers add it anyway).
  virtual std::vector<ShardInfo> live_shards() const = 0;
  // Every shard that was given a number, live or not: a list or bulk call names those that are
  // not live as missing from its answer. (A directory that knows only the live shards may
  // answer live_shards(): their missing parts then go unmentioned.)
  virtual std::vector<ShardInfo> known_shards() const = 0;
  // The shard that was given `number`, live or not; nullopt when no shard ever was (an id made
  // before cluster mode, or not by relay at all).
  virtual std::optional<ShardInfo> shard_by_number(std::uint32_t number) const = 0;
  // The live shard that owns `key` (an event's ordering key or client id) by rendezvous hashing
  // over the live shards' names; nullopt when no shard is live.
  virtual std::optional<ShardInfo> owner(std::string_view key) const = 0;
};

}  // namespace relay::cluster
