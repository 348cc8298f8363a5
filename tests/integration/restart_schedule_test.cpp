// A restart resumes scheduled deliveries at their due time (spec section 1): a delivery waiting
// for its backoff when relayd is killed is attempted after the restart, no earlier than the
// next_attempt_at relay had stored, and one due much later is not attempted at all in the
// meantime. The crash test's subscriber always answers 200, so nothing there is ever scheduled
// across a restart; this test is about exactly that.

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include <nlohmann/json.hpp>

#include "relay/core/time.h"
#include "tests/support/relayd_api_test.h"
#include "tests/support/test_subscriber.h"

namespace relay::test {
namespace restart_schedule_test {

using namespace std::chrono_literals;

class RestartSchedule : public RelaydApiTest {
 protected:
  // The stored next_attempt_at of a pending delivery after its first attempt.
  UnixMillis scheduled_after_first_attempt(const std::string& id) {
    json d;
    EXPECT_TRUE(eventually([&] {
      d = delivery(id);
      return d.value("attempt_count", 0) == 1 && d.value("state", "") == "pending";
    })) << d.dump();
    const auto due = parse_time(d.value("next_attempt_at", ""));
    EXPECT_TRUE(due.has_value()) << d.dump();
    return due.value_or(0);
  }
};

TEST_F(RestartSchedule, KillNineKeepsBackoffDeliveriesAtTheirDueTime) {
  TestSubscriber soon;
  soon.enqueue(Reply::status(500, "first attempt fails"));
  TestSubscriber later;
  later.enqueue(Reply::status(500, "first attempt fails"));
  start({"--allow-cidr", "127.0.0.0/8"});
  const std::string soon_sub = subscribe_id(
      {{"url", soon.url("/hook")}, {"event_types", {"meeting.*"}}, {"retry", {{"initial", "3s"}, {"window", "1h"}}}});
  const std::string later_sub = subscribe_id(
      {{"url", later.url("/hook")}, {"event_types", {"calendar.*"}}, {"retry", {{"initial", "10m"}, {"window", "1h"}}}});
  const std::string soon_id = delivery_id(publish("meeting.completed", {{"bot_id", "b-1"}}, 1), soon_sub);
  const std::string later_id = delivery_id(publish("calendar.sync_events", {{"calendar_id", "cal_42"}}, 1), later_sub);
  const UnixMillis soon_due = scheduled_after_first_attempt(soon_id);
  const UnixMillis later_due = scheduled_after_first_attempt(later_id);
  ASSERT_GT(later_due, soon_due);

  relayd().kill9();
  relayd().restart();

  ASSERT_TRUE(soon.wait_for_requests(2, kApiWait)) << "the scheduled retry was not resumed after the restart";
  const auto second = soon.requests().at(1);
  const auto arrived = std::chrono::duration_cast<std::chrono::milliseconds>(
                           second.received_wall.time_since_epoch()).count();
  // The timer may round to the millisecond; anything earlier is a retry that ignored its backoff.
  EXPECT_GE(arrived, soon_due - 5) << "attempted " << soon_due - arrived << " ms before its due time";
  EXPECT_EQ(second.header("X-Relay-Attempt").value_or(""), "2");
  await_state(soon_id, "succeeded");

  // The delivery due in ten minutes waits on disk: still one attempt, same due time.
  EXPECT_EQ(later.request_count(), 1u);
  const json waiting = delivery(later_id);
  EXPECT_EQ(waiting.value("state", ""), "pending") << waiting.dump();
  EXPECT_EQ(parse_time(waiting.value("next_attempt_at", "")).value_or(0), later_due);
}

}  // namespace restart_schedule_test
}  // namespace relay::test
