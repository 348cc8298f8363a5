#pragma once
// RelaydCluster: a cluster-mode relay on loopback for black-box tests (spec section 7): a real
// etcd cluster (EtcdCluster, 1 or 3 members) and N real relayd shards, each with its own data
// directory, the same admin and ingest keys, subscribers allowed on loopback.
//
// A shard's --advertise URL must name its port before it starts, so each shard gets a port that
// was free a moment ago (a shard that loses it at start is started again on another) and keeps
// it across restarts: kill9(i) and restart(i) bring it back on its data directory and address,
// as a StatefulSet pod with its volume would come back.
//
// The constructor returns once every shard counts every shard live
// (relay_cluster_shards{state="live"}), so that routing and lists see the whole cluster.
//
//   relay::test::RelaydCluster cluster;                    // 3 etcd members, 3 shards
//   cluster.call(1, "POST", "/v1/events", body);            // admin key, through shard 1
//   cluster.kill9(2); ...; cluster.restart(2);
//   cluster.etcd().kill_leader();
//
// call() and metric() share one HTTP client: use them from the test's thread only; other
// threads make their own HttpClient and use url().

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tests/support/etcd_cluster.h"
#include "tests/support/http_client.h"
#include "tests/support/relayd_process.h"
#include "tests/support/temp_dir.h"

namespace relay::test {

struct RelaydClusterOptions {
  int shards = 3;
  int etcd_members = 3;
  std::string cluster_timeout = "2s";  // --cluster-timeout
  std::vector<std::string> args;       // extra flags of every shard, e.g. {"--retry-window", "1s"}
  // A secured etcd: TLS with client certificates (the shards get --cluster-etcd-ca/-cert/-key),
  // extra etcd flags, authentication on with etcd_user/etcd_password (the shards get the user
  // and a password file holding shard_password, by default etcd_password).
  bool etcd_tls = false;
  std::vector<std::string> etcd_args;
  std::string etcd_user;
  std::string etcd_password;
  std::string shard_password;

  static RelaydClusterOptions with_args(std::vector<std::string> extra) {
    RelaydClusterOptions options;
    options.args = std::move(extra);
    return options;
  }
};

class RelaydCluster {
 public:
  // Throws std::runtime_error (with the logs) when etcd or a shard does not come up, or the
  // shards do not all see each other live in time.
  explicit RelaydCluster(RelaydClusterOptions options = {});
  ~RelaydCluster();
  RelaydCluster(const RelaydCluster&) = delete;
  RelaydCluster& operator=(const RelaydCluster&) = delete;

  int size() const { return static_cast<int>(shards_.size()); }
  EtcdCluster& etcd() { return *etcd_; }
  RelaydProcess& shard(int i) { return *shards_.at(static_cast<std::size_t>(i)).process; }
  // "shard-0", "shard-1", ...: the --shard names.
  std::string name(int i) const { return "shard-" + std::to_string(i); }
  // The number etcd gave shard i: the instance part of every id it makes.
  std::uint32_t number(int i) const { return shards_.at(static_cast<std::size_t>(i)).number; }
  // The shard whose number is in `id`'s instance part ("evt_...", "dlv_..."), or -1.
  int shard_of(std::string_view id) const;
  // "http://127.0.0.1:PORT" + path of shard i (its address does not change across restarts).
  std::string url(int i, std::string_view path) const;

  // A request through shard i with the admin key (or exactly `headers`).
  HttpResponse call(int i, std::string_view method, std::string_view path, const std::string& body = {});
  HttpResponse call(int i, std::string_view method, std::string_view path, const std::string& body,
                    const Headers& headers);

  // kill -9 of shard i (reaped).
  void kill9(int i);
  // Starts shard i again on its data directory and address; waits for "listening".
  void restart(int i);
  bool running(int i) { return shard(i).running(); }

  // The value of one series of shard i's /metrics, written as in the exposition
  // (`relay_cluster_shards{state="live"}`); nullopt when absent or the shard does not answer.
  std::optional<double> metric(int i, std::string_view series);
  // Polls until every running shard's relay_cluster_shards{state="live"} is `live`.
  bool await_live(int live, std::chrono::milliseconds timeout = std::chrono::seconds(30));

  // Every shard's log (for failure messages); the logs are also printed when a test failed.
  std::string logs() const;

 private:
  struct Shard {
    int port = 0;
    std::uint32_t number = 0;
    std::unique_ptr<RelaydProcess> process;
  };

  void start_shard(int i);
  void read_number(int i);

  RelaydClusterOptions options_;
  TempDir files_;  // the password file
  std::unique_ptr<EtcdCluster> etcd_;
  std::vector<Shard> shards_;
  HttpClient http_;
};

}  // namespace relay::test
