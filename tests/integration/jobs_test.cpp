// Replay and jobs (spec section 6, "Replay and jobs") against the real relayd: a replay delivers
// what a subscriber missed, only its tenant's events that pass its filter; a DLQ retry of more
// than 1000 dead letters becomes a job; cancel; and a kill -9 in the middle of a large replay
// resumes from the job's cursor with exactly one replayed delivery per event.

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/relayd_api_test.h"
#include "tests/support/test_subscriber.h"

namespace relay::test {
namespace jobs_test {

using nlohmann::json;
using namespace std::chrono_literals;

class JobsTest : public RelaydApiTest {
 protected:
  // Publishes `n` events of `type` in batches of up to 1000, payload {"n": first + i}.
  void publish_many(int n, const std::string& type, int first = 0) {
    for (int done = 0; done < n;) {
      json events = json::array();
      for (; done < n && events.size() < 1000; ++done) events.push_back({{"type", type}, {"payload", {{"n", first + done}}}});
      const HttpResponse r = call("POST", "/v1/events/batch", json{{"events", events}}.dump());
      ASSERT_EQ(r.status, 200) << r.describe();
    }
  }

  // Polls the job until it leaves `running`; the last answer.
  json await_finished(const std::string& job_id, std::chrono::milliseconds timeout = kApiWait) {
    json job;
    const bool finished = eventually(
        [&] {
          job = get("/v1/jobs/" + job_id);
          return job.value("state", "running") != "running";
        },
        timeout);
    EXPECT_TRUE(finished) << job.dump();
    return job;
  }

  // Every delivery to the subscription, through the listing's cursor.
  std::vector<json> deliveries_of(const std::string& sub_id) {
    std::vector<json> out;
    std::string cursor;
    for (;;) {
      const json page = get("/v1/deliveries?subscription_id=" + sub_id + "&limit=1000" +
                            (cursor.empty() ? "" : "&cursor=" + cursor));
      for (const auto& item : page.value("items", json::array())) out.push_back(item);
      if (!page.contains("next_cursor") || page["next_cursor"].is_null()) return out;
      cursor = page["next_cursor"].get<std::string>();
    }
  }

  // The value of one exposed series, or -1.
  double metric(const std::string& series) {
    const HttpResponse r = http_.get(relayd().url("/metrics"));
    const auto at = r.body.find("\n" + series + " ");
    return at == std::string::npos ? -1 : std::stod(r.body.substr(at + series.size() + 2));
  }

  static std::string since_epoch() { return "1970-01-01T00:00:00Z"; }
};

// Heavy: thousands of events and deliveries; run alone (tests/CMakeLists.txt).
class LargeDlqRetryJob : public JobsTest {};
class JobsCrash : public JobsTest {};

TEST_F(JobsTest, AReplayDeliversTheEventsASubscriberMissed) {
  TestSubscriber receiver;
  start({"--allow-cidr", "127.0.0.0/8"});
  // Stored before the subscription existed: nobody received them.
  publish_many(5, "meeting.completed");
  publish_many(2, "bot.joined", 100);
  const std::string sub_id = subscribe_id({{"url", receiver.url("/hook")}, {"event_types", {"meeting.*"}}});
  ASSERT_FALSE(sub_id.empty());

  const HttpResponse started =
      call("POST", "/v1/subscriptions/" + sub_id + "/replay", json{{"since", since_epoch()}}.dump());
  ASSERT_EQ(started.status, 202) << started.describe();
  const json job = started.json()["job"];
  EXPECT_EQ(job["kind"], "replay");
  EXPECT_EQ(job["params"]["event_types"], json({"meeting.*"}));
  const std::string job_id = job["id"].get<std::string>();
  ASSERT_TRUE(job_id.starts_with("job_")) << job_id;

  const json done = await_finished(job_id);
  EXPECT_EQ(done["state"], "done");
  EXPECT_EQ(done["matched"], 5);
  EXPECT_EQ(done["created"], 5);
  EXPECT_FALSE(done["finished_at"].is_null());
  ASSERT_TRUE(receiver.wait_for_requests(5, 20s)) << receiver.request_count();
  std::set<int> delivered;
  for (const auto& r : receiver.requests()) delivered.insert(json::parse(r.body).value("n", -1));
  EXPECT_EQ(delivered, (std::set<int>{0, 1, 2, 3, 4}));

  const auto listed = items("/v1/jobs");
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0]["id"], job_id);
  EXPECT_TRUE(eventually([&] { return metric("relay_jobs{state=\"done\"}") == 1; })) << relayd().log_text();
  EXPECT_EQ(metric("relay_jobs{state=\"running\"}"), 0);
  EXPECT_EQ(metric("relay_jobs{state=\"failed\"}"), 0);
  EXPECT_EQ(metric("relay_jobs_finished_total{kind=\"replay\",state=\"done\"}"), 1);
  EXPECT_EQ(metric("relay_jobs_finished_total{kind=\"replay\",state=\"failed\"}"), 0);
  // A finished job cannot be cancelled.
  EXPECT_EQ(call("POST", "/v1/jobs/" + job_id + "/cancel").status, 409);
}

