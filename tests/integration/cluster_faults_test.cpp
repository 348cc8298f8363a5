// Cluster mode under faults (spec section 7, "Faults"; docs/cluster.md, "When etcd is down"): a
// real 3-member etcd and 3 real relayd shards on loopback. A shard killed with kill -9 while
// producers publish: ingest goes on through the others, its ids answer 503 shard_unavailable
// and lists name it in `incomplete`, and once it is back on its data directory every event it
// acknowledged is delivered. etcd's leader killed, then all of etcd: writes and ingest go on
// after the election; without etcd, ingest and delivery go on, subscription writes answer 503,
// relay_cluster_etcd_up is 0; with etcd back, writes work and reach every shard again. A shard
// stopped with SIGTERM leaves the live set and joins again.
//
// ClusterShardKill and ClusterEtcdFaults kill processes and wait for elections and leases: they
// run alone (RELAY_SERIAL_TESTS in tests/CMakeLists.txt). ClusterShutdown stops a shard with
// SIGTERM and starts it again.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "relay/cluster/rendezvous.h"
#include "tests/support/relayd_cluster_test.h"
#include "tests/support/test_subscriber.h"

namespace relay::test {
namespace cluster_faults_test {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr std::chrono::milliseconds kWait{30'000};

// What a subscriber accepted (answered 200), by webhook-id.
class Accepted {
 public:
  void add(std::string id) {
    std::lock_guard lock(mutex_);
    ids_.insert(std::move(id));
  }
  bool has_all(const std::vector<std::string>& ids) const {
    std::lock_guard lock(mutex_);
    return std::all_of(ids.begin(), ids.end(), [&](const std::string& id) { return ids_.contains(id); });
  }
  std::vector<std::string> missing(const std::vector<std::string>& ids) const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    for (const std::string& id : ids) {
      if (!ids_.contains(id)) out.push_back(id);
    }
    return out;
  }

