// Cluster mode while membership changes (spec section 7; docs/cluster.md, docs/cluster-routing.md):
// a real 3-member etcd and 3 real relayd shards on loopback.
// - Limits: a subscription's max_in_flight and rate_limit_per_second are split over the live
//   shards (each takes ceil(limit / live)). Seen from the subscriber, which holds requests open
//   and counts them by shard: each shard reaches its share and never passes it; when a shard
//   leaves the others take the larger share; one that comes back takes the smaller one from its
//   first attempt.
// - Cursors: a merged list paged while a shard leaves and comes back between pages repeats
//   nothing, names the missing shard in `incomplete`, and a fresh walk returns every item once.
// - The subscription mirror uses exactly etcd's subscriptions after changes it did not see: a
//   deleted one gets nothing, a disabled one holds, a changed one is used as changed, a new one
//   receives. Once for a shard restarted after etcd compacted its history (it reads everything
//   before it delivers), once for a shard whose watch resumes behind a compaction (stopped with
//   SIGSTOP while etcd restarted).
//
// Counts, never elapsed time: a subscriber holds requests until the test releases them, and
// "no more than" is checked after a probe delivery the same shard made later.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/relayd_cluster_test.h"
#include "tests/support/test_subscriber.h"

namespace relay::test {
namespace cluster_membership_test {

using nlohmann::json;
using namespace std::chrono_literals;

class ClusterMembership : public RelaydClusterTest {
 protected:
  // The shard that made each request, by its X-Relay-Delivery-Id.
  std::map<int, std::size_t> by_shard(const std::vector<RecordedRequest>& requests) {
    std::map<int, std::size_t> counts;
    for (const RecordedRequest& r : requests) ++counts[cluster().shard_of(r.header("X-Relay-Delivery-Id").value_or(""))];
    return counts;
  }

  // Publishes `n` events of `type` through `shard` in one batch (stored there: they carry no key).
  std::vector<std::string> publish_batch(int shard, const std::string& type, int n) {
    json events = json::array();
    for (int i = 0; i < n; ++i) events.push_back({{"type", type}, {"payload", {{"n", i}, {"via", shard}}}});
    const HttpResponse r = call(shard, "POST", "/v1/events/batch", json{{"events", events}}.dump());
    EXPECT_EQ(r.status, 200) << r.describe();
    std::vector<std::string> ids;
    for (const json& result : r.json().value("results", json::array())) ids.push_back(result.value("id", ""));
    EXPECT_EQ(ids.size(), static_cast<std::size_t>(n)) << r.describe();
    return ids;
  }

  // One probe event through each of `shards`, delivered (answered at once) to the probe
  // subscription: each of those shards ran its dispatch loop after everything it had ready.
  void probe(TestSubscriber& sub, const std::vector<int>& shards) {
    std::vector<std::string> ids;
    for (int shard : shards) ids.push_back(publish(shard, {{"type", "split.probe"}, {"payload", {}}}, 1));
    ASSERT_TRUE(received_all(sub, ids, "/probe"));
  }