TEST_F(JobsTest, AReplayIsRefusedWithAClearErrorAndStoresNothing) {
  start({});
  const std::string sub_id = subscribe_id({{"url", "https://example.com/hook"}});
  const auto refused = [&](const std::string& body, const std::string& field) {
    const HttpResponse r = call("POST", "/v1/subscriptions/" + sub_id + "/replay", body);
    EXPECT_EQ(r.status, 400) << body << " " << r.describe();
    EXPECT_EQ(r.json()["error"]["code"], "invalid_field") << body;
    EXPECT_NE(r.json()["error"]["message"].get<std::string>().find(field), std::string::npos) << r.body;
  };
  refused("{}", "since");
  refused(R"({"since": "yesterday"})", "since");
  refused(R"({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"})", "until");
  refused(R"({"since": "2026-01-01T00:00:00Z", "event_types": ["bad pattern"]})", "event_types");
  refused(R"({"since": "2026-01-01T00:00:00Z", "only_failed": "yes"})", "only_failed");
  refused(R"({"since": "2026-01-01T00:00:00Z", "surprise": 1})", "surprise");
  EXPECT_EQ(call("POST", "/v1/subscriptions/sub_0000019abcdef0123456789abcdef012/replay",
                 R"({"since": "2026-01-01T00:00:00Z"})").status, 404);
  EXPECT_EQ(call("GET", "/v1/jobs/job_0000019abcdef0123456789abcdef012").status, 404);
  EXPECT_EQ(call("POST", "/v1/jobs/job_0000019abcdef0123456789abcdef012/cancel").status, 404);
  EXPECT_TRUE(items("/v1/jobs").empty());
}

TEST_F(JobsTest, AReplayTakesOnlyTheSubscriptionsTenantAndWhatPassesItsFilter) {
  TestSubscriber receiver;
  start({"--allow-cidr", "127.0.0.0/8"});
  const auto publish_one = [&](const std::string& type, const std::string& tenant, int n) {
    json body = {{"type", type}, {"payload", {{"n", n}}}};
    if (!tenant.empty()) body["tenant"] = tenant;
    ASSERT_EQ(call("POST", "/v1/events", body.dump()).status, 202);
  };
  publish_one("meeting.completed", "acme", 1);    // filter fails
  publish_one("meeting.completed", "acme", 3);    // the one
  publish_one("meeting.completed", "globex", 4);  // other tenant
  publish_one("meeting.completed", "", 5);        // no tenant
  publish_one("bot.joined", "acme", 6);           // other type
  const std::string sub_id = subscribe_id({{"url", receiver.url("/hook")},
                                           {"event_types", {"meeting.*"}},
                                           {"tenant", "acme"},
                                           {"filter", {{"payload.n", {{"$gte", 2}}}}}});
  ASSERT_FALSE(sub_id.empty());
  const HttpResponse started =
      call("POST", "/v1/subscriptions/" + sub_id + "/replay", json{{"since", since_epoch()}}.dump());
  ASSERT_EQ(started.status, 202) << started.describe();
  const json done = await_finished(started.json()["job"]["id"].get<std::string>());
  EXPECT_EQ(done["matched"], 1) << done.dump();
  ASSERT_TRUE(receiver.wait_for_requests(1, 20s));
  EXPECT_EQ(json::parse(receiver.requests()[0].body)["n"], 3);

  // Naming the types overrides the subscription's patterns (tenant and filter still hold).
  const HttpResponse bots = call("POST", "/v1/subscriptions/" + sub_id + "/replay",
                                 json{{"since", since_epoch()}, {"event_types", {"bot.*"}}}.dump());
  ASSERT_EQ(bots.status, 202) << bots.describe();
  EXPECT_EQ(await_finished(bots.json()["job"]["id"].get<std::string>())["matched"], 1);
}

