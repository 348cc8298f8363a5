#include "relay/delivery/destination_guard.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <optional>
#include <string>

namespace relay {
namespace destination_guard_test {

using boost::asio::ip::make_address;

DestinationGuard default_guard() { return DestinationGuard(DestinationPolicy{}); }

Cidr cidr(const std::string& text) {
  Result<Cidr> parsed = parse_cidr(text);
  EXPECT_TRUE(parsed.ok()) << text;
  return parsed.ok() ? parsed.value() : Cidr{};
}

TEST(DestinationGuard, RefusesEverySpecialPurposeRangeByDefault) {
  const DestinationGuard guard = default_guard();
  for (const char* text : {
           "127.0.0.1", "127.255.255.254", "10.0.0.1", "10.255.255.255", "172.16.0.1",
           "172.31.255.255", "192.168.1.1", "100.64.0.1", "100.127.255.254", "169.254.1.1",
           "169.254.169.254", "224.0.0.1", "239.255.255.250", "0.0.0.0", "0.1.2.3",
           "255.255.255.255", "240.0.0.1", "192.0.0.192", "198.18.0.1",
           "::", "::1", "fe80::1", "febf::1", "fc00::1", "fd00:ec2::254", "ff02::1", "fec0::1",
           "::ffff:127.0.0.1", "::ffff:10.1.2.3", "::ffff:169.254.169.254", "::ffff:0.0.0.0",
           "64:ff9b::7f00:1", "2002:7f00:1::1", "2002:a00:1::", "::7f00:1", "100::1",
       }) {
    EXPECT_FALSE(guard.check(make_address(text)).allowed) << text;
  }
}

// The host's own addresses reach its local services like loopback does. Checked with an
// address of this machine that is not special-purpose (so no other rule refuses it); a machine
// with only loopback and private addresses has nothing to show.
TEST(DestinationGuard, RefusesAnAddressOfThisHostUnlessAllowed) {
  std::optional<boost::asio::ip::address> own;
  for (const auto& addr : host_interface_addresses()) {
    if (!special_purpose_kind(addr)) own = addr;
  }
  if (!own) GTEST_SKIP() << "this machine has no interface address outside the special-purpose ranges";

  const DestinationVerdict verdict = default_guard().check(*own);
  EXPECT_FALSE(verdict.allowed) << own->to_string();
  EXPECT_EQ(verdict.reason, own->to_string() + " is an address of this host");
  if (own->is_v4()) {
    EXPECT_FALSE(default_guard().check(make_address("::ffff:" + own->to_string())).allowed);
  }

  DestinationPolicy with_cidr;
  with_cidr.allow_cidrs.push_back(cidr(own->to_string()));
  EXPECT_TRUE(DestinationGuard(with_cidr).check(*own).allowed);
  DestinationPolicy private_networks;
  private_networks.allow_private_networks = true;
  EXPECT_TRUE(DestinationGuard(private_networks).check(*own).allowed);
}

TEST(DestinationGuard, AllowsPublicUnicast) {
  const DestinationGuard guard = default_guard();
  for (const char* text : {"1.1.1.1", "8.8.8.8", "93.184.216.34", "172.15.255.255", "172.32.0.1",
                           "100.63.255.255", "100.128.0.1", "169.253.1.1", "192.169.0.1",
                           "223.255.255.255", "2606:4700:4700::1111", "2a00:1450:4001::1",
                           "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"}) {
    EXPECT_TRUE(guard.check(make_address(text)).allowed) << text;
  }
}

TEST(DestinationGuard, ReasonNamesTheKind) {
  const DestinationGuard guard = default_guard();
  EXPECT_EQ(guard.check(make_address("127.0.0.1")).reason, "127.0.0.1 is loopback");
  EXPECT_EQ(guard.check(make_address("169.254.169.254")).reason, "169.254.169.254 is metadata");
  EXPECT_EQ(guard.check(make_address("169.254.0.1")).reason, "169.254.0.1 is link-local");
  EXPECT_EQ(guard.check(make_address("100.64.0.1")).reason, "100.64.0.1 is cgnat");
  EXPECT_EQ(guard.check(make_address("::")).reason, ":: is unspecified");
  EXPECT_EQ(guard.check(make_address("fd12::1")).reason, "fd12::1 is unique-local");
  EXPECT_EQ(guard.check(make_address("255.255.255.255")).reason, "255.255.255.255 is broadcast");
  EXPECT_TRUE(guard.check(make_address("8.8.8.8")).reason.empty());
}

TEST(DestinationGuard, AllowPrivateNetworksAllowsEverything) {
  const DestinationGuard guard(DestinationPolicy{true, {}});
  for (const char* text : {"127.0.0.1", "169.254.169.254", "::1", "10.0.0.1", "8.8.8.8"}) {
    EXPECT_TRUE(guard.check(make_address(text)).allowed) << text;
  }
}

TEST(DestinationGuard, AllowCidrAllowsOnlyMatchingAddresses) {
  const DestinationGuard guard(DestinationPolicy{false, {cidr("127.0.0.0/8"), cidr("fd00::/8")}});
  EXPECT_TRUE(guard.check(make_address("127.0.0.1")).allowed);
  EXPECT_TRUE(guard.check(make_address("127.10.0.1")).allowed);
  EXPECT_TRUE(guard.check(make_address("::ffff:127.0.0.1")).allowed);  // mapped form of an allowed one
  EXPECT_TRUE(guard.check(make_address("fd12:3456::1")).allowed);
  EXPECT_FALSE(guard.check(make_address("::1")).allowed);
  EXPECT_FALSE(guard.check(make_address("10.0.0.1")).allowed);
  EXPECT_FALSE(guard.check(make_address("fc00::1")).allowed);
  EXPECT_FALSE(guard.check(make_address("169.254.169.254")).allowed);
}

TEST(DestinationGuard, AllowCidrForASingleHost) {
  const DestinationGuard guard(DestinationPolicy{false, {cidr("10.1.2.3")}});
  EXPECT_TRUE(guard.check(make_address("10.1.2.3")).allowed);
  EXPECT_FALSE(guard.check(make_address("10.1.2.4")).allowed);
}

TEST(DestinationGuard, ChecksSockaddrs) {
  const DestinationGuard guard = default_guard();
  sockaddr_in in{};
  in.sin_family = AF_INET;
  ASSERT_EQ(inet_pton(AF_INET, "127.0.0.1", &in.sin_addr), 1);
  EXPECT_FALSE(guard.check(reinterpret_cast<const sockaddr*>(&in), sizeof in).allowed);
  ASSERT_EQ(inet_pton(AF_INET, "8.8.4.4", &in.sin_addr), 1);
  EXPECT_TRUE(guard.check(reinterpret_cast<const sockaddr*>(&in), sizeof in).allowed);

  sockaddr_in6 in6{};
  in6.sin6_family = AF_INET6;
  ASSERT_EQ(inet_pton(AF_INET6, "::ffff:192.168.0.1", &in6.sin6_addr), 1);
  EXPECT_FALSE(guard.check(reinterpret_cast<const sockaddr*>(&in6), sizeof in6).allowed);
  ASSERT_EQ(inet_pton(AF_INET6, "2606:4700::1", &in6.sin6_addr), 1);
  EXPECT_TRUE(guard.check(reinterpret_cast<const sockaddr*>(&in6), sizeof in6).allowed);

  sockaddr other{};
  other.sa_family = AF_UNIX;
  EXPECT_FALSE(guard.check(&other, sizeof other).allowed);
  EXPECT_FALSE(guard.check(reinterpret_cast<const sockaddr*>(&in), 4).allowed);  // truncated
}

TEST(DestinationCidr, ParsesV4AndV6) {
  Result<Cidr> a = parse_cidr("10.0.0.0/8");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->to_string(), "10.0.0.0/8");
  Result<Cidr> b = parse_cidr("fd00::/8");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->to_string(), "fd00::/8");
  Result<Cidr> host = parse_cidr("192.168.1.7");
  ASSERT_TRUE(host.ok());
  EXPECT_EQ(host->to_string(), "192.168.1.7/32");
  Result<Cidr> all = parse_cidr("0.0.0.0/0");
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->contains(make_address("127.0.0.1")));
  EXPECT_FALSE(all->contains(make_address("::1")));
  Result<Cidr> mapped = parse_cidr("::ffff:10.0.0.0/104");
  ASSERT_TRUE(mapped.ok());
  EXPECT_EQ(mapped->to_string(), "10.0.0.0/8");
  Result<Cidr> odd = parse_cidr("172.16.0.0/12");
  ASSERT_TRUE(odd.ok());
  EXPECT_TRUE(odd->contains(make_address("172.31.0.1")));
  EXPECT_FALSE(odd->contains(make_address("172.32.0.1")));
  Result<Cidr> v6odd = parse_cidr("fe80::/10");
  ASSERT_TRUE(v6odd.ok());
  EXPECT_TRUE(v6odd->contains(make_address("febf::1")));
  EXPECT_FALSE(v6odd->contains(make_address("fec0::1")));
}

TEST(DestinationCidr, RejectsBadInput) {
  for (const char* text : {"", "/8", "10.0.0.0/", "10.0.0.0/33", "::/129", "10.0.0.0/-1",
                           "10.0.0.0/+8", "10.0.0.0/8x", "10.0.0/8", "example.com/8", "10.0.0.1/8",
                           "fd00::1/8", "10.0.0.0/8/8", "fe80::1%1/128"}) {
    Result<Cidr> parsed = parse_cidr(text);
    EXPECT_FALSE(parsed.ok()) << text;
    if (!parsed.ok()) {
      EXPECT_EQ(parsed.error().code, Errc::invalid_field);
      EXPECT_NE(parsed.error().message.find("invalid CIDR"), std::string::npos);
    }
  }
}

}  // namespace destination_guard_test
}  // namespace relay
