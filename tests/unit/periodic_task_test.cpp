// PeriodicTask on its own io_context: steps run one after another until stop(), a step under
// way finishes but none follows a stop, and a task destroyed (or stopped) before its first step
// runs none; wake() ends a wait. Each test ends when the io_context runs out of work.

#include "relay/core/periodic_task.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <memory>

namespace relay {
namespace periodic_task_test {

namespace asio = boost::asio;
using namespace std::chrono_literals;

TEST(PeriodicTaskTest, TicksUntilStopped) {
  asio::io_context io;
  int ticks = 0;
  std::unique_ptr<PeriodicTask> task;
  task = std::make_unique<PeriodicTask>(io, 1ms, [&] {
    if (++ticks == 3) task->stop();
  });
  task->start();
  io.run_for(10s);  // returns as soon as the loop has ended; the bound only ends a broken test
  EXPECT_EQ(ticks, 3);
  EXPECT_TRUE(task->stopped());
}

TEST(PeriodicTaskTest, AStepUnderWayFinishesButNoneFollowsAStop) {
  asio::io_context io;
  int begun = 0;
  int finished = 0;
  std::unique_ptr<PeriodicTask> task;
  task = std::make_unique<PeriodicTask>(io, [&]() -> asio::awaitable<std::chrono::milliseconds> {
    if (++begun == 2) asio::post(io, [&] { task->stop(); });  // while the step awaits below
    co_await asio::post(io, asio::use_awaitable);
    co_await asio::post(io, asio::use_awaitable);
    ++finished;
    co_return 0ms;
  });
  task->start();
  io.run_for(10s);
  EXPECT_EQ(begun, 2);
  EXPECT_EQ(finished, 2);
}

TEST(PeriodicTaskTest, StoppedOrDestroyedBeforeItsFirstStepRunsNone) {
  asio::io_context io;
  int ticks = 0;
  PeriodicTask stopped(io, 1ms, [&] { ++ticks; });
  stopped.start();
  stopped.stop();
  auto destroyed = std::make_unique<PeriodicTask>(io, 1ms, [&] { ++ticks; });
  destroyed->start();
  destroyed.reset();  // its coroutine is still queued on the io_context
  io.run_for(10s);
  EXPECT_EQ(ticks, 0);
}

TEST(PeriodicTaskTest, WakeEndsTheWaitAtOnce) {
  asio::io_context io;
  int ticks = 0;
  std::unique_ptr<PeriodicTask> task;
  task = std::make_unique<PeriodicTask>(io, std::chrono::hours(1), [&] {
    if (++ticks == 2) {
      task->stop();
    } else {
      asio::post(io, [&] { task->wake(); });  // once the task waits
    }
  });
  task->start();
  io.run_for(10s);
  EXPECT_EQ(ticks, 2);
}

}  // namespace periodic_task_test
}  // namespace relay
