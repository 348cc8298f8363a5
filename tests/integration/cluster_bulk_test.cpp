// Cluster mode end to end (spec section 7, docs/cluster-routing.md "Bulk calls"): what every
// shard takes part in, through one shard. The dead-letter queue is listed and redriven across the
// shards, a replay runs a job on every shard and the jobs are listed together, and a
// subscription that one shard disables for failing is disabled on every shard. A real 3-member
// etcd and 3 real relayd shards on loopback; each test starts its own.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/relayd_cluster_test.h"
#include "tests/support/test_subscriber.h"

namespace relay::test {
namespace cluster_bulk_test {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr std::chrono::milliseconds kWait = kApiWait;

class ClusterBulk : public RelaydClusterTest {};

// ---------------------------------------------------------------------------------------------
// The dead-letter queue across shards.

TEST_F(ClusterBulk, DeadLetterListAndRedriveCoverEveryShard) {
  // A 1 s retry window: failing deliveries die after a few attempts.
  start(RelaydClusterOptions::with_args(
      {"--retry-initial", "100ms", "--retry-max-delay", "400ms", "--retry-window", "1s"}));
  std::atomic<bool> healthy{false};
  TestSubscriber sub;
  sub.set_handler([&](const RecordedRequest&) -> std::optional<Reply> {
    return healthy ? Reply::ok() : Reply::status(500, "down");
  });
  const std::string id = subscribe(1, {{"url", sub.url("/hook")}, {"event_types", {"dlq.a"}}}).value("id", "");
  ASSERT_FALSE(id.empty());
  for (int shard = 0; shard < cluster().size(); ++shard) ASSERT_TRUE(await_subscription(shard, id));

  std::vector<std::string> events;
  for (int round = 0; round < 2; ++round) {
    for (int shard = 0; shard < cluster().size(); ++shard) {
      events.push_back(publish(shard, {{"type", "dlq.a"}, {"payload", {{"r", round}}}}, 1));
    }
  }

  // Every shard's dead letters, through shard 0, paged.
  std::vector<json> dead;
  EXPECT_TRUE(eventually([&] {
    dead = all_pages(0, "/v1/dlq?subscription_id=" + id, 4);
    return dead.size() == events.size();
  })) << json(dead).dump();
  std::set<std::string> dead_events;
  std::set<int> shards;
  for (const json& d : dead) {
    EXPECT_EQ(d.value("state", ""), "dead") << d.dump();
    dead_events.insert(d.value("event_id", ""));
    shards.insert(cluster().shard_of(d.value("id", "")));
  }
  EXPECT_EQ(dead_events, std::set<std::string>(events.begin(), events.end()));
  EXPECT_EQ(shards, (std::set<int>{0, 1, 2}));
  const std::vector<json> through_2 = all_pages(2, "/v1/dlq?subscription_id=" + id, 100);
  EXPECT_EQ(ids_of(through_2), ids_of(dead)) << "the same order through any shard";

  // Redriven through shard 2, first with a limit: the called shard's dead letters, then the
  // other shards' in name order, never more than the limit in all.
  healthy = true;
  const HttpResponse limited = call(2, "POST", "/v1/dlq/retry", json{{"subscription_id", id}, {"limit", 4}}.dump());
  ASSERT_EQ(limited.status, 200) << limited.describe();
  EXPECT_EQ(limited.json(), (json{{"retried", 4}}));
  const std::vector<json> left = all_pages(0, "/v1/dlq?subscription_id=" + id, 100);
  ASSERT_EQ(left.size(), 2u) << json(left).dump();
  for (const json& d : left) EXPECT_EQ(cluster().shard_of(d.value("id", "")), 1) << "shard-1 came last";
  // Then the rest: every shard's dead letters are attempted again and delivered.
  const HttpResponse redrive = call(2, "POST", "/v1/dlq/retry", json{{"subscription_id", id}}.dump());
  ASSERT_EQ(redrive.status, 200) << redrive.describe();
  EXPECT_EQ(redrive.json(), (json{{"retried", 2}}));
  json last;
  EXPECT_TRUE(eventually([&] {
    for (const json& d : dead) {
      last = get(1, "/v1/deliveries/" + d.value("id", ""));
      if (last.value("state", "") != "succeeded") return false;
    }
    return true;
  })) << "every shard's redriven delivery succeeds, last: " << last.dump();
  EXPECT_TRUE(all_pages(1, "/v1/dlq?subscription_id=" + id, 100).empty());
}

// ---------------------------------------------------------------------------------------------
// Bulk calls and automatic disabling, which every shard takes part in.

TEST_F(ClusterBulk, ReplayRunsAJobOnEveryShardAndJobsAreListedTogether) {
  TestSubscriber sub;
  const std::string id = subscribe(0, {{"url", sub.url("/hook")}, {"event_types", {"replay.a"}}}).value("id", "");
  ASSERT_FALSE(id.empty());
  for (int shard = 1; shard < cluster().size(); ++shard) ASSERT_TRUE(await_subscription(shard, id));
  std::vector<std::string> events;
  for (int round = 0; round < 2; ++round) {
    for (int shard = 0; shard < cluster().size(); ++shard) {
      events.push_back(publish(shard, {{"type", "replay.a"}, {"payload", {{"r", round}}}}, 1));
    }
  }
  ASSERT_TRUE(received_all(sub, events));

  const HttpResponse replay =
      call(1, "POST", "/v1/subscriptions/" + id + "/replay", json{{"since", "2000-01-01T00:00:00Z"}}.dump());
  ASSERT_EQ(replay.status, 202) << replay.describe();
  const json answer = replay.json();
  EXPECT_FALSE(answer.contains("incomplete")) << answer.dump();
  ASSERT_EQ(answer.value("jobs", json::array()).size(), 3u) << answer.dump();
  EXPECT_EQ(cluster().shard_of(answer["job"].value("id", "")), 1) << "`job` is the called shard's own";
  std::set<std::string> job_ids;
  std::set<int> job_shards;
  for (const json& job : answer["jobs"]) {
    job_ids.insert(job.value("id", ""));
    job_shards.insert(cluster().shard_of(job.value("id", "")));
  }
  EXPECT_EQ(job_shards, (std::set<int>{0, 1, 2}));
  const std::vector<json> listed = all_pages(0, "/v1/jobs", 2);
  const std::vector<std::string> listed_ids = ids_of(listed);
  EXPECT_EQ(std::set<std::string>(listed_ids.begin(), listed_ids.end()), job_ids);
  EXPECT_EQ(listed_ids.size(), job_ids.size());

  // Each job, read through shard 2, replays its shard's two events.
  for (const std::string& job_id : job_ids) {
    json job;
    EXPECT_TRUE(eventually([&] {
      job = get(2, "/v1/jobs/" + job_id);
      return job.value("state", "") == "done";
    })) << job.dump();
    EXPECT_EQ(job.value("created", -1), 2) << job.dump();
  }
  EXPECT_TRUE(sub.wait_until(
      [&](const std::vector<RecordedRequest>& requests) {
        std::map<std::string, int> times;
        for (const RecordedRequest& r : requests) ++times[r.header("webhook-id").value_or("")];
        return std::all_of(events.begin(), events.end(), [&](const std::string& e) { return times[e] == 2; });
      },
      kWait))
      << "every event of every shard delivered again";
}

TEST_F(ClusterBulk, AShardThatDisablesAFailingSubscriptionDisablesItOnEveryShard) {
  start(RelaydClusterOptions::with_args({"--retry-initial", "100ms", "--retry-max-delay", "200ms"}));
  TestSubscriber sub;
  sub.respond(Reply::status(500));
  const std::string id =
      subscribe(0, {{"url", sub.url("/hook")}, {"event_types", {"failing.a"}}, {"disable_after", "1s"}}).value("id", "");
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(await_subscription(1, id));
  // Only shard 1 attempts anything: it decides, and every shard follows through etcd.
  publish(1, {{"type", "failing.a"}, {"payload", {}}}, 1);
  const auto disabled = [](const json& s) {
    return s.value("enabled", true) == false && s.value("disabled_reason", json()) == "failing";
  };
  for (int shard = 0; shard < cluster().size(); ++shard) {
    EXPECT_TRUE(await_subscription(shard, id, 200, disabled)) << cluster().name(shard);
  }
  publish(0, {{"type", "failing.a"}, {"payload", {}}}, 0);
  publish(2, {{"type", "failing.a"}, {"payload", {}}}, 0);

  // The subscriber recovers (else shard 1's held delivery would fail and disable it again) and
  // the subscription is enabled through shard 2: every shard matches it again.
  sub.respond(Reply::ok());
  ASSERT_EQ(call(2, "PATCH", "/v1/subscriptions/" + id, R"({"enabled": true})").status, 200);
  for (int shard = 0; shard < cluster().size(); ++shard) {
    EXPECT_TRUE(await_subscription(shard, id, 200, [](const json& s) { return s.value("enabled", false); }));
  }
  publish(0, {{"type", "failing.a"}, {"payload", {}}}, 1);
}

}  // namespace cluster_bulk_test
}  // namespace relay::test
