#include "relay/core/cidr.h"

#include <charconv>
#include <cstdint>
#include <cstring>

namespace relay {
namespace {

using boost::asio::ip::address;
using boost::asio::ip::address_v4;
using boost::asio::ip::address_v6;

std::uint32_t v4_mask(unsigned prefix) {
  if (prefix == 0) return 0;  // a shift by 32 would be undefined
  return prefix >= 32 ? 0xFFFFFFFFu : ~(0xFFFFFFFFu >> prefix);
}

bool bytes_in(const address_v6::bytes_type& addr, const address_v6::bytes_type& network, unsigned prefix) {
  const unsigned full = prefix / 8;
  if (std::memcmp(addr.data(), network.data(), full) != 0) return false;
  const unsigned rest = prefix % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<unsigned char>(0xFF << (8 - rest));
  return (addr[full] & mask) == (network[full] & mask);
}

// `addr` with every bit after the first `length` cleared.
address masked(const address& addr, unsigned length) {
  if (addr.is_v4()) return address_v4(addr.to_v4().to_uint() & v4_mask(length));
  address_v6::bytes_type b = addr.to_v6().to_bytes();
  for (unsigned bit = length; bit < 128; ++bit) {
    b[bit / 8] &= static_cast<unsigned char>(~(0x80u >> (bit % 8)));
  }
  return address_v6(b);
}

Error cidr_error(std::string_view text, std::string_view why) {
  return make_error(Errc::invalid_field, "invalid CIDR \"" + std::string(text) + "\": " + std::string(why));
}

}  // namespace

address unmap_v4(const address& addr) {
  if (addr.is_v6() && addr.to_v6().is_v4_mapped()) {
    return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, addr.to_v6());
  }
  return addr;
}

bool Cidr::contains(const address& addr) const {
  const address a = unmap_v4(addr);
  if (a.is_v4() != network.is_v4()) return false;
  if (a.is_v4()) return ((a.to_v4().to_uint() ^ network.to_v4().to_uint()) & v4_mask(prefix_length)) == 0;
  return bytes_in(a.to_v6().to_bytes(), network.to_v6().to_bytes(), prefix_length);
}

std::string Cidr::to_string() const { return network.to_string() + "/" + std::to_string(prefix_length); }

Result<Cidr> parse_cidr(std::string_view text) {
  const std::size_t slash = text.find('/');
  const std::string_view addr_text = text.substr(0, slash);
  boost::system::error_code ec;
  address network = boost::asio::ip::make_address(addr_text, ec);
  if (ec) return cidr_error(text, "not an IP address");
  if (network.is_v6() && network.to_v6().scope_id() != 0) {
    return cidr_error(text, "scope ids are not allowed");
  }
  const unsigned max_length = network.is_v4() ? 32 : 128;
  unsigned length = max_length;
  if (slash != std::string_view::npos) {
    const std::string_view len_text = text.substr(slash + 1);
    const char* end = len_text.data() + len_text.size();
    auto [ptr, err] = std::from_chars(len_text.data(), end, length);
    if (len_text.empty() || err != std::errc() || ptr != end || length > max_length) {
      return cidr_error(text, "prefix length must be 0-" + std::to_string(max_length));
    }
  }
  // ::ffff:10.0.0.0/104 is the IPv4 network 10.0.0.0/8; store it that way so contains() can
  // compare against unmapped addresses.
  if (network.is_v6() && network.to_v6().is_v4_mapped() && length >= 96) {
    network = unmap_v4(network);
    length -= 96;
  }
  if (masked(network, length) != network) {
    return cidr_error(text, "host bits are set (did you mean the network address?)");
  }
  return Cidr{network, length};
}

}  // namespace relay
