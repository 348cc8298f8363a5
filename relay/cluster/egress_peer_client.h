#pragma once
// EgressPeerClient: the PeerClient (peer_client.h) that relayd uses, over an EgressThread of its
// own: forwarded API calls neither wait behind deliveries nor count against --max-in-flight, and
// the destination guard, which protects subscribers' URLs, does not apply to the shards'
// --advertise addresses (the operator's own configuration, usually a private network).
//
// An answer is kept whole up to 64 MiB (a larger one is an error: no relay answer is that big).
// The shards' API answers JSON, so an answer with a body is given Content-Type
// application/json; Retry-After and X-Relay-Statuses (peer_client.h) are passed on.
//
// Threading: send() on the io_context's thread; it completes there.

#include <boost/asio/io_context.hpp>

#include "relay/cluster/peer_client.h"
#include "relay/delivery/egress_thread.h"

namespace relay::cluster {

class EgressPeerClient final : public PeerClient {
 public:
  explicit EgressPeerClient(boost::asio::io_context& io);

  boost::asio::awaitable<Result<PeerResponse>> send(std::string base_url, PeerRequest request,
                                                    std::chrono::milliseconds timeout) override;

 private:
  EgressThread egress_;
};

}  // namespace relay::cluster