 private:
  mutable std::mutex mutex_;
  std::set<std::string> ids_;
};

// ---------------------------------------------------------------------------------------------
// kill -9 of a shard under concurrent ingest.

// Events acknowledged (202) to the producers, with the shard that answered.
class Acknowledged {
 public:
  void add(std::string id, int shard) {
    std::lock_guard lock(mutex_);
    ids_.push_back(std::move(id));
    ++by_shard_[shard];
  }
  void unexpected(std::string what) {
    std::lock_guard lock(mutex_);
    unexpected_.push_back(std::move(what));
  }
  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return ids_.size();
  }
  std::size_t by_shard(int shard) const {
    std::lock_guard lock(mutex_);
    const auto it = by_shard_.find(shard);
    return it == by_shard_.end() ? 0 : it->second;
  }
  std::vector<std::string> ids() const {
    std::lock_guard lock(mutex_);
    return ids_;
  }
  std::vector<std::string> unexpected() const {
    std::lock_guard lock(mutex_);
    return unexpected_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> ids_;
  std::map<int, std::size_t> by_shard_;
  std::vector<std::string> unexpected_;
};

// A producer publishing unkeyed events through the shards in turn, as a client behind a load
// balancer would: on no answer or 503 it sends the same event to the next shard.
void produce(RelaydCluster& cluster, int index, const std::atomic<bool>& stop, Acknowledged& acked) {
  HttpClient http;
  http.set_timeout(5s);
  int shard = index % cluster.size();
  for (int n = 0; !stop; ++n) {
    const std::string body = json{{"type", "kill.a"}, {"payload", {{"producer", index}, {"n", n}}}}.dump();
    for (int tries = 1; !stop; ++tries) {
      const HttpResponse r = http.post(cluster.url(shard, "/v1/events"), body, {bearer(kIngestKey)});
      if (r.status == 202) {
        acked.add(r.json().value("id", ""), shard);
        break;
      }
      if (r.status != 0 && r.status != 503) {
        acked.unexpected(cluster.name(shard) + ": " + r.describe());
        break;
      }
      shard = (shard + 1) % cluster.size();
      // Every shard refused in turn: a client backs off before the next round.
      if (tries % cluster.size() == 0) std::this_thread::sleep_for(50ms);
    }
    shard = (shard + 1) % cluster.size();
  }
}

class ClusterShardKill : public RelaydClusterTest {};

TEST_F(ClusterShardKill, IngestGoesOnAndTheKilledShardDeliversEverythingAfterItsRestart) {
  start(RelaydClusterOptions::with_args(
      {"--retry-initial", "200ms", "--retry-max-delay", "1s", "--circuit-probe-interval", "300ms"}));
  constexpr int kKilled = 2;
  // The subscriber refuses shard 2's deliveries until it is back, so that it holds undelivered
  // events when it dies: they must go out after its restart.
  std::atomic<bool> hold{true};
  Accepted accepted;
  TestSubscriber sub;
  sub.set_handler([&](const RecordedRequest& r) -> std::optional<Reply> {
    if (hold && cluster_->shard_of(r.header("X-Relay-Delivery-Id").value_or("")) == kKilled) {
      return Reply::status(503);
    }
    accepted.add(r.header("webhook-id").value_or(""));
    return Reply::ok();
  });
  const std::string sub_id = subscribe(0, {{"url", sub.url("/hook")}, {"event_types", {"kill.a"}}}).value("id", "");
  ASSERT_FALSE(sub_id.empty());
  for (int shard = 1; shard < cluster().size(); ++shard) ASSERT_TRUE(await_subscription(shard, sub_id));

  std::atomic<bool> stop{false};
  Acknowledged acked;
  std::vector<std::thread> producers;
  for (int p = 0; p < 3; ++p) producers.emplace_back(produce, std::ref(cluster()), p, std::cref(stop), std::ref(acked));
  struct Join {
    std::atomic<bool>& stop;
    std::vector<std::thread>& threads;
    ~Join() {
      stop = true;
      for (auto& t : threads) {
        if (t.joinable()) t.join();
      }
    }
  } join{stop, producers};

  ASSERT_TRUE(eventually([&] { return acked.by_shard(kKilled) >= 20 && acked.size() >= 60; }, kWait));
  cluster().kill9(kKilled);
  const std::size_t at_kill = acked.size();
  std::vector<std::string> killed_ids;
  for (const std::string& id : acked.ids()) {
    if (cluster().shard_of(id) == kKilled) killed_ids.push_back(id);
  }
  ASSERT_FALSE(killed_ids.empty());

  // Ingest goes on through the other shards.
  EXPECT_TRUE(eventually([&] { return acked.size() >= at_kill + 60; }, kWait))
      << "acknowledged " << acked.size() << ", " << at_kill << " at the kill";

  // While it is down: its ids answer 503 shard_unavailable, lists name it. First while its lease
  // still runs (it does not answer), then once etcd dropped it (known, not live).
  const auto check_down = [&](const char* phase) {
    SCOPED_TRACE(phase);
    for (int shard = 0; shard < cluster().size(); ++shard) {
      if (shard == kKilled) continue;
      const HttpResponse event = call(shard, "GET", "/v1/events/" + killed_ids.front());
      EXPECT_EQ(event.status, 503) << event.describe();
      EXPECT_EQ(event.error_code(), "shard_unavailable") << event.describe();
      for (const std::string& path : {"/v1/deliveries?subscription_id=" + sub_id + "&limit=10",
                                     std::string("/v1/dlq"), std::string("/v1/event-types")}) {
        const json page = get(shard, path);
        EXPECT_EQ(page.value("incomplete", json()), json::array({cluster().name(kKilled)})) << path << " -> " << page.dump();
      }
      const HttpResponse redrive = call(shard, "POST", "/v1/dlq/retry", json{{"subscription_id", sub_id}}.dump());
      EXPECT_EQ(redrive.status, 200) << redrive.describe();
      EXPECT_EQ(redrive.json().value("incomplete", json()), json::array({cluster().name(kKilled)})) << redrive.describe();
    }
  };
  // A client id the killed shard owns: refused while its lease runs (it may hold the first
  // copy), taken by the next owner once etcd dropped it.
  std::vector<std::string> names, live_names;
  for (int shard = 0; shard < cluster().size(); ++shard) {
    names.push_back(cluster().name(shard));
    if (shard != kKilled) live_names.push_back(cluster().name(shard));
  }
  std::string client_id;
  for (int k = 0; client_id.empty(); ++k) {
    const std::string candidate = "client-" + std::to_string(k);
    if (relay::cluster::owner(candidate, names) == cluster().name(kKilled)) client_id = candidate;
  }
  const std::string keyed = json{{"type", "kill.b"}, {"payload", {}}, {"id", client_id}}.dump();

  check_down("the killed shard's lease still runs");
  const HttpResponse refused = call(0, "POST", "/v1/events", keyed);
  EXPECT_EQ(refused.status, 503) << refused.describe();
  EXPECT_EQ(refused.error_code(), "shard_unavailable") << refused.describe();
  // In a batch, only that event is refused.
  const json batch = {{"events", {{{"type", "kill.b"}, {"payload", {}}}, json::parse(keyed)}}};
  const HttpResponse batched = call(1, "POST", "/v1/events/batch", batch.dump());
  ASSERT_EQ(batched.status, 200) << batched.describe();
  const json results = batched.json().value("results", json::array());
  ASSERT_EQ(results.size(), 2u) << batched.describe();
  EXPECT_EQ(cluster().shard_of(results[0].value("id", "")), 1) << results.dump();
  EXPECT_EQ(results[1].value("error", json::object()).value("code", ""), "shard_unavailable") << results.dump();
  EXPECT_TRUE(eventually([&] { return cluster().metric(0, "relay_cluster_shards{state=\"down\"}") == 1.0; }, kWait))
      << "etcd drops a dead shard when its 10 s lease runs out";
  check_down("the killed shard is known, not live");
  // Every live shard must have seen the lease end before the key is routed the same by both.
  EXPECT_TRUE(eventually([&] { return cluster().metric(1, "relay_cluster_shards{state=\"down\"}") == 1.0; }, kWait));
  const HttpResponse taken = call(0, "POST", "/v1/events", keyed);
  EXPECT_EQ(taken.status, 202) << taken.describe();
  EXPECT_EQ(cluster().name(cluster().shard_of(taken.json().value("id", ""))), relay::cluster::owner(client_id, live_names));
  const HttpResponse repeated = call(1, "POST", "/v1/events", keyed);
  EXPECT_EQ(repeated.status, 200) << repeated.describe();
  EXPECT_EQ(repeated.json(), taken.json());
  const std::size_t while_down = acked.size();
  EXPECT_TRUE(eventually([&] { return acked.size() >= while_down + 30; }, kWait)) << "ingest goes on";

  // Back on its data directory: everything acknowledged is delivered, shard 2's held events too.
  cluster().restart(kKilled);
  ASSERT_TRUE(cluster().await_live(cluster().size()));
  const std::size_t after_restart = acked.size();
  EXPECT_TRUE(eventually([&] { return acked.by_shard(kKilled) > 0 && acked.size() >= after_restart + 30; }, kWait));
  stop = true;
  for (auto& t : producers) t.join();
  EXPECT_EQ(acked.unexpected(), std::vector<std::string>{});
  hold = false;

  const std::vector<std::string> all = acked.ids();
  EXPECT_TRUE(eventually([&] { return accepted.has_all(all); }, std::chrono::seconds(60)))
      << accepted.missing(all).size() << " of " << all.size() << " acknowledged events never delivered, e.g. "
      << (accepted.missing(all).empty() ? "" : accepted.missing(all).front());
  const HttpResponse event = call(0, "GET", "/v1/events/" + killed_ids.front());
  EXPECT_EQ(event.status, 200) << event.describe();
  const json page = get(1, "/v1/deliveries?subscription_id=" + sub_id + "&limit=10");
  EXPECT_FALSE(page.contains("incomplete")) << page.dump();
}

// ---------------------------------------------------------------------------------------------
// A shard stopped with SIGTERM (a rolling update) leaves the live set at once, by revoking its
// lease, and joins again when it is back on its data directory.

class ClusterShutdown : public RelaydClusterTest {};

TEST_F(ClusterShutdown, SigtermLeavesTheLiveSetAndARestartJoinsAgain) {
  constexpr int kStopped = 2;
  std::vector<std::string> names, others;
  for (int shard = 0; shard < cluster().size(); ++shard) {
    names.push_back(cluster().name(shard));
    if (shard != kStopped) others.push_back(cluster().name(shard));
  }
  std::string client_id;
  for (int k = 0; client_id.empty(); ++k) {
    const std::string candidate = "key-" + std::to_string(k);
    if (relay::cluster::owner(candidate, names) == cluster().name(kStopped)) client_id = candidate;
  }
  const std::string first = publish(0, {{"type", "stop.a"}, {"payload", {}}, {"id", client_id}});
  EXPECT_EQ(cluster().shard_of(first), kStopped);

  cluster().shard(kStopped).terminate();
  EXPECT_EQ(cluster().shard(kStopped).wait_exit(), 0) << "a shard stops cleanly";
  EXPECT_FALSE(cluster().shard(kStopped).wait_for_log(
      [](const std::string& line) { return line.find("cannot revoke") != std::string::npos; }, 0ms))
      << "its lease was revoked";
  ASSERT_TRUE(cluster().await_live(cluster().size() - 1)) << "the others stop counting it";
  for (int shard = 0; shard < cluster().size(); ++shard) {
    if (shard == kStopped) continue;
    EXPECT_EQ(cluster().metric(shard, "relay_cluster_shards{state=\"down\"}"), 1.0);
    const json page = get(shard, "/v1/deliveries?limit=5");
    EXPECT_EQ(page.value("incomplete", json()), json::array({cluster().name(kStopped)})) << page.dump();
    const HttpResponse event = call(shard, "GET", "/v1/events/" + first);
    EXPECT_EQ(event.error_code(), "shard_unavailable") << event.describe();
  }
  // Its keys moved to the others (a new event: its first copy is on the stopped shard).
  const HttpResponse moved = call(1, "POST", "/v1/events", json{{"type", "stop.a"}, {"payload", {}}, {"id", client_id}}.dump());
  EXPECT_EQ(moved.status, 202) << moved.describe();
  EXPECT_EQ(cluster().name(cluster().shard_of(moved.json().value("id", ""))), relay::cluster::owner(client_id, others));

  cluster().restart(kStopped);
  ASSERT_TRUE(cluster().await_live(cluster().size())) << "back in the live set";
  for (int shard = 0; shard < cluster().size(); ++shard) {
    const json page = get(shard, "/v1/deliveries?limit=5");
    EXPECT_FALSE(page.contains("incomplete")) << page.dump();
    const HttpResponse event = call(shard, "GET", "/v1/events/" + first);
    EXPECT_EQ(event.status, 200) << event.describe();
  }
  // The key is the restarted shard's again, and it remembers the first copy.
  const HttpResponse repeat = call(0, "POST", "/v1/events", json{{"type", "stop.a"}, {"payload", {}}, {"id", client_id}}.dump());
  EXPECT_EQ(repeat.status, 200) << repeat.describe();
  EXPECT_EQ(repeat.json().value("id", ""), first);
}

// ---------------------------------------------------------------------------------------------
// etcd's leader killed, then all of etcd.

class ClusterEtcdFaults : public RelaydClusterTest {
 protected:
  // Creates a subscription through `shard`, again while etcd cannot take it (503). A create
  // that answered 503 may still have been written: its URL is looked for before trying again.
  std::string create_retrying(int shard, const json& body) {
    std::string id;
    HttpResponse last;
    const bool created = eventually(
        [&] {
          last = call(shard, "POST", "/v1/subscriptions", body.dump());
          if (last.status == 201) {
            id = last.json().value("id", "");
            return true;
          }
          for (const json& s : get(shard, "/v1/subscriptions?limit=1000").value("items", json::array())) {
            if (s.value("url", "") == body.value("url", "")) {
              id = s.value("id", "");
              return true;
            }
          }
          return false;
        },
        kWait);
    EXPECT_TRUE(created) << "no subscription created through shard " << shard << ", last: " << last.describe();
    return id;
  }

