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
#include <memory>
#include <string>

#include "relay/delivery/destination_guard.h"
#include "relay/delivery/egress.h"

namespace relay {

struct EgressOptions {
  DestinationPolicy destinations;          // --allow-private-networks, --allow-cidr
  std::int64_t connect_timeout_ms = 5000;  // --connect-timeout
  // --ca-file: a PEM bundle of the CAs that TLS subscribers' certificates must chain to, in
  // place of the system's; empty means the system's (Debian: ca-certificates).
  std::string ca_file;
  // A client certificate (PEM) and its private key (PEM, unencrypted) offered to TLS servers
  // that ask for one; empty: none. Used for etcd's --client-cert-auth, not for deliveries.
  std::string client_cert_file;
  std::string client_key_file;
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

class EgressClient final : public Egress {
 public:
  EgressClient(boost::asio::io_context& io, EgressOptions options);
  // Abandons transfers still running without calling their callbacks.
  ~EgressClient() override;
  EgressClient(const EgressClient&) = delete;
  EgressClient& operator=(const EgressClient&) = delete;

  // Callbacks run through the io_context given here.
  void send(EgressRequest request, Callback done) override;

  void cancel_all() override;

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;  // shared so that pending Asio handlers can detect its end
};

}  // namespace relay
