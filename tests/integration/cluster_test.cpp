// Cluster mode end to end (spec section 7, docs/cluster-routing.md): a real 3-member etcd and 3
// real relayd shards on loopback, every call made through some shard. Any shard answers as a
// single node would; a subscription written through one is used by all; an id is read through
// any shard; lists merge every shard's items once, in order; a client id or an ordering key
// lands on one shard whichever shard it was posted to. The calls every shard takes part in (the
// dead-letter queue, replay, automatic disabling) are in cluster_bulk_test.cpp, the faults (a
// shard killed, etcd killed) in cluster_faults_test.cpp.
//
// Each test starts its own cluster (CTest runs each test in a process of its own, so a shared
// one would be started per test anyway) and names its own event types.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/relayd_cluster_test.h"
#include "tests/support/test_subscriber.h"
#include "tests/support/webhook_verifier.h"

namespace relay::test {
namespace cluster_test {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr std::chrono::milliseconds kWait = kApiWait;

class Cluster : public RelaydClusterTest {};

// ---------------------------------------------------------------------------------------------
// The single-node API through each shard.

// Requests that a single node refuses (404, 400, 401, 403, 405): every shard must answer each
// with the same status and body, ids of other shards included.
struct Refusal {
  std::string method;
  std::string path;
  std::string body;
  Headers headers;
};

std::vector<Refusal> refusals(std::uint32_t other_shard) {
  const Headers admin{bearer(kAdminKey)};
  const std::string other_event = made_up_id("evt_", other_shard, 0xabcdef);
  const std::string other_delivery = made_up_id("dlv_", other_shard, 0xabcdef);
  const std::string other_job = made_up_id("job_", other_shard, 0xabcdef);
  const std::string no_shard_event = made_up_id("evt_", 0xfffffff0, 1);
  const std::string unknown_sub = made_up_id("sub_", other_shard, 0xabcdef);
  return {
      // Unknown ids: another shard's (forwarded), one no shard made, malformed ones.
      {"GET", "/v1/events/" + other_event, "", admin},
      {"GET", "/v1/events/" + no_shard_event, "", admin},
      {"GET", "/v1/events/evt_not-an-id", "", admin},
      {"POST", "/v1/events/" + other_event + "/redeliver", "", admin},
      {"GET", "/v1/deliveries/" + other_delivery, "", admin},
      {"POST", "/v1/deliveries/" + other_delivery + "/retry", "", admin},
      {"DELETE", "/v1/dlq/" + other_delivery, "", admin},
      {"GET", "/v1/deliveries/dlv_xyz", "", admin},
      {"GET", "/v1/jobs/" + other_job, "", admin},
      {"POST", "/v1/jobs/" + other_job + "/cancel", "", admin},
      {"GET", "/v1/subscriptions/" + unknown_sub, "", admin},
      {"PATCH", "/v1/subscriptions/" + unknown_sub, R"({"description": "x"})", admin},
      {"DELETE", "/v1/subscriptions/" + unknown_sub, "", admin},
      {"POST", "/v1/subscriptions/" + unknown_sub + "/replay", "{}", admin},
      {"GET", "/v1/nothing-here", "", admin},
      // Bad input, keyed events included (they would be forwarded to their key's owner).
      {"POST", "/v1/events", "{", admin},
      {"POST", "/v1/events", R"({"type": "bad type!", "payload": {}})", admin},
      {"POST", "/v1/events", R"({"type": "bad type!", "payload": {}, "ordering_key": "k1"})", admin},
      {"POST", "/v1/events", R"({"type": "x.y", "payload": {}, "id": "c1", "extra": 1})", admin},
      {"POST", "/v1/events", R"({"type": "x.y"})", admin},
      {"POST", "/v1/events", R"({"type": "relay.delivery.dead", "payload": {}})", admin},
      {"POST", "/v1/events", R"({"type": "x.y", "payload": {}, "id": "a"})", {bearer(kAdminKey), "Idempotency-Key: b"}},
      {"POST", "/v1/events/batch", R"({"events": []})", admin},
      {"POST", "/v1/events/batch", R"({"events": [{"type": "x.y", "payload": {}}], "more": 1})", admin},
      {"POST", "/v1/subscriptions", R"({"url": "ftp://example.com/hook"})", admin},
      {"POST", "/v1/subscriptions", R"({"url": "https://example.com/hook", "colour": "red"})", admin},
      {"GET", "/v1/deliveries?limit=0", "", admin},
      {"GET", "/v1/deliveries?state=sleeping", "", admin},
      {"GET", "/v1/dlq?cursor=garbage", "", admin},
      {"GET", "/v1/jobs?limit=5000", "", admin},
      {"POST", "/v1/dlq/retry", R"({"limit": 0})", admin},
      // Keys and methods.
      {"GET", "/v1/deliveries", "", {}},
      {"GET", "/v1/deliveries", "", {bearer("not-a-key-at-all")}},
      {"GET", "/v1/events/" + other_event, "", {bearer(kIngestKey)}},
      {"POST", "/v1/dlq/retry", "{}", {bearer(kIngestKey)}},
      {"PUT", "/v1/events", "{}", admin},
  };
}

TEST_F(Cluster, EveryShardAnswersTheSingleNodeApi) {
  TestSubscriber sub;
  RelaydProcess single(RelaydOptions::with_args({"--allow-cidr", "127.0.0.0/8"}));
  HttpClient single_http;
  cluster();

  for (int shard = 0; shard < cluster().size(); ++shard) {
    SCOPED_TRACE("through " + cluster().name(shard));
    const std::string n = std::to_string(shard);
    const std::string type = "api.s" + n;
    const std::string path = "/hook-" + n;

    // Create, then read back through every shard (the others once etcd's copy reached them).
    const std::string secret = "whsec_" + base64("secret of subscription number " + n);
    const json created = subscribe(shard, {{"url", sub.url(path)}, {"event_types", {type}}, {"secret", secret}});
    ASSERT_FALSE(created.empty());
    const std::string id = created.value("id", "");
    EXPECT_EQ(created.value("secret", ""), secret);
    EXPECT_EQ(get(shard, "/v1/subscriptions/" + id), created) << "the shard that wrote it answers with it at once";
    for (int other = 0; other < cluster().size(); ++other) {
      ASSERT_TRUE(await_subscription(other, id, 200, [&](const json& s) { return s == created; }));
    }

    // Patch.
    const HttpResponse patched = call(shard, "PATCH", "/v1/subscriptions/" + id, R"({"description": "patched"})");
    ASSERT_EQ(patched.status, 200) << patched.describe();
    EXPECT_EQ(patched.json().value("description", ""), "patched");
    EXPECT_EQ(patched.json().value("url", ""), sub.url(path));
    EXPECT_EQ(get(shard, "/v1/subscriptions/" + id).value("description", ""), "patched");

    // Publish one event (ingest key), see it delivered, signed with the secret.
    const HttpResponse posted = cluster().call(shard, "POST", "/v1/events",
                                               json{{"type", type}, {"payload", {{"n", shard}}}}.dump(),
                                               {bearer(kIngestKey)});
    ASSERT_EQ(posted.status, 202) << posted.describe();
    EXPECT_EQ(posted.json().value("deliveries", -1), 1);
    const std::string event_id = posted.json().value("id", "");
    EXPECT_EQ(cluster().shard_of(event_id), shard) << "an event without a key is stored where it arrives";
    ASSERT_TRUE(sub.wait_until([&](const auto& requests) {
      return std::any_of(requests.begin(), requests.end(),
                         [&](const RecordedRequest& r) { return r.header("webhook-id") == event_id; });
    }, kWait));
    for (const RecordedRequest& r : sub.requests(path)) {
      if (r.header("webhook-id") != event_id) continue;
      EXPECT_EQ(r.body, json({{"n", shard}}).dump());
      EXPECT_EQ(r.header("X-Relay-Event-Type").value_or(""), type);
      EXPECT_EQ(r.header("webhook-signature").value_or(""),
                standard_signature(secret, event_id, r.header("webhook-timestamp").value_or(""), r.body));
    }

    // The event and its delivery.
    const json event = get(shard, "/v1/events/" + event_id);
    EXPECT_EQ(event.value("type", ""), type);
    EXPECT_EQ(event.value("payload", json()), json({{"n", shard}}));
    ASSERT_EQ(event.value("deliveries", json::array()).size(), 1u) << event.dump();
    const std::string delivery_id = event["deliveries"][0].value("id", "");
    EXPECT_EQ(event["deliveries"][0].value("subscription_id", ""), id);
    json delivery;
    EXPECT_TRUE(eventually([&] {
      delivery = get(shard, "/v1/deliveries/" + delivery_id);
      return delivery.value("state", "") == "succeeded";
    })) << delivery.dump();
    ASSERT_EQ(delivery.value("attempts", json::array()).size(), 1u) << delivery.dump();
    EXPECT_EQ(delivery["attempts"][0].value("http_status", 0), 200);

    // A batch: one valid, one invalid in place, one with a client id (stored on its owner).
    const json batch = {{"events",
                         {{{"type", type}, {"payload", {{"b", 1}}}},
                          {{"type", "bad type!"}, {"payload", {}}},
                          {{"type", type}, {"payload", {{"b", 2}}}, {"id", "batch-client-id-" + n}}}}};
    const HttpResponse batched = call(shard, "POST", "/v1/events/batch", batch.dump());
    ASSERT_EQ(batched.status, 200) << batched.describe();
    const json results = batched.json().value("results", json::array());
    ASSERT_EQ(results.size(), 3u) << batched.describe();
    EXPECT_EQ(results[0].value("deliveries", -1), 1) << results.dump();
    EXPECT_EQ(results[1].value("error", json::object()).value("code", ""), "invalid_field") << results.dump();
    EXPECT_EQ(results[2].value("deliveries", -1), 1) << results.dump();
    const std::vector<std::string> batch_ids{results[0].value("id", ""), results[2].value("id", "")};
    EXPECT_TRUE(received_all(sub, batch_ids, path)) << "batch events delivered";
    for (const std::string& batch_id : batch_ids) {
      EXPECT_EQ(get(shard, "/v1/events/" + batch_id).value("id", ""), batch_id);
    }

    // Refusals: the same status and body as the single node.
    const std::uint32_t other_number = cluster().number((shard + 1) % cluster().size());
    for (const Refusal& refusal : refusals(other_number)) {
      SCOPED_TRACE(refusal.method + " " + refusal.path + " " + refusal.body);
      const HttpResponse expected = single_http.request(refusal.method, single.url(refusal.path), refusal.body,
                                                        refusal.headers);
      const HttpResponse got = call(shard, refusal.method, refusal.path, refusal.body, refusal.headers);
      ASSERT_GE(expected.status, 400) << expected.describe();
      EXPECT_EQ(got.status, expected.status) << got.describe() << " vs single node " << expected.describe();
      EXPECT_EQ(got.json(), expected.json()) << got.describe() << " vs single node " << expected.describe();
    }

    // Delete: gone everywhere, and the shard that deleted it matches nothing with it at once.
    const HttpResponse deleted = call(shard, "DELETE", "/v1/subscriptions/" + id);
    EXPECT_EQ(deleted.status, 204) << deleted.describe();
    publish(shard, {{"type", type}, {"payload", {}}}, 0);
    for (int other = 0; other < cluster().size(); ++other) EXPECT_TRUE(await_subscription(other, id, 404));
  }
}

// ---------------------------------------------------------------------------------------------
// A subscription written through one shard is used by every shard.

TEST_F(Cluster, SubscriptionWrittenThroughOneShardIsUsedByTheOthers) {
  TestSubscriber sub;
  const json created = subscribe(0, {{"url", sub.url("/hook")}, {"event_types", {"share.a"}}});
  ASSERT_FALSE(created.empty());
  const std::string id = created.value("id", "");

  // Created through shard 0: events published through 1 and 2 are delivered to it.
  std::vector<std::string> events;
  for (int shard : {1, 2}) {
    ASSERT_TRUE(await_subscription(shard, id));
    events.push_back(publish(shard, {{"type", "share.a"}, {"payload", {{"via", shard}}}}, 1));
    EXPECT_EQ(cluster().shard_of(events.back()), shard);
  }
  EXPECT_TRUE(received_all(sub, events)) << "delivered from the shards that did not write the subscription";

  // Changed through shard 1: shard 2 matches the new types, not the old.
  const HttpResponse patched = call(1, "PATCH", "/v1/subscriptions/" + id, R"({"event_types": ["share.b"]})");
  ASSERT_EQ(patched.status, 200) << patched.describe();
  ASSERT_TRUE(await_subscription(2, id, 200, [](const json& s) { return s.value("event_types", json()) == json::array({"share.b"}); }));
  publish(2, {{"type", "share.a"}, {"payload", {}}}, 0);
  const std::string b = publish(2, {{"type", "share.b"}, {"payload", {}}}, 1);
  EXPECT_TRUE(received_all(sub, {b}));

  // Its secret rotated through shard 0: shard 1 signs with the new and the old secret.
  const std::string old_secret = created.value("secret", "");
  const HttpResponse rotated = call(0, "POST", "/v1/subscriptions/" + id + "/rotate-secret", "{}");
  ASSERT_EQ(rotated.status, 200) << rotated.describe();
  const std::string new_secret = rotated.json().value("secret", "");
  ASSERT_FALSE(new_secret.empty() || new_secret == old_secret) << rotated.describe();
  ASSERT_TRUE(await_subscription(1, id, 200, [&](const json& s) { return s.value("secret", "") == new_secret; }));
  const std::string signed_twice = publish(1, {{"type", "share.b"}, {"payload", {{"rotated", true}}}}, 1);
  ASSERT_TRUE(received_all(sub, {signed_twice}));
  for (const RecordedRequest& r : sub.requests()) {
    if (r.header("webhook-id") != signed_twice) continue;
    const std::string timestamp = r.header("webhook-timestamp").value_or("");
    std::set<std::string> signatures;
    std::istringstream words(r.header("webhook-signature").value_or(""));
    for (std::string word; words >> word;) signatures.insert(word);
    EXPECT_EQ(signatures, (std::set<std::string>{standard_signature(new_secret, signed_twice, timestamp, r.body),
                                                 standard_signature(old_secret, signed_twice, timestamp, r.body)}));
  }

  // Disabled through shard 2: shard 0 matches nothing with it.
  ASSERT_EQ(call(2, "PATCH", "/v1/subscriptions/" + id, R"({"enabled": false})").status, 200);
  ASSERT_TRUE(await_subscription(0, id, 200, [](const json& s) { return s.value("enabled", true) == false; }));
  publish(0, {{"type", "share.b"}, {"payload", {}}}, 0);

  // Deleted through shard 2: shard 0 matches nothing with it.
  ASSERT_EQ(call(2, "DELETE", "/v1/subscriptions/" + id).status, 204);
  ASSERT_TRUE(await_subscription(0, id, 404));
  ASSERT_TRUE(await_subscription(1, id, 404));
  publish(0, {{"type", "share.b"}, {"payload", {}}}, 0);
  publish(1, {{"type", "share.b"}, {"payload", {}}}, 0);
}

// ---------------------------------------------------------------------------------------------
// An id read through any shard.

TEST_F(Cluster, EventAndDeliveryReadThroughEveryShardAreTheSame) {
  TestSubscriber sub;
  const std::string id = subscribe(0, {{"url", sub.url("/hook")}, {"event_types", {"read.a"}}}).value("id", "");
  ASSERT_FALSE(id.empty());
  for (int shard = 1; shard < cluster().size(); ++shard) ASSERT_TRUE(await_subscription(shard, id));

  std::vector<std::string> events;
  for (int shard = 0; shard < cluster().size(); ++shard) {
    events.push_back(publish(shard, {{"type", "read.a"}, {"payload", {{"from", shard}}}, {"tenant", "t1"}}, 1));
    ASSERT_EQ(cluster().shard_of(events.back()), shard);
  }
  ASSERT_TRUE(received_all(sub, events));

  for (const std::string& event_id : events) {
    SCOPED_TRACE(event_id);
    const int owner = cluster().shard_of(event_id);
    HttpResponse event_at_owner;
    json at_owner;
    ASSERT_TRUE(eventually([&] {
      event_at_owner = call(owner, "GET", "/v1/events/" + event_id);
      at_owner = event_at_owner.json();
      const json deliveries = at_owner.is_object() ? at_owner.value("deliveries", json::array()) : json::array();
      return deliveries.size() == 1 && deliveries[0].value("state", "") == "succeeded";
    })) << event_at_owner.describe();
    const std::string delivery_id = at_owner["deliveries"][0].value("id", "");
    const HttpResponse delivery_at_owner = call(owner, "GET", "/v1/deliveries/" + delivery_id);
    ASSERT_EQ(delivery_at_owner.status, 200);
    for (int shard = 0; shard < cluster().size(); ++shard) {
      SCOPED_TRACE("through " + cluster().name(shard));
      const HttpResponse event = call(shard, "GET", "/v1/events/" + event_id);
      EXPECT_EQ(event.status, 200) << event.describe();
      EXPECT_EQ(event.body, event_at_owner.body) << "the same bytes through every shard";
      EXPECT_EQ(event.header("Content-Type"), "application/json");
      const HttpResponse delivery = call(shard, "GET", "/v1/deliveries/" + delivery_id);
      EXPECT_EQ(delivery.status, 200) << delivery.describe();
      EXPECT_EQ(delivery.json(), delivery_at_owner.json());
      EXPECT_EQ(delivery.body, delivery_at_owner.body);
    }
  }
  // A forwarded read counts as one.
  EXPECT_GT(cluster().metric(0, "relay_cluster_forwarded_requests_total{kind=\"read\"}").value_or(0), 0);
}

// ---------------------------------------------------------------------------------------------
// Merged lists.

TEST_F(Cluster, PagedListsReturnEveryShardsItemsOnceInIdOrder) {
  TestSubscriber sub;
  const std::string id = subscribe(0, {{"url", sub.url("/hook")}, {"event_types", {"list.*"}}}).value("id", "");
  ASSERT_FALSE(id.empty());
  for (int shard = 1; shard < cluster().size(); ++shard) ASSERT_TRUE(await_subscription(shard, id));

  // Round robin, so that the shards' ids interleave in time.
  constexpr int kPerShard = 5;
  std::vector<std::string> events;
  for (int round = 0; round < kPerShard; ++round) {
    for (int shard = 0; shard < cluster().size(); ++shard) {
      events.push_back(publish(shard, {{"type", round % 2 == 0 ? "list.even" : "list.odd"}, {"payload", {{"r", round}}}}, 1));
    }
  }
  const std::size_t total = events.size();
  ASSERT_TRUE(received_all(sub, events));

  for (int caller = 0; caller < cluster().size(); ++caller) {
    SCOPED_TRACE("through " + cluster().name(caller));
    std::size_t pages = 0;
    const std::vector<json> listed = all_pages(caller, "/v1/deliveries?subscription_id=" + id, 4, &pages);
    const std::vector<std::string> ids = ids_of(listed);
    EXPECT_EQ(ids.size(), total);
    EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size()) << "an item listed twice";
    EXPECT_TRUE(std::is_sorted(ids.rbegin(), ids.rend())) << "newest first by id";
    EXPECT_GE(pages, total / 4);
    std::set<std::string> listed_events;
    std::set<int> shards;
    for (const json& d : listed) {
      listed_events.insert(d.value("event_id", ""));
      shards.insert(cluster().shard_of(d.value("id", "")));
    }
    EXPECT_EQ(listed_events, std::set<std::string>(events.begin(), events.end()));
    EXPECT_EQ(shards, (std::set<int>{0, 1, 2}));

    // A request that says it was forwarded is answered with the called shard's own part.
    const HttpResponse own = call(caller, "GET", "/v1/deliveries?limit=100&subscription_id=" + id, "",
                                  {bearer(kAdminKey), "X-Relay-Forwarded-By: a-test"});
    ASSERT_EQ(own.status, 200) << own.describe();
    const json own_items = own.json().value("items", json::array());
    EXPECT_EQ(own_items.size(), static_cast<std::size_t>(kPerShard));
    for (const json& d : own_items) EXPECT_EQ(cluster().shard_of(d.value("id", "")), caller);

    // A filter applies on every shard.
    const std::vector<json> odd = all_pages(caller, "/v1/deliveries?event_type=list.odd", 3);
    EXPECT_EQ(odd.size(), static_cast<std::size_t>(cluster().size() * (kPerShard / 2)));
    for (const json& d : odd) EXPECT_EQ(d.value("event_type", ""), "list.odd");

    // Event types are summed over the shards.
    const json types = get(caller, "/v1/event-types");
    EXPECT_FALSE(types.contains("incomplete")) << types.dump();
    std::map<std::string, long> counts;
    for (const json& item : types.value("items", json::array())) counts[item.value("type", "")] = item.value("count", 0L);
    EXPECT_EQ(counts["list.even"], cluster().size() * ((kPerShard + 1) / 2)) << types.dump();
    EXPECT_EQ(counts["list.odd"], cluster().size() * (kPerShard / 2)) << types.dump();
  }
}

// ---------------------------------------------------------------------------------------------
// Client ids across shards.

TEST_F(Cluster, ClientIdPostedToDifferentShardsIsOneEvent) {
  TestSubscriber sub;
  const std::string id = subscribe(0, {{"url", sub.url("/hook")}, {"event_types", {"dedup.a"}}}).value("id", "");
  ASSERT_FALSE(id.empty());
  for (int shard = 1; shard < cluster().size(); ++shard) ASSERT_TRUE(await_subscription(shard, id));

  // Client ids until every shard owns some (rendezvous hashing decides; the names are fixed).
  std::vector<std::string> events;
  std::set<int> owners;
  for (int k = 0; k < 6 || (owners.size() < 3 && k < 60); ++k) {
    SCOPED_TRACE(k);
    const std::string client_id = "order-" + std::to_string(k) + ":paid";
    const int first = k % cluster().size();
    const int second = (k + 1) % cluster().size();
    const int third = (k + 2) % cluster().size();
    const json event = {{"type", "dedup.a"}, {"payload", {{"k", k}}}, {"id", client_id}};
    const HttpResponse a = call(first, "POST", "/v1/events", event.dump());
    ASSERT_EQ(a.status, 202) << a.describe();
    const HttpResponse b = call(second, "POST", "/v1/events", event.dump());
    EXPECT_EQ(b.status, 200) << b.describe();
    EXPECT_EQ(b.json(), a.json());
    // The same client id as a header, through the third shard.
    const HttpResponse c = call(third, "POST", "/v1/events", json{{"type", "dedup.a"}, {"payload", {{"k", k}}}}.dump(),
                                {bearer(kIngestKey), "Idempotency-Key: " + client_id});
    EXPECT_EQ(c.status, 200) << c.describe();
    EXPECT_EQ(c.json(), a.json());
    events.push_back(a.json().value("id", ""));
    owners.insert(cluster().shard_of(events.back()));
  }
  EXPECT_EQ(owners.size(), 3u) << "some shard owns none of 60 client ids";
  const int kClientIds = static_cast<int>(events.size());

  // The same ids in one batch through shard 0: each result names the first event.
  json batch = {{"events", json::array()}};
  for (int k = 0; k < kClientIds; ++k) {
    batch["events"].push_back({{"type", "dedup.a"}, {"payload", {}}, {"id", "order-" + std::to_string(k) + ":paid"}});
  }
  const HttpResponse batched = call(0, "POST", "/v1/events/batch", batch.dump());
  ASSERT_EQ(batched.status, 200) << batched.describe();
  const json results = batched.json().value("results", json::array());
  ASSERT_EQ(results.size(), static_cast<std::size_t>(kClientIds));
  for (int k = 0; k < kClientIds; ++k) EXPECT_EQ(results[k].value("id", ""), events[k]) << results.dump();

  // One event and one delivery per client id in the whole cluster.
  ASSERT_TRUE(received_all(sub, events));
  const std::vector<json> listed = all_pages(1, "/v1/deliveries?subscription_id=" + id, 100);
  EXPECT_EQ(listed.size(), static_cast<std::size_t>(kClientIds));
  std::map<std::string, long> counts;
  for (const json& item : get(2, "/v1/event-types").value("items", json::array())) {
    counts[item.value("type", "")] = item.value("count", 0L);
  }
  EXPECT_EQ(counts["dedup.a"], kClientIds) << "repeats are not counted, on any shard";
  EXPECT_GT(cluster().metric(0, "relay_cluster_forwarded_requests_total{kind=\"ingest\"}").value_or(0) +
                cluster().metric(1, "relay_cluster_forwarded_requests_total{kind=\"ingest\"}").value_or(0) +
                cluster().metric(2, "relay_cluster_forwarded_requests_total{kind=\"ingest\"}").value_or(0),
            0);
}

// ---------------------------------------------------------------------------------------------
// An ordering key posted round robin.

TEST_F(Cluster, OrderingKeyPostedRoundRobinIsDeliveredInOrder) {
  start(RelaydClusterOptions::with_args({"--retry-initial", "100ms", "--retry-max-delay", "200ms"}));
  // The receiver refuses the first attempt of some events: without per-key order the events
  // after them would overtake them.
  std::mutex mutex;
  std::map<std::string, std::vector<int>> accepted;
  std::set<std::string> refused_once;
  TestSubscriber sub;
  sub.set_handler([&](const RecordedRequest& r) -> std::optional<Reply> {
    const json payload = json::parse(r.body, nullptr, false);
    const std::string key = payload.value("k", "");
    const int n = payload.value("n", -1);
    std::lock_guard lock(mutex);
    if (n % 4 == 0 && refused_once.insert(key + std::to_string(n)).second) return Reply::status(503);
    accepted[key].push_back(n);
    return Reply::ok();
  });
  const std::string id =
      subscribe(0, {{"url", sub.url("/hook")}, {"event_types", {"ord.a"}}, {"ordering", "key"}}).value("id", "");
  ASSERT_FALSE(id.empty());
  for (int shard = 1; shard < cluster().size(); ++shard) ASSERT_TRUE(await_subscription(shard, id));

  constexpr int kPerKey = 12;
  const std::vector<std::string> keys{"calendar-1", "calendar-2", "calendar-3"};
  std::map<std::string, std::set<int>> stored_on;
  int next_shard = 0;
  for (int n = 0; n < kPerKey; ++n) {
    for (const std::string& key : keys) {
      const std::string event_id =
          publish(next_shard, {{"type", "ord.a"}, {"payload", {{"k", key}, {"n", n}}}, {"ordering_key", key}}, 1);
      next_shard = (next_shard + 1) % cluster().size();
      stored_on[key].insert(cluster().shard_of(event_id));
    }
  }
  for (const std::string& key : keys) EXPECT_EQ(stored_on[key].size(), 1u) << key << " stored on one shard";

  std::vector<int> in_order(kPerKey);
  for (int n = 0; n < kPerKey; ++n) in_order[n] = n;
  const bool all = eventually([&] {
    std::lock_guard lock(mutex);
    return std::all_of(keys.begin(), keys.end(), [&](const std::string& key) { return accepted[key].size() >= kPerKey; });
  });
  std::lock_guard lock(mutex);
  EXPECT_TRUE(all);
  for (const std::string& key : keys) EXPECT_EQ(accepted[key], in_order) << key;
}

}  // namespace cluster_test
}  // namespace relay::test
