// Black-box durability tests (spec sections 1 and 4): what relayd acknowledged survives a
// graceful restart and a kill -9 in the middle of a burst of concurrent ingest requests.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/relayd_api_test.h"

namespace relay::test {
namespace durability_kill_test {

using nlohmann::json;

constexpr const char* kNowhere = "http://127.0.0.1:9/hook";

// The fields of a subscription that a restart must not change.
json subscription_essence(const json& sub) {
  json out;
  for (const char* field : {"id", "url", "event_types", "enabled", "description", "headers", "secret"}) {
    if (sub.contains(field)) out[field] = sub[field];
  }
  return out;
}

class Durability : public RelaydApiTest {
 protected:
  std::map<std::string, json> subscriptions_by_id() {
    std::map<std::string, json> out;
    for (const json& item : get("/v1/subscriptions").value("items", json::array())) {
      out[item.value("id", "")] = subscription_essence(item);
    }
    return out;
  }

  std::map<std::string, long> event_type_counts() {
    std::map<std::string, long> out;
    for (const json& item : get("/v1/event-types").value("items", json::array())) {
      out[item.value("type", "")] = item.value("count", -1L);
    }
    return out;
  }
};

TEST_F(Durability, GracefulRestartKeepsSubscriptionsAndEvents) {
  for (const json& body : {json{{"url", kNowhere}, {"event_types", {"meeting.*"}}, {"description", "one"}},
                           json{{"url", "https://hooks.example.com/x?token=t"}, {"enabled", false}},
                           json{{"url", kNowhere}, {"headers", {{"X-Static", "v"}}}, {"secret", "given-secret"}}}) {
    ASSERT_EQ(call("POST", "/v1/subscriptions", body.dump()).status, 201);
  }
  std::vector<std::string> event_ids;
  for (const json& body : {json{{"type", "meeting.completed"}, {"payload", {{"n", 1}}}},
                           json{{"type", "calendar.sync_events"}, {"payload", json::array({1, 2})}},
                           json{{"type", "meeting.started"}, {"payload", "text"}, {"id", "client-abc"}}}) {
    const HttpResponse r = call("POST", "/v1/events", body.dump());
    ASSERT_EQ(r.status, 202) << r.describe();
    event_ids.push_back(r.json().value("id", ""));
  }
  const HttpResponse batch = call(
      "POST", "/v1/events/batch",
      json{{"events", json::array({{{"type", "bot.joined"}, {"payload", 1}}, {{"type", "meeting.completed"}, {"payload", 2}}})}}.dump());
  ASSERT_EQ(batch.status, 200) << batch.describe();
  const json results = batch.json()["results"];
  for (const json& result : results) event_ids.push_back(result.value("id", ""));

  const auto subs_before = subscriptions_by_id();
  const auto types_before = event_type_counts();
  std::map<std::string, json> events_before;
  for (const std::string& id : event_ids) events_before[id] = get("/v1/events/" + id);
  ASSERT_EQ(subs_before.size(), 3u);
  ASSERT_EQ(events_before.size(), 5u);

  relayd().terminate();
  ASSERT_EQ(relayd().wait_exit(), 0);
  relayd().restart();

  EXPECT_EQ(subscriptions_by_id(), subs_before);
  EXPECT_EQ(event_type_counts(), types_before);
  for (const auto& [id, before] : events_before) {
    const json after = get("/v1/events/" + id);
    EXPECT_EQ(after.value("type", ""), before.value("type", "")) << id;
    EXPECT_EQ(after["payload"], before["payload"]) << id;
    EXPECT_EQ(after["deliveries"].size(), before["deliveries"].size()) << id;
  }
  // The client id is still known, and new ids still sort after the old ones.
  const HttpResponse repeat =
      call("POST", "/v1/events", json{{"type", "meeting.started"}, {"payload", "text"}, {"id", "client-abc"}}.dump());
  EXPECT_EQ(repeat.status, 200) << repeat.describe();
  EXPECT_EQ(repeat.json().value("id", ""), event_ids[2]);
  const HttpResponse fresh = call("POST", "/v1/events", json{{"type", "a.b"}, {"payload", 0}}.dump());
  ASSERT_EQ(fresh.status, 202) << fresh.describe();
  for (const std::string& id : event_ids) EXPECT_GT(fresh.json().value("id", ""), id);
}

struct Ack {
  std::string id;
  std::string client_id;  // empty when the event was posted without one
  json payload;
};

TEST_F(Durability, KillNineDuringBurstLosesNoAcknowledgedEvent) {
  start({"--durability", "fsync"});
  const HttpResponse sub = call("POST", "/v1/subscriptions", json{{"url", kNowhere}, {"event_types", {"burst.*"}}}.dump());
  ASSERT_EQ(sub.status, 201) << sub.describe();

  constexpr int kThreads = 6;
  constexpr std::size_t kTarget = 2000;
  const std::string url = relayd().url("/v1/events");
  std::mutex mutex;
  std::condition_variable progressed;
  std::vector<Ack> acked;
  int threads_done = 0;
  std::vector<std::string> unexpected;  // answers other than 202 before the kill

  std::vector<std::thread> senders;
  for (int t = 0; t < kThreads; ++t) {
    senders.emplace_back([&, t] {
      HttpClient client;
      for (int seq = 0;; ++seq) {
        Ack ack;
        ack.payload = {{"thread", t}, {"seq", seq}, {"bot_id", "bot-" + std::to_string(t)},
                       {"data", {{"transcript", std::string(64 + seq % 200, 'w')}}}};
        json body{{"type", "burst.event"}, {"payload", ack.payload}};
        if (seq % 4 == 0) {
          ack.client_id = "burst-" + std::to_string(t) + "-" + std::to_string(seq);
          body["id"] = ack.client_id;
        }
        const HttpResponse r = client.post(url, body.dump(), {bearer(kIngestKey)});
        std::lock_guard lock(mutex);
        if (r.status == 202 && r.json().is_object()) {
          ack.id = r.json().value("id", "");
          acked.push_back(std::move(ack));
        } else if (r.status != 0) {
          unexpected.push_back(r.describe());
        }
        // No answer means relayd is gone: this sender is done.
        if (r.status == 0 || unexpected.size() > 10) break;
        progressed.notify_all();
      }
      std::lock_guard lock(mutex);
      ++threads_done;
      progressed.notify_all();
    });
  }

  {
    std::unique_lock lock(mutex);
    progressed.wait_for(lock, std::chrono::minutes(2),
                        [&] { return acked.size() >= kTarget || threads_done == kThreads; });
  }
  // Senders are still firing: some requests are in flight when relayd dies.
  relayd().kill9();
  for (std::thread& sender : senders) sender.join();
  ASSERT_TRUE(unexpected.empty()) << unexpected.size() << " unexpected answers, first: " << unexpected.front();
  ASSERT_GE(acked.size(), kTarget) << "the burst did not finish before the timeout";

  relayd().restart();
  std::size_t missing = 0;
  for (const Ack& ack : acked) {
    const HttpResponse r = call("GET", "/v1/events/" + ack.id);
    if (r.status != 200) {
      if (++missing <= 10) ADD_FAILURE() << "acknowledged event " << ack.id << " lost: " << r.describe();
      continue;
    }
    const json event = r.json();
    EXPECT_EQ(event.value("type", ""), "burst.event") << ack.id;
    EXPECT_EQ(event["payload"], ack.payload) << ack.id;
    EXPECT_EQ(event["deliveries"].size(), 1u) << ack.id << ": the event and its delivery are one write";
  }
  EXPECT_EQ(missing, 0u) << "of " << acked.size() << " acknowledged events";

  // Client ids survive the crash too: a retry by a publisher that got its 202 creates nothing.
  std::size_t checked = 0;
  for (const Ack& ack : acked) {
    if (ack.client_id.empty() || ++checked > 100) continue;
    const json body{{"type", "burst.event"}, {"payload", ack.payload}, {"id", ack.client_id}};
    const HttpResponse r = call("POST", "/v1/events", body.dump(), {bearer(kIngestKey)});
    EXPECT_EQ(r.status, 200) << ack.client_id << ": " << r.describe();
    EXPECT_EQ(r.json().value("id", ""), ack.id) << ack.client_id;
  }
  const auto counts = event_type_counts();
  EXPECT_GE(counts.count("burst.event") ? counts.at("burst.event") : 0, static_cast<long>(acked.size()));
}

}  // namespace durability_kill_test
}  // namespace relay::test
