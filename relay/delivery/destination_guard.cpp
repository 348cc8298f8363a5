#include "relay/delivery/destination_guard.h"

#include <ifaddrs.h>
#include <netinet/in.h>

#include <array>
#include <charconv>
#include <cstdint>
#include <cstring>

namespace relay {
namespace {

using boost::asio::ip::address;
using boost::asio::ip::address_v4;
using boost::asio::ip::address_v6;
using boost::asio::ip::make_address_v4;

struct V4Range {
  std::uint32_t network;
  unsigned prefix;
  std::string_view kind;
};

constexpr std::uint32_t v4(unsigned a, unsigned b, unsigned c, unsigned d) {
  return (a << 24) | (b << 16) | (c << 8) | d;
}

// IANA special-purpose IPv4 blocks that are not globally reachable. Order matters: the first
// match names the kind, so single addresses come before the blocks that hold them.
constexpr std::array<V4Range, 14> kV4Ranges{{
    {v4(0, 0, 0, 0), 32, "unspecified"},
    {v4(0, 0, 0, 0), 8, "reserved"},  // "this network"
    {v4(10, 0, 0, 0), 8, "private"},
    {v4(100, 64, 0, 0), 10, "cgnat"},  // also hosts some clouds' metadata (100.100.100.200)
    {v4(127, 0, 0, 0), 8, "loopback"},
    {v4(169, 254, 169, 254), 32, "metadata"},
    {v4(169, 254, 0, 0), 16, "link-local"},
    {v4(172, 16, 0, 0), 12, "private"},
    {v4(192, 0, 0, 0), 24, "reserved"},  // IETF protocol assignments, 192.0.0.192 metadata
    {v4(192, 168, 0, 0), 16, "private"},
    {v4(198, 18, 0, 0), 15, "reserved"},  // benchmarking
    {v4(224, 0, 0, 0), 4, "multicast"},
    {v4(255, 255, 255, 255), 32, "broadcast"},
    {v4(240, 0, 0, 0), 4, "reserved"},
}};

std::uint32_t v4_mask(unsigned prefix) {
  if (prefix == 0) return 0;  // a shift by 32 would be undefined
  return prefix >= 32 ? 0xFFFFFFFFu : ~(0xFFFFFFFFu >> prefix);
}

bool v4_in(std::uint32_t addr, std::uint32_t network, unsigned prefix) {
  return (addr & v4_mask(prefix)) == (network & v4_mask(prefix));
}

bool bytes_in(const address_v6::bytes_type& addr, const address_v6::bytes_type& network,
              unsigned prefix) {
  const unsigned full = prefix / 8;
  if (std::memcmp(addr.data(), network.data(), full) != 0) return false;
  const unsigned rest = prefix % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<unsigned char>(0xFF << (8 - rest));
  return (addr[full] & mask) == (network[full] & mask);
}

std::optional<std::string_view> v4_kind(const address_v4& addr) {
  const std::uint32_t value = addr.to_uint();
  for (const V4Range& range : kV4Ranges) {
    if (v4_in(value, range.network, range.prefix)) return range.kind;
  }
  return std::nullopt;
}

address_v6::bytes_type v6_bytes(std::initializer_list<unsigned> leading) {
  address_v6::bytes_type bytes{};
  std::size_t i = 0;
  for (unsigned b : leading) bytes[i++] = static_cast<unsigned char>(b);
  return bytes;
}

address_v4 v4_at(const address_v6::bytes_type& bytes, std::size_t offset) {
  return address_v4(address_v4::bytes_type{bytes[offset], bytes[offset + 1], bytes[offset + 2],
                                            bytes[offset + 3]});
}

std::optional<std::string_view> v6_kind(const address_v6& addr) {
  if (addr.is_v4_mapped()) return v4_kind(make_address_v4(boost::asio::ip::v4_mapped, addr));  // ::ffff:a.b.c.d
  if (addr.is_unspecified()) return "unspecified";
  if (addr.is_loopback()) return "loopback";
  const address_v6::bytes_type b = addr.to_bytes();
  // Forms that carry an IPv4 address are judged by it: a NAT64 gateway or 6to4 relay would
  // otherwise forward to 127.0.0.1 or 10.x on our behalf.
  if (bytes_in(b, v6_bytes({0x00, 0x64, 0xff, 0x9b}), 96)) return v4_kind(v4_at(b, 12));
  if (bytes_in(b, v6_bytes({0x20, 0x02}), 16)) return v4_kind(v4_at(b, 2));
  if (bytes_in(b, v6_bytes({0x00, 0x64, 0xff, 0x9b, 0x00, 0x01}), 48)) return "private";
  if (bytes_in(b, v6_bytes({}), 96)) return "reserved";  // deprecated IPv4-compatible ::a.b.c.d
  if (bytes_in(b, v6_bytes({0x01, 0x00}), 64)) return "reserved";  // discard-only
  if (bytes_in(b, v6_bytes({0xfe, 0x80}), 10)) return "link-local";
  if (bytes_in(b, v6_bytes({0xfe, 0xc0}), 10)) return "private";  // deprecated site-local
  if (bytes_in(b, v6_bytes({0xfc}), 7)) return "unique-local";
  if (bytes_in(b, v6_bytes({0xff}), 8)) return "multicast";
  return std::nullopt;
}

// IPv4-mapped IPv6 addresses compare as IPv4 so that one --allow-cidr covers both spellings.
address normalize(const address& addr) {
  if (addr.is_v6() && addr.to_v6().is_v4_mapped()) return make_address_v4(boost::asio::ip::v4_mapped, addr.to_v6());
  return addr;
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

// Interfaces change rarely (DHCP, a new container network); a second of staleness is the
// price of not asking the kernel on every connection.
constexpr auto kOwnAddressesRefresh = std::chrono::seconds(1);

Error cidr_error(std::string_view text, std::string_view why) {
  return make_error(Errc::invalid_field,
                    "invalid CIDR \"" + std::string(text) + "\": " + std::string(why));
}

}  // namespace

bool Cidr::contains(const address& addr) const {
  const address a = normalize(addr);
  if (a.is_v4() != network.is_v4()) return false;
  if (a.is_v4()) return v4_in(a.to_v4().to_uint(), network.to_v4().to_uint(), prefix_length);
  return bytes_in(a.to_v6().to_bytes(), network.to_v6().to_bytes(), prefix_length);
}

std::string Cidr::to_string() const {
  return network.to_string() + "/" + std::to_string(prefix_length);
}

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
  // compare against normalized addresses.
  if (network.is_v6() && network.to_v6().is_v4_mapped() && length >= 96) {
    network = make_address_v4(boost::asio::ip::v4_mapped, network.to_v6());
    length -= 96;
  }
  if (masked(network, length) != network) {
    return cidr_error(text, "host bits are set (did you mean the network address?)");
  }
  return Cidr{network, length};
}

std::optional<std::string_view> special_purpose_kind(const address& addr) {
  return addr.is_v4() ? v4_kind(addr.to_v4()) : v6_kind(addr.to_v6());
}

DestinationGuard::DestinationGuard(DestinationPolicy policy) : policy_(std::move(policy)) {}

std::vector<address> host_interface_addresses() {
  std::vector<address> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return out;
  for (const ifaddrs* entry = list; entry != nullptr; entry = entry->ifa_next) {
    const sockaddr* sa = entry->ifa_addr;
    if (sa == nullptr) continue;
    if (sa->sa_family == AF_INET) {
      sockaddr_in in{};
      std::memcpy(&in, sa, sizeof in);
      out.emplace_back(address_v4(ntohl(in.sin_addr.s_addr)));
    } else if (sa->sa_family == AF_INET6) {
      sockaddr_in6 in6{};
      std::memcpy(&in6, sa, sizeof in6);
      address_v6::bytes_type bytes;
      std::memcpy(bytes.data(), &in6.sin6_addr, bytes.size());
      out.emplace_back(normalize(address(address_v6(bytes))));
    }
  }
  ::freeifaddrs(list);
  return out;
}

bool DestinationGuard::is_own_address(const address& addr) const {
  const auto now = std::chrono::steady_clock::now();
  if (own_addresses_read_at_ == std::chrono::steady_clock::time_point{} ||
      now - own_addresses_read_at_ >= kOwnAddressesRefresh) {
    own_addresses_ = host_interface_addresses();
    own_addresses_read_at_ = now;
  }
  // Scope ids do not matter: the bytes name the interface address.
  const address plain = addr.is_v6() ? address(address_v6(addr.to_v6().to_bytes())) : addr;
  for (const address& own : own_addresses_) {
    if (own == plain) return true;
  }
  return false;
}

DestinationVerdict DestinationGuard::check(const address& addr) const {
  if (policy_.allow_private_networks) return {};
  const address normalized = normalize(addr);
  std::optional<std::string_view> kind = special_purpose_kind(normalized);
  if (!kind && is_own_address(normalized)) kind = "an address of this host";
  if (!kind) return {};
  for (const Cidr& cidr : policy_.allow_cidrs) {
    if (cidr.contains(addr)) return {};
  }
  return {false, addr.to_string() + " is " + std::string(*kind)};
}

DestinationVerdict DestinationGuard::check(const sockaddr* addr, socklen_t len) const {
  if (addr != nullptr && addr->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
    sockaddr_in in{};
    std::memcpy(&in, addr, sizeof in);
    return check(address(address_v4(ntohl(in.sin_addr.s_addr))));
  }
  if (addr != nullptr && addr->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
    sockaddr_in6 in6{};
    std::memcpy(&in6, addr, sizeof in6);
    address_v6::bytes_type bytes;
    std::memcpy(bytes.data(), &in6.sin6_addr, bytes.size());
    return check(address(address_v6(bytes, in6.sin6_scope_id)));
  }
  return {false, "not an IP address"};
}

}  // namespace relay
