#pragma once
// IP networks ("10.0.0.0/8", "fd00::/8"): what --allow-cidr takes, and what the egress guard's
// special-purpose ranges are made of.

#include <boost/asio/ip/address.hpp>
#include <string>
#include <string_view>

#include "relay/core/result.h"

namespace relay {

// An IPv4 or IPv6 network such as "10.0.0.0/8" or "fd00::/8".
struct Cidr {
  boost::asio::ip::address network;  // host bits are zero
  unsigned prefix_length = 0;

  // True when `addr` lies in the network. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are
  // matched as the IPv4 address they carry, so "127.0.0.0/8" also covers ::ffff:127.0.0.1.
  bool contains(const boost::asio::ip::address& addr) const;
  std::string to_string() const;  // canonical, e.g. "10.0.0.0/8"
};

// Parses "ADDR/LEN" (or a bare address, taken as a single host). Host bits set in ADDR are an
// error ("10.0.0.1/8") because they usually mean a typo in a flag. Errc::invalid_field on
// failure, with a message fit for the startup error line.
Result<Cidr> parse_cidr(std::string_view text);

// An IPv4-mapped IPv6 address (::ffff:a.b.c.d) as the IPv4 address it carries; others unchanged.
boost::asio::ip::address unmap_v4(const boost::asio::ip::address& addr);

}  // namespace relay
