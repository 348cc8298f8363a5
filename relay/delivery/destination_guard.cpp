#include "relay/delivery/destination_guard.h"

#include <ifaddrs.h>
#include <netinet/in.h>

#include <cstring>

namespace relay {
namespace {

using boost::asio::ip::address;
using boost::asio::ip::address_v4;
using boost::asio::ip::address_v6;

struct Range {
  Cidr network;
  std::string_view kind;
};

Range v4_range(unsigned a, unsigned b, unsigned c, unsigned d, unsigned prefix, std::string_view kind) {
  return {Cidr{address_v4((a << 24) | (b << 16) | (c << 8) | d), prefix}, kind};
}

// `leading` bytes, then zeros.
Range v6_range(std::initializer_list<unsigned> leading, unsigned prefix, std::string_view kind) {
  address_v6::bytes_type bytes{};
  std::size_t i = 0;
  for (unsigned b : leading) bytes[i++] = static_cast<unsigned char>(b);
  return {Cidr{address_v6(bytes), prefix}, kind};
}

std::optional<std::string_view> first_kind(const std::vector<Range>& ranges, const address& addr) {
  for (const Range& range : ranges) {
    if (range.network.contains(addr)) return range.kind;
  }
  return std::nullopt;
}

// IANA special-purpose IPv4 blocks that are not globally reachable. Order matters: the first
// match names the kind, so single addresses come before the blocks that hold them.
std::optional<std::string_view> v4_kind(const address_v4& addr) {
  static const std::vector<Range> ranges{
      v4_range(0, 0, 0, 0, 32, "unspecified"),
      v4_range(0, 0, 0, 0, 8, "reserved"),  // "this network"
      v4_range(10, 0, 0, 0, 8, "private"),
      v4_range(100, 64, 0, 0, 10, "cgnat"),  // also hosts some clouds' metadata (100.100.100.200)
      v4_range(127, 0, 0, 0, 8, "loopback"),
      v4_range(169, 254, 169, 254, 32, "metadata"),
      v4_range(169, 254, 0, 0, 16, "link-local"),
      v4_range(172, 16, 0, 0, 12, "private"),
      v4_range(192, 0, 0, 0, 24, "reserved"),  // IETF protocol assignments, 192.0.0.192 metadata
      v4_range(192, 168, 0, 0, 16, "private"),
      v4_range(198, 18, 0, 0, 15, "reserved"),  // benchmarking
      v4_range(224, 0, 0, 0, 4, "multicast"),
      v4_range(255, 255, 255, 255, 32, "broadcast"),
      v4_range(240, 0, 0, 0, 4, "reserved"),
  };
  return first_kind(ranges, address(addr));
}

address_v4 v4_at(const address_v6::bytes_type& bytes, std::size_t offset) {
  return address_v4(address_v4::bytes_type{bytes[offset], bytes[offset + 1], bytes[offset + 2],
                                            bytes[offset + 3]});
}

std::optional<std::string_view> v6_kind(const address_v6& addr) {
  if (addr.is_v4_mapped()) return v4_kind(make_address_v4(boost::asio::ip::v4_mapped, addr));  // ::ffff:a.b.c.d
  if (addr.is_unspecified()) return "unspecified";
  if (addr.is_loopback()) return "loopback";
  // Forms that carry an IPv4 address are judged by it: a NAT64 gateway or 6to4 relay would
  // otherwise forward to 127.0.0.1 or 10.x on our behalf.
  static const Range nat64 = v6_range({0x00, 0x64, 0xff, 0x9b}, 96, "");
  static const Range six_to_four = v6_range({0x20, 0x02}, 16, "");
  const address_v6::bytes_type b = addr.to_bytes();
  if (nat64.network.contains(address(addr))) return v4_kind(v4_at(b, 12));
  if (six_to_four.network.contains(address(addr))) return v4_kind(v4_at(b, 2));
  static const std::vector<Range> ranges{
      v6_range({0x00, 0x64, 0xff, 0x9b, 0x00, 0x01}, 48, "private"),
      v6_range({}, 96, "reserved"),            // deprecated IPv4-compatible ::a.b.c.d
      v6_range({0x01, 0x00}, 64, "reserved"),  // discard-only
      v6_range({0xfe, 0x80}, 10, "link-local"),
      v6_range({0xfe, 0xc0}, 10, "private"),  // deprecated site-local
      v6_range({0xfc}, 7, "unique-local"),
      v6_range({0xff}, 8, "multicast"),
  };
  return first_kind(ranges, address(addr));
}

// Interfaces change rarely (DHCP, a new container network); a second of staleness is the
// price of not asking the kernel on every connection.
constexpr auto kOwnAddressesRefresh = std::chrono::seconds(1);

}  // namespace

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
      out.emplace_back(unmap_v4(address(address_v6(bytes))));
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
  const address normalized = unmap_v4(addr);
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