// More than 1000 dead letters: 202 and a job; at most 1000: 200 as before.
TEST_F(LargeDlqRetryJob, RunsAsAJobWithTheRightCounts) {
  TestSubscriber gone;
  gone.respond(Reply::status(410));
  start({"--allow-cidr", "127.0.0.0/8", "--circuit-probe-interval", "1ms"});
  const std::string sub_id = subscribe_id({{"url", gone.url("/hook")}, {"event_types", {"meeting.*"}}});
  constexpr int kDead = 1500;
  publish_many(kDead, "meeting.completed");
  ASSERT_TRUE(eventually([&] { return gone.request_count() >= kDead; }, 120s)) << gone.request_count();
  ASSERT_TRUE(eventually(
      [&] { return get("/v1/deliveries?subscription_id=" + sub_id + "&state=pending&limit=1")["items"].empty(); }, 60s));
  // Held while redriven, so that the counts below stay still.
  ASSERT_EQ(call("PATCH", "/v1/subscriptions/" + sub_id, R"({"enabled": false})").status, 200);

  const HttpResponse small = call("POST", "/v1/dlq/retry", R"({"limit": 10})");
  ASSERT_EQ(small.status, 200) << small.describe();
  EXPECT_EQ(small.json()["retried"], 10);

  const HttpResponse large = call("POST", "/v1/dlq/retry", json{{"subscription_id", sub_id}}.dump());
  ASSERT_EQ(large.status, 202) << large.describe();
  const json job = large.json()["job"];
  EXPECT_EQ(job["kind"], "dlq_retry");
  EXPECT_EQ(job["params"]["subscription_id"], sub_id);
  const json done = await_finished(job["id"].get<std::string>(), 60s);
  EXPECT_EQ(done["state"], "done");
  EXPECT_EQ(done["matched"], kDead - 10);
  EXPECT_EQ(done["created"], kDead - 10);
  EXPECT_TRUE(items("/v1/dlq?limit=1").empty());
  EXPECT_EQ(metric("relay_dlq_redriven_total"), kDead);
}

TEST_F(JobsTest, ACancelledJobStopsAndStaysCancelledAfterARestart) {
  TestSubscriber receiver;
  // One event per chunk: the job is still running when the cancel arrives.
  start({"--allow-cidr", "127.0.0.0/8", "--job-chunk", "1"});
  publish_many(3000, "meeting.completed");
  const std::string sub_id = subscribe_id({{"url", receiver.url("/hook")}, {"event_types", {"meeting.*"}}});
  const HttpResponse started =
      call("POST", "/v1/subscriptions/" + sub_id + "/replay", json{{"since", since_epoch()}}.dump());
  ASSERT_EQ(started.status, 202) << started.describe();
  const std::string job_id = started.json()["job"]["id"].get<std::string>();

  const HttpResponse cancelled = call("POST", "/v1/jobs/" + job_id + "/cancel");
  ASSERT_EQ(cancelled.status, 200) << cancelled.describe();
  EXPECT_EQ(cancelled.json()["job"]["state"], "cancelled");
  const json after = get("/v1/jobs/" + job_id);
  EXPECT_EQ(after["state"], "cancelled");
  const int created = after["created"].get<int>();
  EXPECT_LT(created, 3000);
  EXPECT_EQ(call("POST", "/v1/jobs/" + job_id + "/cancel").status, 409);
  EXPECT_TRUE(eventually([&] { return metric("relay_jobs{state=\"cancelled\"}") == 1; }));
  EXPECT_EQ(metric("relay_jobs_finished_total{kind=\"replay\",state=\"cancelled\"}"), 1);

  relayd().restart();
  // Counted once, by the process that cancelled it: not again from the store.
  EXPECT_EQ(metric("relay_jobs_finished_total{kind=\"replay\",state=\"cancelled\"}"), 0);
  // Not resumed: the counts stay, and so do the deliveries.
  EXPECT_EQ(get("/v1/jobs/" + job_id)["state"], "cancelled");
  EXPECT_EQ(deliveries_of(sub_id).size(), static_cast<std::size_t>(get("/v1/jobs/" + job_id)["created"].get<int>()));
  EXPECT_EQ(get("/v1/jobs/" + job_id)["created"], created);
}

