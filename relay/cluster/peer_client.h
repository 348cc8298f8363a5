#pragma once
// PeerClient: one HTTP call from this shard to another shard's API, for the API's cluster layer
// (relay/api/cluster_router.h). The application adapts the curl egress to it; tests answer from
// memory. Only the transport is here: which calls are forwarded, with which headers, is the
// cluster layer's business.

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "relay/core/result.h"

namespace relay::cluster {

using Headers = std::vector<std::pair<std::string, std::string>>;

// On a shard's answer to a batch of events that another shard forwarded (POST /v1/events/batch
// with X-Relay-Forwarded-By): the HTTP status that POST /v1/events would have answered for each
// event, in order, comma-separated ("202,200,400"): 202 stored, 200 a repeat of a client id, an
// error's status. The forwarding shard answers each event's producer from it
// (forward_coalescer.h).
inline constexpr std::string_view kStatusesHeader = "X-Relay-Statuses";

struct PeerRequest {
  std::string method;  // "GET", "POST", "DELETE", "PATCH"
  std::string target;  // path and query as received, e.g. "/v1/dlq?limit=10&cursor=..."
  std::string body;    // empty: none
  Headers headers;     // sent as given (Authorization, Content-Type, X-Relay-Forwarded-By, ...)
};

struct PeerResponse {
  int status = 0;
  std::string body;  // whole
  Headers headers;   // at least Content-Type, Retry-After and kStatusesHeader when the shard sent them
};

class PeerClient {
 public:
  virtual ~PeerClient() = default;

  // Sends `request` to the shard at `base_url` (its --advertise URL, without a trailing slash)
  // and completes with its answer, whatever the status, on the caller's executor. An error
  // (Errc::unavailable) when no answer arrived within `timeout`: connection refused, reset,
  // timed out. It never takes longer than `timeout` (plus scheduling).
  virtual boost::asio::awaitable<Result<PeerResponse>> send(std::string base_url, PeerRequest request,
                                                            std::chrono::milliseconds timeout) = 0;
};

}  // namespace relay::cluster
