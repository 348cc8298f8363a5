#pragma once
// Egress safety (spec section 3): decides whether a resolved address may be contacted.
//
// relay POSTs to URLs that API users choose, so without this check anyone with an admin key
// could make relayd reach loopback services, the cloud metadata endpoint or the private
// network. The check runs on every address curl is about to connect to (after DNS), so a
// public-looking hostname that resolves to 127.0.0.1 is refused too.

#include <sys/socket.h>

#include <boost/asio/ip/address.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "relay/core/cidr.h"

namespace relay {

// Why an address is not a public unicast destination, e.g. "loopback" or "metadata";
// nullopt for an ordinary public address. IPv4-mapped and other IPv4-embedding IPv6 forms
// (NAT64 64:ff9b::/96, 6to4 2002::/16) are judged by the IPv4 address inside.
std::optional<std::string_view> special_purpose_kind(const boost::asio::ip::address& addr);

// The configured policy: --allow-private-networks and --allow-cidr.
struct DestinationPolicy {
  bool allow_private_networks = false;
  std::vector<Cidr> allow_cidrs;
};

struct DestinationVerdict {
  bool allowed = true;
  std::string reason;  // when refused: "127.0.0.1 is loopback"
};

// Besides the special-purpose ranges, every address of this host's own interfaces is refused
// like loopback: a connection to the host's public address reaches the same local services.
// The interface list (getifaddrs) is cached for a second, so check() is cheap per connection.
// Not thread-safe (check() refreshes the cache): one guard per thread, as in EgressClient.
class DestinationGuard {
 public:
  explicit DestinationGuard(DestinationPolicy policy);

  DestinationVerdict check(const boost::asio::ip::address& addr) const;
  // For a sockaddr handed over by curl; anything but AF_INET/AF_INET6 is refused.
  DestinationVerdict check(const sockaddr* addr, socklen_t len) const;

 private:
  // Whether `addr` (normalized) is an address of one of this host's interfaces.
  bool is_own_address(const boost::asio::ip::address& addr) const;

  DestinationPolicy policy_;
  mutable std::vector<boost::asio::ip::address> own_addresses_;
  mutable std::chrono::steady_clock::time_point own_addresses_read_at_{};
};

// The addresses of this host's interfaces (getifaddrs), IPv6 without scope ids; empty if unreadable.
std::vector<boost::asio::ip::address> host_interface_addresses();

}  // namespace relay
