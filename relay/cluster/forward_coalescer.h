#pragma once
// ForwardCoalescer: single events (POST /v1/events) that this shard forwards to the shard owning
// their key (relay/api/cluster_ingest.cpp), coalesced per owner, group-commit style. While no
// forward to an owner is in flight, an event goes at once, alone, exactly as it came: no added
// latency at low load. While one is in flight, the events for that owner wait, and when it
// returns they go together as one POST /v1/events/batch (up to 1000 events and the owner's
// --max-body). On 3 shards on one 2-core machine (benchmarks/RESULTS.md, the cluster scenario)
// 4.6 events shared a request and the shards' CPU per forwarded event fell by about a fifth (the
// egress thread's share by half); with three times the producers, 12.5 and two fifths. The rest
// of a forwarded event's cost is the receiving shard's handling of the producer's request and
// the owner's commit, which batching does not remove.
// One request in flight per owner coalesced best: 4.6 events per request, against 2.5 with two
// and 1.4 with four, for no less CPU.
//
// Each producer gets the answer POST /v1/events would have given it: the batch answer's result
// for its event as the body, and as the status the one the owner names for it in
// X-Relay-Statuses (peer_client.h): 202, 200 for a repeat of a client id, or an error's. A batch
// refused whole:
//   400, 404, 405, 413, 415   about the batch as a request (a body over --max-body, a payload
//                             nested too deep for a batch element...): each event is sent
//                             again alone, in order, and gets its own answer
//   any other (401, 429, 503) what a single event would have been told too: each producer
//                             gets that status, body and Retry-After
// No answer within the timeout: every producer of the batch, and every producer still waiting
// for that owner, gets the error (the router answers 503 shard_unavailable). An event that waits
// longer than the timeout for its turn gets it too, without having been sent.
//
// Order: an owner stores a batch's events in the order they arrived here, and a producer that
// posts the events of one ordering key in sequence waits for each answer, given after the
// owner's commit, before it posts the next; so no two events of one producer's key are ever in
// flight at once, in one batch or in two, and coalescing cannot reorder them.
//
// Threading: the io_context's thread, like the router that calls it.

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "metrics/relay_metrics.h"
#include "relay/cluster/cluster_view.h"
#include "relay/cluster/peer_client.h"
#include "relay/core/result.h"

namespace relay::cluster {

class ForwardCoalescer {
 public:
  struct Options {
    std::chrono::milliseconds timeout{2000};  // --cluster-timeout: of each request, and of a wait for a turn
    std::size_t max_in_flight = 1;            // requests in flight to one owner before events wait (1: see above)
    std::size_t max_batch_bytes = 1 << 20;    // a batch's body at most: the owners' --max-body
    std::size_t max_batch_events = 1000;      // the contract's largest batch
  };

  // Counts each request it sends in relay_cluster_forwarded_requests_total{kind="ingest"} and
  // each event in relay_cluster_forwarded_events_total.
  ForwardCoalescer(PeerClient& peers, RelayMetrics& metrics, Options options);

  // Forwards `event`, a POST /v1/events as this shard sends it to `owner` (the headers of
  // ClusterRouter's forwards; its body a valid event object), and answers as the owner would
  // have answered it alone; an error when the owner did not answer in time. With `batchable`
  // false (an Idempotency-Key header, which a batch element cannot carry) it is sent alone.
  boost::asio::awaitable<Result<PeerResponse>> forward(ShardInfo owner, PeerRequest event, bool batchable);

 private:
  struct Waiter;
  struct Owner {
    std::string name;
    std::string base_url;  // as the latest forward saw it
    std::size_t in_flight = 0;
    std::deque<std::shared_ptr<Waiter>> queue;  // in arrival order
  };

  // Sends the batch that `leader` heads (it and the events behind it that fit) and hands each
  // waiter its answer; `leader`'s own is returned.
  boost::asio::awaitable<Result<PeerResponse>> lead(Owner& owner, std::shared_ptr<Waiter> leader);
  // The answers to `batch`'s events, in order: one request, or one each when refused whole.
  boost::asio::awaitable<std::vector<Result<PeerResponse>>> send_batch(
      const std::string& base_url, const std::vector<std::shared_ptr<Waiter>>& batch);
  boost::asio::awaitable<Result<PeerResponse>> send_alone(const std::string& base_url, PeerRequest event);
  // A request to `owner` ended; `lost`: without an answer, and why. The next waiters lead or,
  // when lost, every waiter gets that error.
  void finish(Owner& owner, const Error* lost);

  PeerClient& peers_;
  RelayMetrics& metrics_;
  Options options_;
  std::map<std::string, Owner, std::less<>> owners_;  // by shard name; a node never moves
};

// The answers to the events of a batch, from the owner's 200 answer `batch` to `count` events:
// each result with the status X-Relay-Statuses names for it (an owner that sends no statuses:
// 202 for a result, 400 for an error); nullopt when the answer is not such a batch answer.
std::optional<std::vector<PeerResponse>> coalesced_answers(const PeerResponse& batch, std::size_t count);

}  // namespace relay::cluster
