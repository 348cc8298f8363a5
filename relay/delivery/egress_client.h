#pragma once
// The HTTP client that makes delivery attempts (spec section 3).
//
// libcurl's multi interface driven by the caller's Boost.Asio io_context: curl tells us which
// sockets to watch and when to wake it (CURLMOPT_SOCKETFUNCTION / CURLMOPT_TIMERFUNCTION), Asio
// waits, and curl_multi_socket_action does the I/O without blocking. Thousands of attempts share
// one thread and one connection cache, so keep-alive connections and HTTP/2 are reused across
// attempts to the same subscriber.
//
// Every address curl is about to connect to, after DNS, goes through a DestinationGuard; a
// refused one ends the attempt as blocked_destination without a packet being sent.
//
// Threading: construct, send(), cancel_all() and destroy on the io_context's thread (or while
// it is not running). The io_context must run on a single thread.

#include <boost/asio/io_context.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "relay/delivery/destination_guard.h"
#include "relay/model/delivery.h"

namespace relay {

struct EgressOptions {
  DestinationPolicy destinations;          // --allow-private-networks, --allow-cidr
  std::int64_t connect_timeout_ms = 5000;  // --connect-timeout
  std::size_t max_kept_body = 2048;        // response bytes kept for the attempt record
  std::size_t max_read_body = 1 << 20;     // read and dropped up to this, then the connection closes
  std::string user_agent = "relay/" RELAY_VERSION;
  // 0: no limit. Above it attempts queue inside curl, and their timeout runs while they wait.
  std::size_t max_connections_per_host = 0;
  // Idle connections kept open for reuse. curl's default (4 x the transfers running) shrinks
  // whenever fewer attempts run and closes connections a moment later needed again: measured,
  // one new connection per 5 deliveries while draining a backlog to one subscriber.
  std::size_t max_cached_connections = 1024;
};

struct EgressRequest {
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;  // sent as given, in order
  std::shared_ptr<const std::string> body;                     // POSTed; null means empty
  std::int64_t timeout_ms = 15000;                             // whole attempt, connect included
};

struct EgressResponse {
  AttemptOutcome outcome = AttemptOutcome::other;
  int http_status = 0;                     // 0 when no response status arrived
  std::string body_excerpt;                // first max_kept_body bytes of the response body
  std::string error;                       // detail for failures; empty on success
  std::int64_t duration_ms = 0;            // send() to completion, steady clock
  std::optional<std::string> retry_after;  // raw Retry-After header value, if any
  bool cancelled = false;                  // ended by cancel_all(), not by the network
};

class EgressClient {
 public:
  using Callback = std::function<void(EgressResponse)>;

  EgressClient(boost::asio::io_context& io, EgressOptions options);
  // Abandons transfers still running without calling their callbacks.
  ~EgressClient();
  EgressClient(const EgressClient&) = delete;
  EgressClient& operator=(const EgressClient&) = delete;

  // Starts a POST of request.body to request.url. `done` is called exactly once (unless the
  // client is destroyed first), always later through the io_context, never from inside send().
  void send(EgressRequest request, Callback done);

  // Attempts started and not yet completed. Readable from any thread.
  std::size_t in_flight() const;

  // Ends every running attempt now; each callback gets outcome `other` with cancelled = true.
  void cancel_all();

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;  // shared so that pending Asio handlers can detect its end
};

}  // namespace relay