// --job-retention: a finished job disappears from the API and from relay_jobs once the retention
// has passed since it finished; a running one stays, however old, until it finishes too.
TEST_F(JobsTest, FinishedJobsGoAfterJobRetentionAndRunningOnesStay) {
  TestSubscriber receiver;
  // One event per chunk: the long replay runs for 3,000 chunks, far past the retention.
  start({"--allow-cidr", "127.0.0.0/8", "--job-chunk", "1", "--job-retention", "1s", "--retention-interval", "200ms"});
  publish_many(3000, "meeting.completed");
  const std::string sub_id = subscribe_id(
      {{"url", receiver.url("/hook")}, {"event_types", {"meeting.*"}}, {"rate_limit_per_second", 1}});
  const auto replay = [&](const json& body) {
    const HttpResponse r = call("POST", "/v1/subscriptions/" + sub_id + "/replay", body.dump());
    EXPECT_EQ(r.status, 202) << r.describe();
    return r.status == 202 ? r.json()["job"]["id"].get<std::string>() : std::string();
  };
  const std::string running = replay({{"since", since_epoch()}});
  // A range without events: done at its first turn.
  const std::string finished = replay({{"since", "2001-01-01T00:00:00Z"}, {"until", "2001-01-02T00:00:00Z"}});
  ASSERT_FALSE(running.empty() || finished.empty());
  EXPECT_EQ(await_finished(finished)["state"], "done");
  EXPECT_TRUE(eventually([&] { return metric("relay_jobs{state=\"done\"}") == 1; }));

  ASSERT_TRUE(eventually([&] { return call("GET", "/v1/jobs/" + finished).status == 404; }))
      << "a job finished past --job-retention is still there";
  EXPECT_EQ(call("POST", "/v1/jobs/" + finished + "/cancel").status, 404);
  const auto listed = items("/v1/jobs");
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0]["id"], running);
  // Older than the retention itself by now, and never finished: kept.
  EXPECT_EQ(get("/v1/jobs/" + running)["state"], "running");
  EXPECT_TRUE(eventually([&] { return metric("relay_jobs{state=\"done\"}") == 0; })) << relayd().log_text();
  EXPECT_EQ(metric("relay_jobs{state=\"running\"}"), 1);

  // Once it finishes (cancelled), it goes the same way.
  ASSERT_EQ(call("POST", "/v1/jobs/" + running + "/cancel").status, 200);
  EXPECT_TRUE(eventually([&] { return call("GET", "/v1/jobs/" + running).status == 404; }));
  EXPECT_TRUE(items("/v1/jobs").empty());
  EXPECT_TRUE(eventually([&] {
    return metric("relay_jobs{state=\"cancelled\"}") == 0 && metric("relay_jobs{state=\"running\"}") == 0;
  }));
}

// kill -9 in the middle of a replay of 20,000 events: after the restart the job resumes from its
// cursor, and every event gets exactly one delivery from the replay.
TEST_F(JobsCrash, KillNineMidReplayResumesWithoutDuplicates) {
  TestSubscriber receiver;
  start({"--allow-cidr", "127.0.0.0/8", "--job-chunk", "50"});
  constexpr int kEvents = 20'000;
  publish_many(kEvents, "meeting.completed");
  const std::string sub_id = subscribe_id({{"url", receiver.url("/hook")}, {"event_types", {"meeting.*"}}});
  const HttpResponse started =
      call("POST", "/v1/subscriptions/" + sub_id + "/replay", json{{"since", since_epoch()}}.dump());
  ASSERT_EQ(started.status, 202) << started.describe();
  const std::string job_id = started.json()["job"]["id"].get<std::string>();

  json part_way;
  ASSERT_TRUE(eventually(
      [&] {
        part_way = get("/v1/jobs/" + job_id);
        return part_way.value("created", 0) >= 1000;
      },
      60s));
  relayd().kill9();
  ASSERT_EQ(part_way["state"], "running") << "the job finished before the kill: " << part_way.dump();
  relayd().restart();

  const json done = await_finished(job_id, 120s);
  EXPECT_EQ(done["state"], "done");
  // Counted by the process that finished it, the one after the crash.
  EXPECT_TRUE(eventually([&] { return metric("relay_jobs_finished_total{kind=\"replay\",state=\"done\"}") == 1; }));
  EXPECT_EQ(done["matched"], kEvents);
  EXPECT_EQ(done["created"], kEvents);
  // Stored: one delivery per event.
  const auto stored = deliveries_of(sub_id);
  EXPECT_EQ(stored.size(), static_cast<std::size_t>(kEvents));
  std::set<std::string> events;
  for (const auto& d : stored) events.insert(d["event_id"].get<std::string>());
  EXPECT_EQ(events.size(), static_cast<std::size_t>(kEvents));
  // Received: every event, each under one delivery id (a delivery attempted again after the
  // crash repeats its id: at least once, not a second delivery).
  std::map<std::string, std::set<std::string>> delivery_ids_by_event;
  ASSERT_TRUE(receiver.wait_until(
      [&](const std::vector<RecordedRequest>& requests) {
        delivery_ids_by_event.clear();
        for (const auto& r : requests) {
          delivery_ids_by_event[r.header("webhook-id").value_or("")].insert(r.header("X-Relay-Delivery-Id").value_or(""));
        }
        return delivery_ids_by_event.size() >= static_cast<std::size_t>(kEvents);
      },
      120s))
      << delivery_ids_by_event.size();
  for (const auto& [event_id, ids] : delivery_ids_by_event) EXPECT_EQ(ids.size(), 1u) << event_id;
}

}  // namespace jobs_test
}  // namespace relay::test