  // Publishes through every shard; the ids.
  std::vector<std::string> publish_everywhere(const std::string& type, std::optional<int> deliveries) {
    std::vector<std::string> ids;
    for (int shard = 0; shard < cluster().size(); ++shard) {
      ids.push_back(publish(shard, {{"type", type}, {"payload", {{"via", shard}}}}, deliveries));
    }
    return ids;
  }

  bool etcd_up_everywhere(double value) {
    return eventually(
        [&] {
          for (int shard = 0; shard < cluster().size(); ++shard) {
            if (cluster().metric(shard, "relay_cluster_etcd_up") != value) return false;
          }
          return true;
        },
        kWait);
  }
};

TEST_F(ClusterEtcdFaults, WritesAndIngestSurviveALeaderLossAndIngestAWholeOutage) {
  cluster();
  Accepted accepted;
  TestSubscriber sub;
  sub.set_handler([&](const RecordedRequest& r) -> std::optional<Reply> {
    accepted.add(r.header("webhook-id").value_or(""));
    return Reply::ok();
  });
  const std::string a = subscribe(0, {{"url", sub.url("/a")}, {"event_types", {"etcd.a"}}}).value("id", "");
  ASSERT_FALSE(a.empty());
  for (int shard = 1; shard < cluster().size(); ++shard) ASSERT_TRUE(await_subscription(shard, a));

  // The leader dies: after the election writes and ingest work.
  const int killed = cluster().etcd().kill_leader();
  const int new_leader = cluster().etcd().leader();
  EXPECT_NE(new_leader, killed);
  HttpResponse patched;
  EXPECT_TRUE(eventually([&] {
    patched = call(1, "PATCH", "/v1/subscriptions/" + a, R"({"description": "after the election"})");
    return patched.status == 200;
  }, kWait)) << patched.describe();
  for (int shard = 0; shard < cluster().size(); ++shard) {
    EXPECT_TRUE(await_subscription(shard, a, 200, [](const json& s) {
      return s.value("description", json()) == "after the election";
    }));
  }
  const std::string b = create_retrying(2, {{"url", sub.url("/b")}, {"event_types", {"etcd.b"}}});
  ASSERT_FALSE(b.empty());
  for (int shard = 0; shard < cluster().size(); ++shard) ASSERT_TRUE(await_subscription(shard, b));
  std::vector<std::string> delivered = publish_everywhere("etcd.a", 1);
  for (const std::string& id : publish_everywhere("etcd.b", std::nullopt)) delivered.push_back(id);
  EXPECT_TRUE(eventually([&] { return accepted.has_all(delivered); }, kWait));

  // All of etcd dies: ingest and delivery go on with the subscriptions the shards know,
  // subscription writes answer 503, /readyz stays ready, relay_cluster_etcd_up is 0.
  cluster().etcd().kill_all();
  std::vector<std::string> without_etcd = publish_everywhere("etcd.a", 1);
  for (const std::string& id : publish_everywhere("etcd.b", std::nullopt)) without_etcd.push_back(id);
  EXPECT_TRUE(eventually([&] { return accepted.has_all(without_etcd); }, kWait)) << "delivered without etcd";
  const HttpResponse create = call(0, "POST", "/v1/subscriptions", json{{"url", sub.url("/never")}}.dump());
  EXPECT_EQ(create.status, 503) << create.describe();
  const HttpResponse patch = call(1, "PATCH", "/v1/subscriptions/" + a, R"({"description": "no etcd"})");
  EXPECT_EQ(patch.status, 503) << patch.describe();
  const HttpResponse del = call(2, "DELETE", "/v1/subscriptions/" + b);
  EXPECT_EQ(del.status, 503) << del.describe();
  EXPECT_TRUE(etcd_up_everywhere(0.0)) << "relay_cluster_etcd_up 0 on every shard";
  for (int shard = 0; shard < cluster().size(); ++shard) {
    EXPECT_EQ(call(shard, "GET", "/readyz").status, 200) << cluster().name(shard);
    EXPECT_EQ(get(shard, "/v1/subscriptions/" + a).value("description", ""), "after the election")
        << "a refused write changed nothing";
  }
  // Events delivered once more while etcd stays down, now that every shard knows it is gone.
  const std::vector<std::string> later = publish_everywhere("etcd.a", 1);
  EXPECT_TRUE(eventually([&] { return accepted.has_all(later); }, kWait));

  // A shard restarted meanwhile starts with the number its data directory holds and the
  // subscriptions it stored, and ingests and delivers with them.
  cluster().kill9(2);
  cluster().restart(2);
  EXPECT_TRUE(cluster().shard(2).wait_for_log(
      [](const std::string& line) { return line.find("etcd does not answer: starting with the shard number") != std::string::npos; },
      0ms));
  const std::string restarted = publish(2, {{"type", "etcd.a"}, {"payload", {{"restarted", true}}}}, 1);
  EXPECT_EQ(cluster().shard_of(restarted), 2);
  EXPECT_TRUE(eventually([&] { return accepted.has_all({restarted}); }, kWait)) << "delivered by the restarted shard";

  // etcd is back: reachable again, and a write through one shard is used by the others.
  cluster().etcd().start_all();
  EXPECT_TRUE(etcd_up_everywhere(1.0)) << "relay_cluster_etcd_up back to 1 on every shard";
  const std::string c = create_retrying(1, {{"url", sub.url("/c")}, {"event_types", {"etcd.c"}}});
  ASSERT_FALSE(c.empty());
  std::vector<std::string> after;
  for (int shard : {0, 2}) {
    ASSERT_TRUE(await_subscription(shard, c));
    after.push_back(publish(shard, {{"type", "etcd.c"}, {"payload", {{"via", shard}}}}));
  }
  EXPECT_TRUE(eventually([&] { return accepted.has_all(after); }, kWait)) << "the new subscription is used";
  EXPECT_TRUE(cluster().await_live(cluster().size())) << "every shard registered again";
}

}  // namespace cluster_faults_test
}  // namespace relay::test
