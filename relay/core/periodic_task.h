#pragma once
// Background work that runs in steps on the event loop: wait on a timer, run a step, wait
// again, until stopped. One coroutine owns the loop, so steps never overlap and no owner needs
// an `alive` flag or a hand-rolled timer loop (retention, the gauges, the scheduler's tick).
//
// Timing: the wait is counted from the end of a step (fixed delay, not fixed rate). A step that
// takes longer than the period delays the next one by its overrun; missed periods are not made
// up, and a step never starts while another runs. The first step runs at once after start().
//
// Stopping: stop() (on the event loop's thread) ends a wait at once; a step under way finishes,
// but no step runs after it. A step that awaits should check stopped() after each wait, so
// nothing it does after a stop reaches its owner. Destroying the task stops it; its coroutine
// keeps only its own state alive, so the task may go before the io_context does, provided no
// step is under way (a step's own awaits refer to its owner).

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <memory>

namespace relay {

class PeriodicTask {
 public:
  // A step that awaits (a scan on the blocking pool, a commit) and answers the wait before the
  // next step: a pass can continue soon after a full chunk and rest longer once it is done.
  using Step = std::function<boost::asio::awaitable<std::chrono::milliseconds>()>;
  // A plain function on the event loop, run every `period`.
  using Tick = std::function<void()>;

  PeriodicTask(boost::asio::io_context& io, Step step);
  PeriodicTask(boost::asio::io_context& io, std::chrono::milliseconds period, Tick tick);
  ~PeriodicTask();
  PeriodicTask(const PeriodicTask&) = delete;
  PeriodicTask& operator=(const PeriodicTask&) = delete;

  // Runs the first step at once, then the next ones. Once; nothing after stop(). An exception a
  // step throws ends the loop and is rethrown from io_context::run: a failure other than an
  // error value is a bug that must not pass silently.
  void start();
  void stop();
  bool stopped() const;
  // Ends the wait under way: the next step runs now, not when its wait was due. Nothing while a
  // step runs (the wait it answers stands): an owner wakes a task it knows to be waiting.
  void wake();

 private:
  struct State;
  static boost::asio::awaitable<void> run(std::shared_ptr<State> state);

  boost::asio::io_context& io_;
  std::shared_ptr<State> state_;
};

}  // namespace relay
