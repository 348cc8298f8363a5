// EgressThread against a real TestSubscriber over loopback TCP. The home io_context runs on the
// test's thread; the attempts run on the EgressThread's own.

#include "relay/delivery/egress_thread.h"

#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/egress_fixtures.h"
#include "tests/support/test_subscriber.h"

namespace relay {
namespace egress_thread_test {

using namespace std::chrono_literals;
using test::json_post;
using test::loopback_allowed;
using test::Reply;
using test::run_until;
using test::TestSubscriber;

class EgressThreadTest : public ::testing::Test {
 protected:
  boost::asio::io_context home_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{home_.get_executor()};
  TestSubscriber sub_;
};

TEST_F(EgressThreadTest, AttemptsRunElsewhereAndAnswerOnTheHomeLoop) {
  EgressThread egress(home_, loopback_allowed());
  sub_.respond(Reply::ok());
  constexpr std::size_t kCount = 200;
  std::vector<EgressResponse> responses;
  std::set<std::thread::id> callback_threads;
  for (std::size_t i = 0; i < kCount; ++i) {
    egress.send(json_post(sub_.url("/hook"), "{\"n\":" + std::to_string(i) + "}"), [&](EgressResponse r) {
      callback_threads.insert(std::this_thread::get_id());
      responses.push_back(std::move(r));
    });
  }
  EXPECT_TRUE(responses.empty()) << "send() must not answer from inside the call";
  ASSERT_TRUE(run_until(home_, [&] { return responses.size() == kCount; }));
  for (const EgressResponse& r : responses) EXPECT_EQ(r.outcome, AttemptOutcome::success) << r.error;
  EXPECT_EQ(callback_threads, std::set<std::thread::id>{std::this_thread::get_id()});
  std::set<std::string> bodies;
  for (const auto& request : sub_.requests("/hook")) bodies.insert(request.body);
  EXPECT_EQ(bodies.size(), kCount) << "every request reached the subscriber once";
}

TEST_F(EgressThreadTest, CancelAllEndsRunningAttempts) {
  EgressThread egress(home_, loopback_allowed());
  sub_.respond(Reply::blackhole());
  std::vector<EgressResponse> responses;
  for (int i = 0; i < 3; ++i) egress.send(json_post(sub_.url("/"), "{}"), [&](EgressResponse r) { responses.push_back(std::move(r)); });
  ASSERT_TRUE(run_until(home_, [&] { return sub_.request_count() == 3; }));
  egress.cancel_all();
  ASSERT_TRUE(run_until(home_, [&] { return responses.size() == 3; }));
  for (const EgressResponse& r : responses) {
    EXPECT_TRUE(r.cancelled);
    EXPECT_EQ(r.outcome, AttemptOutcome::other);
  }
}

TEST_F(EgressThreadTest, DestroyingItAbandonsAttemptsWithoutCallbacks) {
  sub_.respond(Reply::blackhole());
  bool called = false;
  {
    EgressThread egress(home_, loopback_allowed());
    egress.send(json_post(sub_.url("/"), "{}"), [&](EgressResponse) { called = true; });
    ASSERT_TRUE(run_until(home_, [&] { return sub_.request_count() == 1; }));
  }
  home_.poll();  // whatever the thread left queued here runs now and must not call back
  EXPECT_FALSE(called);
}

}  // namespace egress_thread_test
}  // namespace relay
