#pragma once
// PeerClient: one HTTP call from this shard to another shard's API, for the API's cluster layer
// (relay/api/cluster_router.h). The application adapts the curl egress to it; tests answer from
// memory. Only the transport is here: which calls are forwarded, with which headers, is the
// cluster layer's business.

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "relay/core/result.h"

namespace relay::cluster {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct PeerRequest {
  std::string method;  // "GET", "POST", "DELETE", "PATCH"
  std::string target;  // path and query as received, e.g. "/v1/dlq?limit=10&cursor=..."
  std::string body;    // empty: none
  Headers headers;     // sent as given (Authorization, Content-Type, X-Relay-Forwarded-By, ...)
};

struct PeerResponse {
  int status = 0;
  std::string body;  // whole
  Headers headers;   // at least Content-Type and Retry-After when the shard sent them
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