  // etcd's current revision (the header of any read).
  std::int64_t etcd_revision() {
    const json read = cluster().etcd().post(0, "/v3/kv/range", {{"key", "Lw=="}});  // "/"
    if (!read.is_object() || !read.contains("header")) {
      ADD_FAILURE() << "no etcd revision: " << read.dump();
      return 0;
    }
    return std::stoll(read["header"].value("revision", "0"));
  }
};

// ---------------------------------------------------------------------------------------------
// Limits split over the live shards.

TEST_F(ClusterMembership, LimitsAreSplitOverTheLiveShards) {
  TestSubscriber sub;
  sub.respond("/held", Reply::hold());
  // max_in_flight 5: ceil(5 / 3) = 2 per shard with three live, ceil(5 / 2) = 3 with two.
  constexpr int kMaxInFlight = 5;
  // rate 6/s: 2/s per shard with three live.
  constexpr int kRate = 6;
  constexpr int kRateShare = 2;
  const std::string held = subscribe(0, {{"url", sub.url("/held")},
                                         {"event_types", {"split.held"}},
                                         {"max_in_flight", kMaxInFlight},
                                         {"timeout", "5m"}})
                               .value("id", "");
  const std::string probed = subscribe(0, {{"url", sub.url("/probe")}, {"event_types", {"split.probe"}}}).value("id", "");
  const std::string paced =
      subscribe(0, {{"url", sub.url("/paced")}, {"event_types", {"split.paced"}}, {"rate_limit_per_second", kRate}})
          .value("id", "");
  ASSERT_FALSE(held.empty() || probed.empty() || paced.empty());
  for (int shard = 1; shard < cluster().size(); ++shard) {
    for (const std::string& id : {held, probed, paced}) ASSERT_TRUE(await_subscription(shard, id));
  }

  // Five held events and four paced ones stored on each shard.
  constexpr int kHeldPerShard = 5;
  constexpr int kPacedPerShard = 4;
  for (int shard = 0; shard < cluster().size(); ++shard) {
    publish_batch(shard, "split.held", kHeldPerShard);
    publish_batch(shard, "split.paced", kPacedPerShard);
  }
  const std::map<int, std::size_t> two_each{{0, 2}, {1, 2}, {2, 2}};
  EXPECT_TRUE(eventually([&] { return by_shard(sub.held()) == two_each; })) << "each shard reaches its share";
  probe(sub, {0, 1, 2});
  EXPECT_EQ(by_shard(sub.held()), two_each) << "and passes it nowhere";

  // The rate: a token bucket of one second's burst per shard, at 2/s: after a shard's first two
  // requests, its request i needs i - 1 more tokens, which take (i - 1) / 2 s to accrue. Lower
  // bounds on time: a slow machine cannot make them fail, a shard taking the whole rate does.
  ASSERT_TRUE(sub.wait_until(
      [&](const std::vector<RecordedRequest>& requests) {
        return std::count_if(requests.begin(), requests.end(), [](const RecordedRequest& r) { return r.path == "/paced"; }) >=
               cluster().size() * kPacedPerShard;
      },
      kApiWait));
  std::map<int, std::vector<std::chrono::steady_clock::time_point>> arrivals;
  for (const RecordedRequest& r : sub.requests("/paced")) {
    arrivals[cluster().shard_of(r.header("X-Relay-Delivery-Id").value_or(""))].push_back(r.received_at);
  }
  ASSERT_EQ(arrivals.size(), 3u);
  for (auto& [shard, times] : arrivals) {
    std::sort(times.begin(), times.end());
    for (std::size_t i = kRateShare; i < times.size(); ++i) {
      const auto earliest = times.front() + std::chrono::milliseconds((i - kRateShare + 1) * 1000 / kRateShare) - 50ms;
      EXPECT_GE(times[i], earliest) << cluster().name(shard) << ": request " << i << " came too early for "
                                    << kRateShare << "/s";
    }
  }

  // Shard 2 stops (SIGTERM revokes its lease at once): the other two take 3 each.
  constexpr int kLeaving = 2;
  cluster().shard(kLeaving).terminate();
  // Its attempts in flight may end once it drains (released earlier, they would free slots for
  // more); the rest of its deliveries stay for its return.
  ASSERT_TRUE(cluster().shard(kLeaving).wait_for_log(
      [](const std::string& line) { return line.find("shutting down") != std::string::npos; }));
  sub.release_held([&](const RecordedRequest& r) {
    return cluster_->shard_of(r.header("X-Relay-Delivery-Id").value_or("")) == kLeaving;
  });
  EXPECT_EQ(cluster().shard(kLeaving).wait_exit(), 0);
  ASSERT_TRUE(cluster().await_live(cluster().size() - 1));
  const std::map<int, std::size_t> three_each{{0, 3}, {1, 3}};
  EXPECT_TRUE(eventually([&] { return by_shard(sub.held()) == three_each; })) << "the others take the larger share";
  probe(sub, {0, 1});
  EXPECT_EQ(by_shard(sub.held()), three_each);

  // Shard 2 comes back with its three undelivered events: from its first attempt it takes 2
  // (a shard starting does not know the others until it read the registry: it must not start
  // with the whole limit). The others keep their 3 in flight but start no more: once one of
  // theirs is answered each, they stay at 2.
  cluster().restart(kLeaving);
  ASSERT_TRUE(cluster().await_live(cluster().size()));
  EXPECT_TRUE(eventually([&] { return by_shard(sub.held())[kLeaving] == 2; })) << by_shard(sub.held())[kLeaving];
  for (int shard : {0, 1}) {
    bool released = false;
    sub.release_held([&](const RecordedRequest& r) {
      if (released || cluster_->shard_of(r.header("X-Relay-Delivery-Id").value_or("")) != shard) return false;
      return released = true;
    });
  }
  probe(sub, {0, 1, 2});
  EXPECT_EQ(by_shard(sub.held()), two_each) << "every shard back to its share of three";
  sub.release_held();
}

// ---------------------------------------------------------------------------------------------
// Cursors across a shard leaving and coming back.

TEST_F(ClusterMembership, PagingRepeatsNothingWhileAShardLeavesAndComesBack) {
  TestSubscriber sub;
  const std::string id = subscribe(0, {{"url", sub.url("/hook")}, {"event_types", {"page.*"}}}).value("id", "");
  ASSERT_FALSE(id.empty());
  for (int shard = 1; shard < cluster().size(); ++shard) ASSERT_TRUE(await_subscription(shard, id));
  // Round robin, so that the shards' ids interleave in time.
  constexpr int kRounds = 6;
  for (int round = 0; round < kRounds; ++round) {
    for (int shard = 0; shard < cluster().size(); ++shard) publish(shard, {{"type", "page.a"}, {"payload", {{"r", round}}}}, 1);
  }
  const std::string path = "/v1/deliveries?subscription_id=" + id;
  const std::vector<std::string> all = ids_of(all_pages(0, path, 100));
  ASSERT_EQ(all.size(), static_cast<std::size_t>(kRounds * cluster().size()));

  constexpr std::size_t kLimit = 4;
  const auto page = [&](int through, const std::string& cursor) {
    return get(through, path + "&limit=" + std::to_string(kLimit) + (cursor.empty() ? "" : "&cursor=" + url_encode(cursor)));
  };
  std::vector<std::string> walked;
  const auto take = [&](const json& p) {
    for (const std::string& item : ids_of(p.value("items", json::array()).get<std::vector<json>>())) walked.push_back(item);
    return p.value("next_cursor", json()).is_string() ? p["next_cursor"].get<std::string>() : std::string();
  };

  const json first = page(0, "");
  EXPECT_FALSE(first.contains("incomplete")) << first.dump();
  const std::string c1 = take(first);
  ASSERT_FALSE(c1.empty());

  // Shard 2 leaves between two pages: the next ones say so and hold the others' items below the
  // cursor, none seen before.
  constexpr int kAway = 2;
  cluster().shard(kAway).terminate();
  EXPECT_EQ(cluster().shard(kAway).wait_exit(), 0);
  ASSERT_TRUE(cluster().await_live(cluster().size() - 1));
  const json second = page(1, c1);
  EXPECT_EQ(second.value("incomplete", json()), json::array({cluster().name(kAway)})) << second.dump();
  const std::size_t before_second = walked.size();
  const std::string c2 = take(second);
  ASSERT_FALSE(c2.empty()) << second.dump();
  EXPECT_EQ(walked.size() - before_second, kLimit);
  for (std::size_t i = before_second; i < walked.size(); ++i) {
    EXPECT_NE(cluster().shard_of(walked[i]), kAway);
    EXPECT_LT(walked[i], c1);
  }

  // It comes back: the walk goes on below the cursor with every shard again.
  cluster().restart(kAway);
  ASSERT_TRUE(cluster().await_live(cluster().size()));
  for (std::string cursor = c2; !cursor.empty();) {
    const json next = page(0, cursor);
    EXPECT_FALSE(next.contains("incomplete")) << next.dump();
    cursor = take(next);
    ASSERT_LE(walked.size(), all.size());
  }

  // Nothing twice, in order; missing exactly shard 2's items in the range the pages without it
  // covered (between the first page's cursor and the second's), which this walk cannot bring
  // back: its answer said `incomplete`.
  EXPECT_EQ(std::set<std::string>(walked.begin(), walked.end()).size(), walked.size()) << "an item listed twice";
  EXPECT_TRUE(std::is_sorted(walked.rbegin(), walked.rend())) << "newest first";
  std::vector<std::string> expected;
  std::size_t skipped = 0;
  for (const std::string& item : all) {
    if (cluster().shard_of(item) == kAway && item < c1 && item > c2) {
      ++skipped;
    } else {
      expected.push_back(item);
    }
  }
  EXPECT_GT(skipped, 0u) << "shard 2 had items in that range (round robin)";
  EXPECT_EQ(walked, expected);

  // With membership stable again, a fresh walk returns every item once.
  EXPECT_EQ(ids_of(all_pages(1, path, kLimit)), all);
}

// ---------------------------------------------------------------------------------------------
// The subscription mirror after etcd compacted past a shard's revision.

TEST_F(ClusterMembership, AShardBehindACompactionUsesExactlyEtcdsSubscriptions) {
  start(RelaydClusterOptions::with_args({"--retry-initial", "200ms", "--retry-max-delay", "500ms"}));
  constexpr int kDown = 2;
  std::atomic<bool> refuse{true};
  TestSubscriber sub;
  sub.set_handler([&](const RecordedRequest& r) -> std::optional<Reply> {
    if (refuse && (r.path == "/deleted" || r.path == "/disabled")) return Reply::status(503);
    return std::nullopt;  // 200
  });
  const std::vector<std::string> both{"mirror.old", "mirror.new"};
  const std::string deleted = subscribe(0, {{"url", sub.url("/deleted")}, {"event_types", both}}).value("id", "");
  const std::string disabled = subscribe(0, {{"url", sub.url("/disabled")}, {"event_types", both}}).value("id", "");
  const std::string changed = subscribe(0, {{"url", sub.url("/changed")}, {"event_types", both}}).value("id", "");
  ASSERT_FALSE(deleted.empty() || disabled.empty() || changed.empty());
  for (const std::string& id : {deleted, disabled, changed}) ASSERT_TRUE(await_subscription(kDown, id));

  // Shard 2 holds a pending delivery to each of the two refused subscriptions when it dies.
  const std::string old_event = publish(kDown, {{"type", "mirror.old"}, {"payload", {}}}, 3);
  ASSERT_TRUE(sub.wait_until(
      [](const std::vector<RecordedRequest>& requests) {
        bool d = false, s = false;
        for (const RecordedRequest& r : requests) {
          d = d || r.path == "/deleted";
          s = s || r.path == "/disabled";
        }
        return d && s;
      },
      kApiWait));
  cluster().kill9(kDown);
  refuse = false;  // from now on an attempt to either would succeed, and be seen

  // Meanwhile, through shard 0: one deleted, one disabled, one changed, one created.
  EXPECT_EQ(call(0, "DELETE", "/v1/subscriptions/" + deleted).status, 204);
  EXPECT_EQ(call(0, "PATCH", "/v1/subscriptions/" + disabled, R"({"enabled": false})").status, 200);
  const HttpResponse patched = call(0, "PATCH", "/v1/subscriptions/" + changed,
                                    json{{"url", sub.url("/changed-again")}, {"event_types", {"mirror.new"}}}.dump());
  EXPECT_EQ(patched.status, 200) << patched.describe();
  const std::string created = subscribe(0, {{"url", sub.url("/created")}, {"event_types", {"mirror.new"}}}).value("id", "");
  ASSERT_FALSE(created.empty());
  // etcd forgets the history shard 2 would resume its watch from.
  const std::int64_t revision = etcd_revision();
  const json compacted = cluster().etcd().post(0, "/v3/kv/compaction", {{"revision", std::to_string(revision)}, {"physical", true}});
  ASSERT_TRUE(compacted.is_object() && compacted.contains("header")) << compacted.dump();
  const std::size_t seen_before = sub.requests("/deleted").size() + sub.requests("/disabled").size();

  // It starts again: it reads every subscription before it delivers anything.
  cluster().restart(kDown);
  EXPECT_TRUE(cluster().shard(kDown).wait_for_log([](const std::string& line) {
    return line.find("subscriptions read from etcd") != std::string::npos;
  }, 0ms)) << "read before it listens";
  EXPECT_TRUE(await_subscription(kDown, deleted, 404));
  EXPECT_TRUE(await_subscription(kDown, disabled, 200, [](const json& s) { return s.value("enabled", true) == false; }));
  EXPECT_TRUE(await_subscription(kDown, changed, 200, [&](const json& s) { return s.value("url", "") == sub.url("/changed-again"); }));
  EXPECT_TRUE(await_subscription(kDown, created));

  // A new event through shard 2 matches the changed and the new subscription only.
  const std::string new_event = publish(kDown, {{"type", "mirror.new"}, {"payload", {}}}, 2);
  EXPECT_EQ(cluster().shard_of(new_event), kDown);
  EXPECT_TRUE(received_all(sub, {new_event}, "/changed-again"));
  EXPECT_TRUE(received_all(sub, {new_event}, "/created"));
  // The old event's pending deliveries: the deleted subscription's is never attempted again,
  // the disabled one's waits, pending.
  EXPECT_EQ(sub.requests("/deleted").size() + sub.requests("/disabled").size(), seen_before)
      << "shard 2 delivered to a subscription deleted or disabled while it was down";
  const json event = get(kDown, "/v1/events/" + old_event);
  std::size_t held_deliveries = 0;
  for (const json& d : event.value("deliveries", json::array())) {
    if (d.value("subscription_id", "") != disabled) continue;
    ++held_deliveries;
    EXPECT_EQ(d.value("state", ""), "pending") << event.dump();
  }
  EXPECT_EQ(held_deliveries, 1u) << event.dump();

  // A shard that keeps running but whose watch broke (stopped, etcd restarted meanwhile) and
  // resumes after etcd compacted past it: etcd says so, and the shard reads everything again.
  constexpr int kSigStop = 19, kSigCont = 18;
  cluster().shard(kDown).terminate(kSigStop);
  cluster().etcd().kill_all();  // closes the stopped shard's watch connections
  cluster().etcd().start_all();
  // Through shard 0 while its own watch reconnects: a write that answered 503 may have been
  // applied. The idempotent one first: its 200 says shard 0 follows etcd again, so that the
  // others' outcome is seen there.
  HttpResponse last;
  EXPECT_TRUE(eventually([&] {
    last = call(0, "PATCH", "/v1/subscriptions/" + changed, R"({"enabled": false})");
    return last.status == 200;
  })) << last.describe();
  EXPECT_TRUE(eventually([&] {
    last = call(0, "DELETE", "/v1/subscriptions/" + created);
    return last.status == 204 || last.status == 404;
  })) << last.describe();
  std::string fresh;
  EXPECT_TRUE(eventually([&] {
    for (const json& s : get(0, "/v1/subscriptions?limit=100").value("items", json::array())) {
      if (s.value("url", "") == sub.url("/fresh")) fresh = s.value("id", "");
    }
    if (fresh.empty()) {
      last = call(0, "POST", "/v1/subscriptions", json{{"url", sub.url("/fresh")}, {"event_types", {"mirror.new"}}}.dump());
      if (last.status == 201) fresh = last.json().value("id", "");
    }
    return !fresh.empty();
  })) << last.describe();
  const std::int64_t later = etcd_revision();
  const json compacted_again =
      cluster().etcd().post(0, "/v3/kv/compaction", {{"revision", std::to_string(later)}, {"physical", true}});
  ASSERT_TRUE(compacted_again.is_object() && compacted_again.contains("header")) << compacted_again.dump();
  cluster().shard(kDown).terminate(kSigCont);

  EXPECT_TRUE(cluster().shard(kDown).wait_for_log([](const std::string& line) {
    return line.find("subscription watch compacted in etcd: reading every subscription again") != std::string::npos;
  })) << cluster().shard(kDown).log_text();
  EXPECT_TRUE(await_subscription(kDown, created, 404));
  EXPECT_TRUE(await_subscription(kDown, changed, 200, [](const json& s) { return s.value("enabled", true) == false; }));
  EXPECT_TRUE(await_subscription(kDown, fresh));
  const std::string after_compaction = publish(kDown, {{"type", "mirror.new"}, {"payload", {{"n", 2}}}}, 1);
  EXPECT_TRUE(received_all(sub, {after_compaction}, "/fresh"));
  EXPECT_TRUE(eventually([&] { return cluster().metric(kDown, "relay_cluster_etcd_up") == 1.0; }));
}

}  // namespace cluster_membership_test
}  // namespace relay::test
