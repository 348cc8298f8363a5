#pragma once
// What a delivery attempt sends and gets back, and the interface that makes attempts.
//
// Two implementations: EgressClient (libcurl on the caller's io_context) and EgressThread (an
// EgressClient on a thread of its own). The scheduler depends only on this interface.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "relay/model/delivery.h"

namespace relay {

// Deliveries POST; the other methods serve relay's own HTTP calls (etcd's gateway, API calls
// forwarded between shards).
enum class HttpMethod { post, get, put, patch, del };

struct EgressRequest {
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;  // sent as given, in order
  std::shared_ptr<const std::string> body;  // null means empty; GET sends none, nor DELETE when empty
  std::int64_t timeout_ms = 15000;          // whole attempt, connect included
  std::int64_t connect_timeout_ms = 0;      // connecting (TLS handshake included); 0: the client's
  HttpMethod method = HttpMethod::post;
  // Response headers to return besides Retry-After (relay's own calls: a shard's batch answer
  // names each event's status in one); deliveries ask for none.
  std::vector<std::string> response_headers;
};

struct EgressResponse {
  AttemptOutcome outcome = AttemptOutcome::other;
  int http_status = 0;                     // 0 when no response status arrived
  std::string body_excerpt;                // first max_kept_body bytes of the response body
  std::string error;                       // detail for failures; empty on success
  std::int64_t duration_ms = 0;            // start of the transfer to its end, steady clock
  std::optional<std::string> retry_after;  // raw Retry-After header value, if any
  std::vector<std::pair<std::string, std::string>> headers;  // of request.response_headers, if sent
  bool cancelled = false;                  // ended by cancel_all(), not by the network
};

class Egress {
 public:
  using Callback = std::function<void(EgressResponse)>;

  virtual ~Egress() = default;

  // Starts request.method (POST: of request.body) to request.url. `done` is called exactly
  // once (unless the egress is destroyed first), always later through the caller's io_context,
  // never from inside send().
  virtual void send(EgressRequest request, Callback done) = 0;

  // Ends every running attempt; each callback gets outcome `other` with cancelled = true.
  virtual void cancel_all() = 0;
};

}  // namespace relay
