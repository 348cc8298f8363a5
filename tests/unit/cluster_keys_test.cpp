// Cluster keys and values in etcd: the layout under the prefix, numbers in key order, and
// decoders that take any bytes.

#include "relay/cluster/cluster_keys.h"

#include <gtest/gtest.h>

namespace relay::cluster {
namespace cluster_keys_test {

TEST(ClusterKeysTest, LayoutUnderThePrefix) {
  const ClusterKeys keys("/relay/");
  EXPECT_EQ(keys.shard_name("relay-0"), "/relay/shards/names/relay-0");
  EXPECT_EQ(keys.shard_number(7), "/relay/shards/numbers/0000000007");
  EXPECT_EQ(keys.shard_number(4'294'967'295u), "/relay/shards/numbers/4294967295");
  EXPECT_EQ(keys.live_shard("relay-0"), "/relay/shards/live/relay-0");
  EXPECT_EQ(keys.subscription("sub_1"), "/relay/subscriptions/sub_1");
  EXPECT_EQ(keys.shards(), "/relay/shards/");
  // A prefix without its slash gets one: clusters "/a" and "/ab" must not overlap.
  EXPECT_EQ(ClusterKeys("/a").subscriptions(), "/a/subscriptions/");
  EXPECT_EQ(ClusterKeys("").prefix(), "/");
}

TEST(ClusterKeysTest, NumbersSortAsTheirKeys) {
  const ClusterKeys keys("/p/");
  EXPECT_LT(keys.shard_number(9), keys.shard_number(10));
  EXPECT_LT(keys.shard_number(99), keys.shard_number(1000));
}

TEST(ClusterKeysTest, SuffixAndNumberParsing) {
  EXPECT_EQ(ClusterKeys::suffix("/p/shards/live/a", "/p/shards/live/"), "a");
  EXPECT_FALSE(ClusterKeys::suffix("/p/shards/live/", "/p/shards/live/"));
  EXPECT_FALSE(ClusterKeys::suffix("/q/shards/live/a", "/p/shards/live/"));
  EXPECT_EQ(ClusterKeys::parse_number("0000000042"), 42u);
  EXPECT_FALSE(ClusterKeys::parse_number("42"));
  EXPECT_FALSE(ClusterKeys::parse_number("0000000000"));
  EXPECT_FALSE(ClusterKeys::parse_number("9999999999"));
  EXPECT_FALSE(ClusterKeys::parse_number("00000000-1"));
}

TEST(ClusterKeysTest, ShardNames) {
  EXPECT_TRUE(is_valid_shard_name("relay-0"));
  EXPECT_TRUE(is_valid_shard_name(std::string(63, 'a')));
  EXPECT_FALSE(is_valid_shard_name(std::string(64, 'a')));
  EXPECT_FALSE(is_valid_shard_name(""));
  EXPECT_FALSE(is_valid_shard_name("Relay"));
  EXPECT_FALSE(is_valid_shard_name("relay_0"));
  EXPECT_FALSE(is_valid_shard_name("relay/0"));
}

TEST(ClusterKeysTest, ValuesRoundTrip) {
  EXPECT_EQ(encode_name_value(3), R"({"number":3})");
  EXPECT_EQ(decode_name_value(encode_name_value(3)), 3u);
  EXPECT_EQ(decode_number_value(encode_number_value("relay-1")), "relay-1");
  const LiveShard shard{"relay-1", 2, "http://relay-1.relay:8080", 1'795'687'200'123};
  EXPECT_EQ(decode_live_value(encode_live_value(shard)), shard);
  EXPECT_NE(encode_live_value(shard).find(R"("started_at":"2026-11-26T10:00:00.123Z")"), std::string::npos);
}

TEST(ClusterKeysTest, DecodersRefuseWhatIsNotTheirValue) {
  for (const char* bad : {"", "null", "[]", "{", R"({"number":0})", R"({"number":-1})", R"({"number":"3"})",
                          R"({"number":4294967296})", R"({"number":1.5})"}) {
    EXPECT_FALSE(decode_name_value(bad)) << bad;
  }
  for (const char* bad : {"", R"({"name":""})", R"({"name":"Bad Name"})", R"({"name":7})"}) {
    EXPECT_FALSE(decode_number_value(bad)) << bad;
  }
  for (const char* bad : {R"({"name":"a","number":1,"advertise":"http://a"})",
                          R"({"name":"a","number":1,"advertise":"http://a","started_at":"yesterday"})",
                          R"({"name":"a","number":0,"advertise":"http://a","started_at":"2026-11-26T10:00:00Z"})"}) {
    EXPECT_FALSE(decode_live_value(bad)) << bad;
  }
}

}  // namespace cluster_keys_test
}  // namespace relay::cluster
