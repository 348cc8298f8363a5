// SIGTERM against the real relayd (spec section 1): while an attempt is still in flight, new
// connections are accepted and answered 503 (ingest) and /readyz fails, with Connection: close;
// the attempt finishes within --shutdown-grace and is recorded, relayd exits 0, and after a
// restart the delivery is succeeded and never attempted again.

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>

#include "tests/support/relayd_api_test.h"
#include "tests/support/test_subscriber.h"

namespace relay::test {
namespace shutdown_drain_test {

using namespace std::chrono_literals;

// Holds the subscriber's answer until opened (or destroyed), so the test decides how long the
// attempt stays in flight instead of guessing a delay. The subscriber records a request only
// once its handler returns, so the gate itself tells when the attempt arrived.
class Gate {
 public:
  ~Gate() { open(); }
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    changed_.notify_all();
  }
  // In the subscriber's handler: note the arrival, then wait until opened.
  void pass() {
    std::unique_lock lock(mutex_);
    arrived_ = true;
    changed_.notify_all();
    changed_.wait(lock, [this] { return open_; });
  }
  bool wait_arrival(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [this] { return arrived_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool arrived_ = false;
  bool open_ = false;
};

class ShutdownDrain : public RelaydApiTest {};

TEST_F(ShutdownDrain, NewRequestsGet503WhileTheAttemptInFlightFinishesAndIsRecorded) {
  TestSubscriber subscriber;
  Gate gate;  // declared after the subscriber: opened before the subscriber stops
  subscriber.set_handler([&gate](const RecordedRequest&) -> std::optional<Reply> {
    gate.pass();
    return Reply::ok();
  });
  start({"--allow-private-networks", "--shutdown-grace", "60s", "--attempt-timeout", "60s"});
  const std::string sub = subscribe_id({{"url", subscriber.url("/hook")}});
  const std::string event = publish("drain.test", {{"n", 1}}, 1);
  const std::string delivery = delivery_id(event, sub);
  ASSERT_TRUE(gate.wait_arrival(20s));

  relayd().terminate();
  ASSERT_TRUE(relayd().wait_for_log([](const std::string& line) { return line.find("shutting down") != std::string::npos; }));
  // Each request on a new connection: relayd still accepts them during the drain.
  HttpClient publisher;
  const HttpResponse ingest = publisher.post(relayd().url("/v1/events"), R"({"type":"drain.test","payload":{}})",
                                             {bearer(kIngestKey)});
  EXPECT_EQ(ingest.status, 503) << ingest.describe();
  EXPECT_EQ(ingest.error_code(), "unavailable");
  EXPECT_EQ(ingest.header("Connection"), "close");
  HttpClient probe;
  const HttpResponse ready = probe.get(relayd().url("/readyz"));
  EXPECT_EQ(ready.status, 503) << ready.describe();
  EXPECT_EQ(ready.header("Connection"), "close");
  HttpClient health;
  EXPECT_EQ(health.get(relayd().url("/healthz")).status, 200);

  gate.open();
  EXPECT_EQ(relayd().wait_exit(60s), 0);

  relayd().restart();
  const json recorded = await_state(delivery, "succeeded");
  EXPECT_EQ(recorded.value("state", ""), "succeeded") << recorded.dump();
  EXPECT_EQ(recorded["attempts"].size(), 1u) << recorded.dump();
  EXPECT_EQ(subscriber.request_count(), 1u);
}

}  // namespace shutdown_drain_test
}  // namespace relay::test
