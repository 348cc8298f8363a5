// A large redrive does not stall ingest (spec section 2, "Large redrives must not stall ingress
// or delivery"). POST /v1/dlq/retry of 10,000 dead letters runs as a job (spec section 6: more
// than 1000 matches answer 202) that commits in chunks; events published meanwhile are
// acknowledged between the chunks (relay_dlq_redriven_total part way), not queued behind all
// of them.

#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/support/relayd_api_test.h"
#include "tests/support/test_subscriber.h"

namespace relay::test {
namespace large_redrive_test {

using namespace std::chrono_literals;

class LargeRedrive : public RelaydApiTest {
 protected:
  // relay_dlq_redriven_total, or -1 when relayd does not answer.
  double redriven_total() {
    const HttpResponse r = http_.get(relayd().url("/metrics"));
    std::istringstream in(r.body);
    for (std::string line; std::getline(in, line);) {
      if (line.starts_with("relay_dlq_redriven_total ")) return std::stod(line.substr(line.find(' ') + 1));
    }
    return -1;
  }
};

TEST_F(LargeRedrive, IngestIsAcknowledgedWhileARedriveRuns) {
  TestSubscriber gone;
  gone.respond(Reply::status(410));
  // 410s are failures too: after 20 the circuit opens. Probing every millisecond keeps the dead
  // letters coming, one attempt at a time.
  start({"--allow-cidr", "127.0.0.0/8", "--circuit-probe-interval", "1ms"});
  const std::string sub_id = subscribe_id({{"url", gone.url("/hook")}, {"event_types", {"meeting.*"}}});
  ASSERT_FALSE(sub_id.empty());

  constexpr int kBatches = 10;
  constexpr int kPerBatch = 1000;
  for (int b = 0; b < kBatches; ++b) {
    json events = json::array();
    for (int i = 0; i < kPerBatch; ++i) events.push_back({{"type", "meeting.completed"}, {"payload", {{"n", b * kPerBatch + i}}}});
    const HttpResponse r = call("POST", "/v1/events/batch", json{{"events", events}}.dump());
    ASSERT_EQ(r.status, 200) << r.describe();
  }
  ASSERT_TRUE(eventually([&] { return gone.request_count() >= kBatches * kPerBatch; }, 120s)) << gone.request_count();
  ASSERT_TRUE(eventually(
      [&] { return get("/v1/deliveries?subscription_id=" + sub_id + "&state=pending&limit=1")["items"].empty(); }, 60s));
  // Held while redriven: the redriven deliveries wait instead of loading the machine.
  ASSERT_EQ(call("PATCH", "/v1/subscriptions/" + sub_id, R"({"enabled": false})").status, 200);

  const HttpResponse started = call("POST", "/v1/dlq/retry", "{}");
  ASSERT_EQ(started.status, 202) << started.describe();
  const std::string job_id = started.json()["job"]["id"].get<std::string>();
  const auto running = [&] { return get("/v1/jobs/" + job_id).value("state", "") == "running"; };
  // Publish while the redrive runs. Each acknowledged event is followed by a look at how much of
  // the redrive is committed: a redrive that ingest waits behind (one command, or ingest queued
  // behind every chunk) is never seen part way, one that interleaves is.
  constexpr double kTotal = kBatches * kPerBatch;
  int acknowledged = 0;
  int seen_part_way = 0;
  while (running()) {
    const HttpResponse published =
        call("POST", "/v1/events", json{{"type", "bot.joined"}, {"payload", {{"n", acknowledged}}}}.dump());
    ASSERT_EQ(published.status, 202) << published.describe();
    ++acknowledged;
    const double redriven = redriven_total();
    if (redriven > 0 && redriven < kTotal) ++seen_part_way;
  }
  EXPECT_GT(seen_part_way, 0) << acknowledged << " events acknowledged, none while the redrive was part way";

  const json done = get("/v1/jobs/" + job_id);
  EXPECT_EQ(done.value("state", ""), "done");
  EXPECT_EQ(done.value("created", 0), kBatches * kPerBatch);
}

}  // namespace large_redrive_test
}  // namespace relay::test
