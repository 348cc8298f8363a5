#pragma once
// Where a route runs in cluster mode (spec section 7: any shard answers any call): the column of
// the route table (relay/api/api_router.cpp) that the cluster layer (relay/api/cluster_router.h)
// reads. docs/cluster-routing.md says the same for operators.

#include <string_view>

#include "relay/cluster/list_merge.h"

namespace relay {

struct ClusterPolicy {
  enum class Mode {
    local,         // served where it arrives: health, metrics, subscriptions (etcd keeps every
                   // shard's copy; writes go to etcd), and every request another shard forwarded
    by_id,         // forwarded to the shard that the {id} names
    merge_list,    // asked of every live shard with the same query; pages merged in list order
    event_types,   // asked of every live shard; counts summed by type
    redrive,       // POST /v1/dlq/retry on every live shard; counts added up
    replay,        // POST /v1/subscriptions/{id}/replay on every live shard; jobs listed
    ingest,        // POST /v1/events: stored on the shard that owns its ordering key or client id
    ingest_batch,  // POST /v1/events/batch: split by owner, answers put back in request order
  };
  Mode mode = Mode::local;
  std::string_view id_prefix = {};                        // by_id: "evt_", "dlv_", "job_"
  cluster::ListKind list = cluster::ListKind::deliveries;  // merge_list
};

constexpr ClusterPolicy by_id(std::string_view id_prefix) { return {ClusterPolicy::Mode::by_id, id_prefix}; }
constexpr ClusterPolicy merged_list(cluster::ListKind list) { return {ClusterPolicy::Mode::merge_list, {}, list}; }
constexpr ClusterPolicy on_every_shard(ClusterPolicy::Mode mode) { return {mode}; }
constexpr ClusterPolicy on_owner(ClusterPolicy::Mode mode) { return {mode}; }

}  // namespace relay
