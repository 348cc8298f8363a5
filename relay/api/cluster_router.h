#pragma once
// ClusterRouter: the API router's cluster layer (spec section 7, "any shard answers any call";
// docs/cluster-routing.md). ApiRouter authenticates and scope-checks a request as on a single
// node, then hands it here with its route's ClusterPolicy and the route's handler; this decides
// whether the handler runs here, on another shard, or on every live shard, and puts the answers
// together:
//   by_id        the shard that the id's instance part names (storage/keys.h); 503
//                shard_unavailable when it is not live or does not answer in time
//   merge_list   every live shard, this one through its handler (no HTTP), merged by
//   event_types  relay/cluster/list_merge.h
//   redrive,     every live shard, this one first; answers added up by
//   replay       relay/cluster/bulk_merge.h
//                (a list or bulk answer names in "incomplete" the shards without an answer,
//                and the known shards that are not live)
//   ingest       the owner of the event's ordering key (else its client id) by rendezvous
//                hashing; events with neither stay here; single events for one owner are
//                coalesced into batches while one is in flight (relay/cluster/forward_coalescer.h);
//                a batch is split by owner
//
// A forwarded request carries X-Relay-Forwarded-By (this shard's name) and this shard's own API
// key, never the caller's; a shard serves a request that carries the header itself, whatever
// its policy, so a request crosses at most one hop even while two shards disagree on
// membership. With no other live shard every call is served here, exactly as on a single node.
//
// Threading: the io_context's thread, like ApiRouter.

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "metrics/relay_metrics.h"
#include "relay/api/cluster_policy.h"
#include "relay/api/route.h"
#include "relay/cluster/bulk_merge.h"
#include "relay/cluster/cluster_view.h"
#include "relay/cluster/forward_coalescer.h"
#include "relay/cluster/peer_client.h"
#include "relay/config/config.h"
#include "relay/core/logger.h"

namespace relay {

class ClusterRouter {
 public:
  static constexpr std::string_view kForwardedBy = "X-Relay-Forwarded-By";

  struct Options {
    std::chrono::milliseconds timeout{2000};  // --cluster-timeout: for each call to another shard
    std::string api_key;                      // sent to the other shards: peer_api_key(config)
    std::size_t max_body_bytes = 1 << 20;     // --max-body, the same on every shard: a batch's limit
    std::size_t forwards_in_flight = 1;       // per owner, before single events wait to be coalesced
  };

  // A route's handler on this shard.
  using LocalHandler = std::function<boost::asio::awaitable<HttpResponse>(const RouteRequest&)>;

  ClusterRouter(const cluster::ClusterView& view, cluster::PeerClient& peers, RelayMetrics& metrics, Logger& logger,
                Options options);

  // Answers `request` (authenticated, scope-checked, its query parsed) as `policy` says.
  boost::asio::awaitable<HttpResponse> handle(ClusterPolicy policy, const LocalHandler& local,
                                              const RouteRequest& request);

  // Whether another shard sent this request (it is then served here).
  static bool forwarded(const HttpRequest& request);

 private:
  // One shard's part of a call: its answer, or why there is none.
  struct Part {
    std::string shard;
    bool answered = false;
    int status = 0;
    std::string body;
    cluster::Headers headers;
    std::string error;
  };

  boost::asio::awaitable<HttpResponse> by_id(ClusterPolicy policy, const LocalHandler& local,
                                             const RouteRequest& request);
  boost::asio::awaitable<HttpResponse> merge_list(ClusterPolicy policy, const LocalHandler& local,
                                                  const RouteRequest& request);
  boost::asio::awaitable<HttpResponse> redrive(const LocalHandler& local, const RouteRequest& request);
  boost::asio::awaitable<HttpResponse> replay(const LocalHandler& local, const RouteRequest& request);
  boost::asio::awaitable<HttpResponse> ingest(const LocalHandler& local, const RouteRequest& request);
  boost::asio::awaitable<HttpResponse> ingest_batch(const LocalHandler& local, const RouteRequest& request);

  // The live shards other than this one, by name.
  std::vector<cluster::ShardInfo> others() const;
  // The names of the known shards that are not live (their parts of a list or bulk call are
  // missing), by name.
  std::vector<std::string> down() const;
  // `request` as this shard forwards it, with `body` in place of its own.
  cluster::PeerRequest peer_request(const HttpRequest& request, std::string body) const;
  // Sends `request` to `shard`, counted as `kind`; a failure is logged.
  boost::asio::awaitable<Part> call(cluster::ShardInfo shard, cluster::PeerRequest request,
                                    RelayMetrics::ForwardKind kind);
  // Runs the handler here, as a part.
  boost::asio::awaitable<Part> call_local(const LocalHandler& local, const RouteRequest& request);
  // Sends `requests[i]` to `shards[i]`, all at once and, with `local`, runs `local_request` here
  // too (its part first); the parts in that order.
  boost::asio::awaitable<std::vector<Part>> call_each(std::vector<cluster::ShardInfo> shards,
                                                      std::vector<cluster::PeerRequest> requests,
                                                      RelayMetrics::ForwardKind kind, const LocalHandler* local,
                                                      const RouteRequest* local_request);
  // The same request to every shard.
  boost::asio::awaitable<std::vector<Part>> call_all(std::vector<cluster::ShardInfo> shards,
                                                     cluster::PeerRequest request, RelayMetrics::ForwardKind kind,
                                                     const LocalHandler* local, const RouteRequest* local_request);

  // The answer to the caller of a part: its status, body and the headers worth keeping.
  static HttpResponse response_of(const Part& part);
  HttpResponse shard_unavailable(const Part& part) const;
  static cluster::ShardAnswer answer_of(const Part& part);
  // A part from another shard's answer, or from why there is none (logged).
  Part part_of(std::string shard, Result<cluster::PeerResponse> answer);

  const cluster::ClusterView& view_;
  cluster::PeerClient& peers_;
  RelayMetrics& metrics_;
  Logger& logger_;
  const Options options_;
  cluster::ForwardCoalescer coalescer_;
};

// The key a shard presents to the other shards: the first admin key of its configuration (the
// same Secret on every shard); empty when it has none (--insecure-no-auth).
std::string peer_api_key(const Config& config);

}  // namespace relay
