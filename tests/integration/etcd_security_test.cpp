// Cluster mode against a secured etcd, black-box: real relayd shards and a real etcd serving
// https:// with --client-cert-auth and authentication on (a user allowed every key), tokens
// that expire after 1 s unused. A shard writes its subscription to etcd and delivers through it,
// renews its token when etcd refuses the expired one, and a wrong password is a clear error.

#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>

#include "relay/core/base64.h"
#include "tests/support/relayd_api_test.h"
#include "tests/support/relayd_cluster.h"
#include "tests/support/test_subscriber.h"

namespace relay::test {
namespace etcd_security_test {

using json = nlohmann::json;
using namespace std::chrono_literals;

RelaydClusterOptions secured(std::string shard_password = {}) {
  RelaydClusterOptions options;
  options.shards = 1;
  options.etcd_members = 1;
  options.etcd_tls = true;
  options.etcd_args = {"--auth-token", "simple", "--auth-token-ttl", "1"};
  options.etcd_user = "relay";
  options.etcd_password = "relay-etcd-password";
  options.shard_password = std::move(shard_password);
  return options;
}

std::string subscribe(RelaydCluster& cluster, const std::string& url, const std::string& type) {
  const HttpResponse created =
      cluster.call(0, "POST", "/v1/subscriptions", json{{"url", url}, {"event_types", {type}}}.dump());
  EXPECT_EQ(created.status, 201) << created.describe();
  return created.json().value("id", "");
}

// How many keys under /relay/ etcd holds with `text` in them (read as root, over plain http).
std::size_t keys_with(EtcdCluster& etcd, const std::string& text) {
  const json answer = etcd.post(0, "/v3/kv/range", {{"key", base64_encode("/relay/")}, {"range_end", base64_encode("/relay0")}});
  std::size_t count = 0;
  for (const json& kv : answer.value("kvs", json::array())) {
    const auto key = base64_decode_canonical(kv.value("key", ""));
    if (key && key->find(text) != std::string::npos) ++count;
  }
  return count;
}

TEST(ClusterSecuredEtcd, AShardWorksThroughTlsAndAuthenticationAndRenewsItsExpiredToken) {
  TestSubscriber sub;
  RelaydCluster cluster(secured());
  const std::string first = subscribe(cluster, sub.url("/a"), "secure.a");
  ASSERT_FALSE(first.empty());
  EXPECT_EQ(keys_with(cluster.etcd(), first), 1u) << "the subscription is in etcd";
  ASSERT_EQ(cluster.call(0, "POST", "/v1/events", R"({"type": "secure.a", "payload": {"n": 1}})").status, 202);
  ASSERT_TRUE(sub.wait_for_requests(1, 30s));

  // etcd forgets a simple token 1 to 2 s after its last use (it checks once a second): time is
  // the event here, there is nothing to wait on instead. Each subscription written uses the
  // token, so the writes are spaced until one finds it expired.
  const auto renewed = [&] {
    const std::string text = cluster.shard(0).log_text();
    return text.find("etcd refused the token: authenticating again") != std::string::npos;
  };
  std::size_t written = 0;
  for (int i = 0; i < 10 && !renewed(); ++i) {
    std::this_thread::sleep_for(1200ms);
    const std::string id = subscribe(cluster, sub.url("/b"), "secure.b");
    ASSERT_FALSE(id.empty());
    ++written;
    EXPECT_EQ(keys_with(cluster.etcd(), id), 1u);
    // relayd logs the renewal before it answers, but its stderr is read on another thread.
    cluster.shard(0).wait_for_log([&](const std::string& line) { return line.find(id) != std::string::npos; });
  }
  EXPECT_TRUE(renewed()) << cluster.shard(0).log_text();
  ASSERT_EQ(cluster.call(0, "POST", "/v1/events", R"({"type": "secure.b", "payload": {"n": 2}})").status, 202);
  ASSERT_TRUE(sub.wait_for_requests(1 + written, 30s));
  EXPECT_EQ(cluster.metric(0, "relay_cluster_etcd_up"), 1.0);
}

TEST(ClusterSecuredEtcd, AWrongPasswordIsAClearStartupError) {
  try {
    RelaydCluster cluster(secured("not-the-password"));
    FAIL() << "a shard started with a wrong etcd password";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("etcd refuses relay's credentials"), std::string::npos) << what;
    EXPECT_NE(what.find("authentication as user 'relay' refused"), std::string::npos) << what;
    EXPECT_NE(what.find("invalid user ID or password"), std::string::npos) << what;
  }
}

}  // namespace etcd_security_test
}  // namespace relay::test
