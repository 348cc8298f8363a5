#pragma once
// Driving an io_context from a test: run it until a condition holds, or until a coroutine
// finishes, with a deadline, so that the test thread plays the event loop of relayd and a stuck
// wait fails the test instead of hanging it. The io_context is kept from running out of work
// while a test waits (a watch that delivers nothing leaves no handler queued).

#include <gtest/gtest.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <exception>
#include <functional>
#include <optional>
#include <utility>

namespace relay::test {

// Generous (elections and lease expiries under a sanitizer on a loaded machine): a failure shows
// as a timeout, success is much faster.
inline constexpr std::chrono::milliseconds kLoopWait{60'000};

// Runs `io` until `done` holds (true) or `timeout` passes (false). `done` is checked between
// handlers, on the test thread. Callers assert on the answer: ASSERT_TRUE(run_until(...)).
[[nodiscard]] bool run_until(boost::asio::io_context& io, const std::function<bool()>& done,
                             std::chrono::milliseconds timeout = kLoopWait);

// Runs `io` for `duration`: lets background work (timers, retries) run when a test must show
// that something does NOT happen.
void run_for(boost::asio::io_context& io, std::chrono::milliseconds duration);

// Spawns `task` on `io` and runs `io` until it finishes. Fails the test (and throws) when it
// does not finish within `timeout`; rethrows what it throws.
void run_task(boost::asio::io_context& io, boost::asio::awaitable<void> task,
              std::chrono::milliseconds timeout = kLoopWait);

namespace detail {
template <typename T>
boost::asio::awaitable<void> store_into(boost::asio::awaitable<T> task, std::optional<T>& out) {
  out.emplace(co_await std::move(task));
}
}  // namespace detail

// The same for a task with a result (which need not be default-constructible).
template <typename T>
T run_task(boost::asio::io_context& io, boost::asio::awaitable<T> task, std::chrono::milliseconds timeout = kLoopWait) {
  std::optional<T> result;
  run_task(io, detail::store_into(std::move(task), result), timeout);
  return std::move(*result);
}

}  // namespace relay::test
