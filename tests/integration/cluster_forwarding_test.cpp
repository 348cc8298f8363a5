// Keyed ingest forwarded to the owner shard (spec section 7; relay/cluster/forward_coalescer.h),
// end to end: two real shards on a one-member etcd. Many producers post keyed events at once to
// the shard that does not own their keys, so that the forwards are coalesced into batches; each
// producer must still get exactly its own single-node answer (202 with its own event's id, 200
// for a repeated client id, its own error), every event must be stored once on the owner, and
// one producer's events of one ordering key must be stored in the order it posted them.

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/relayd_cluster_test.h"
#include "tests/support/test_subscriber.h"

namespace relay::test {
namespace cluster_forwarding_test {

using nlohmann::json;

constexpr int kCaller = 0;  // every event is posted here
constexpr int kOwner = 1;   // and owned there

class ClusterForwarding : public RelaydClusterTest {
 protected:
  void SetUp() override {
    RelaydClusterOptions options;
    options.shards = 2;
    options.etcd_members = 1;
    start(options);
  }

  // `count` routing keys "<prefix>N" that shard kOwner owns, found by storing a probe event of
  // type `probe_type` for each candidate through kCaller (`member`: "ordering_key" or "id").
  std::vector<std::string> owned_keys(const std::string& prefix, const std::string& member, std::size_t count) {
    std::vector<std::string> keys;
    for (int n = 0; keys.size() < count && n < 200; ++n) {
      const std::string key = prefix + std::to_string(n);
      const HttpResponse r =
          call(kCaller, "POST", "/v1/events", json{{"type", "probe.x"}, {"payload", {}}, {member, key}}.dump());
      EXPECT_EQ(r.status, 202) << r.describe();
      if (cluster().shard_of(r.json().value("id", "")) == kOwner) keys.push_back(key);
    }
    EXPECT_EQ(keys.size(), count) << "shard " << kOwner << " owns too few of 200 keys";
    return keys;
  }

  // The event `id` as the owner stores it (read there, not forwarded).
  json stored(HttpClient& http, const std::string& id) {
    const HttpResponse r =
        http.get(cluster().url(kOwner, "/v1/events/" + id), {bearer(kAdminKey), "X-Relay-Forwarded-By: a-test"});
    EXPECT_EQ(r.status, 200) << id << ": " << r.describe();
    return r.json();
  }
};

// Arrays nested as deep as a single event's payload {"m": ..., "deep": <them>} may hold, found by
// asking: deeper than a batch element may hold, so that a batch with that event is refused whole
// and its events go again alone.
std::string deepest_arrays(RelaydCluster& cluster) {
  for (int depth = 256; depth > 200; --depth) {
    const std::string arrays = std::string(depth, '[') + std::string(depth, ']');
    const std::string body = R"({"type":"probe.deep","payload":{"m":"x","deep":)" + arrays + "}}";
    if (cluster.call(kCaller, "POST", "/v1/events", body).status == 202) return arrays;
  }
  ADD_FAILURE() << "no nested payload accepted";
  return "[]";
}

TEST_F(ClusterForwarding, ConcurrentKeyedEventsToANonOwnerGetTheirOwnAnswersAndKeepTheirOrder) {
  TestSubscriber sub;
  const std::string sub_id =
      subscribe(kCaller, {{"url", sub.url("/hook")}, {"event_types", {"fwd.*"}}}).value("id", "");
  ASSERT_FALSE(sub_id.empty());
  ASSERT_TRUE(await_subscription(kOwner, sub_id));

  constexpr int kProducers = 8;
  constexpr int kPerProducer = 30;
  const std::vector<std::string> keys = owned_keys("key-", "ordering_key", kProducers);
  const std::vector<std::string> client_ids = owned_keys("client-", "id", 1);
  ASSERT_EQ(keys.size(), static_cast<std::size_t>(kProducers));
  ASSERT_EQ(client_ids.size(), 1u);
  // A client id stored already (its probe): every producer repeats it. And a new one, routed by
  // an ordering key: every producer posts it, and exactly one of them creates it.
  const json repeated = {{"type", "fwd.dup"}, {"payload", {}}, {"id", client_ids[0]}};
  const json fresh_event = {{"type", "fwd.dup"}, {"payload", {}}, {"id", "fresh-1"}, {"ordering_key", keys[0]}};
  const HttpResponse first = call(kCaller, "POST", "/v1/events", repeated.dump());
  ASSERT_EQ(first.status, 200) << first.describe();
  const std::string deep = deepest_arrays(cluster());
  const double requests_before =
      cluster().metric(kCaller, "relay_cluster_forwarded_requests_total{kind=\"ingest\"}").value_or(0);
  const double events_before = cluster().metric(kCaller, "relay_cluster_forwarded_events_total").value_or(0);

  // Each producer: its own ordering key, in sequence; among them a repeat, the new client id,
  // an invalid event and an event too deep for a batch.
  struct Posted {
    std::string id;      // the answer's
    std::string marker;  // in the payload
    std::string key;
  };
  std::mutex mutex;
  std::vector<Posted> posted;
  std::vector<std::string> failures;
  std::vector<std::string> fresh_ids;
  int fresh_created = 0;
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      HttpClient http;
      const std::string url = cluster().url(kCaller, "/v1/events");
      const auto fail = [&](const std::string& what) {
        std::lock_guard lock(mutex);
        failures.push_back("producer " + std::to_string(p) + ": " + what);
      };
      for (int n = 0; n < kPerProducer; ++n) {
        const std::string marker = std::to_string(p) + "." + std::to_string(n);
        std::string body = json{{"type", "fwd.k"}, {"payload", {{"m", marker}}}, {"ordering_key", keys[p]}}.dump();
        if (n == 7 && p == 3) {
          body = R"({"type":"fwd.k","ordering_key":")" + keys[p] + R"(","payload":{"m":")" + marker + R"(","deep":)" +
                 deep + "}}";
        }
        const HttpResponse r = http.post(url, body, {bearer(kIngestKey)});
        if (r.status != 202 || r.json().value("deliveries", -1) != 1) {
          fail(marker + " -> " + r.describe());
          continue;
        }
        std::lock_guard lock(mutex);
        posted.push_back({r.json().value("id", ""), marker, keys[p]});
      }
      const HttpResponse repeat = http.post(url, repeated.dump(), {bearer(kIngestKey)});
      if (repeat.status != 200 || repeat.body != first.body) fail("repeat -> " + repeat.describe());
      const HttpResponse fresh = http.post(url, fresh_event.dump(), {bearer(kIngestKey)});
      if ((fresh.status != 202 && fresh.status != 200) || fresh.json().value("deliveries", -1) != 1) {
        fail("fresh -> " + fresh.describe());
      }
      const HttpResponse invalid = http.post(
          url, json{{"type", "bad type!"}, {"payload", {}}, {"ordering_key", keys[p]}}.dump(), {bearer(kIngestKey)});
      if (invalid.status != 400 || invalid.error_code() != "invalid_field") fail("invalid -> " + invalid.describe());
      std::lock_guard lock(mutex);
      fresh_ids.push_back(fresh.json().value("id", ""));
      fresh_created += fresh.status == 202;
    });
  }
  for (auto& producer : producers) producer.join();
  for (const auto& failure : failures) ADD_FAILURE() << failure;

  EXPECT_EQ(fresh_created, 1) << "one producer created the new client id, the others repeated it";
  EXPECT_EQ(std::set<std::string>(fresh_ids.begin(), fresh_ids.end()).size(), 1u);
  EXPECT_EQ(cluster().shard_of(fresh_ids.front()), kOwner);

  // Every answer names the event its producer posted, stored once, on the owner; one producer's
  // events of its key have ids (the owner's order) in the order it posted them.
  ASSERT_EQ(posted.size(), static_cast<std::size_t>(kProducers * kPerProducer));
  HttpClient http;
  std::set<std::string> ids;
  std::map<std::string, std::string> last_of_key;
  for (const Posted& event : posted) {  // each producer's in its order
    ids.insert(event.id);
    EXPECT_EQ(cluster().shard_of(event.id), kOwner) << event.id;
    const json stored_event = stored(http, event.id);
    EXPECT_EQ(stored_event["payload"].value("m", ""), event.marker) << stored_event.dump().substr(0, 300);
    EXPECT_EQ(stored_event.value("ordering_key", ""), event.key);
    EXPECT_LT(last_of_key[event.key], event.id) << "key " << event.key << " out of order at " << event.marker;
    last_of_key[event.key] = event.id;
  }
  EXPECT_EQ(ids.size(), posted.size()) << "two answers named one event";

  // The forwards were coalesced: fewer requests than events.
  const double requests =
      cluster().metric(kCaller, "relay_cluster_forwarded_requests_total{kind=\"ingest\"}").value_or(0) -
      requests_before;
  const double events = cluster().metric(kCaller, "relay_cluster_forwarded_events_total").value_or(0) - events_before;
  EXPECT_GE(events, kProducers * (kPerProducer + 2));
  EXPECT_LT(requests, events);
}

}  // namespace cluster_forwarding_test
}  // namespace relay::test
