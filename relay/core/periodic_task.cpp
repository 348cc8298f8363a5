#include "relay/core/periodic_task.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <exception>

namespace relay {

namespace asio = boost::asio;

// Shared between the task and its coroutine, so that the coroutine never reads a destroyed task.
struct PeriodicTask::State {
  explicit State(asio::io_context& io) : timer(io) {}

  asio::steady_timer timer;
  Step step;  // a step that answers its own wait; or else
  Tick tick;  // a tick, every `period`
  std::chrono::milliseconds period{0};
  bool started = false;
  bool stopped = false;
};

PeriodicTask::PeriodicTask(asio::io_context& io, Step step) : io_(io), state_(std::make_shared<State>(io)) {
  state_->step = std::move(step);
}

PeriodicTask::PeriodicTask(asio::io_context& io, std::chrono::milliseconds period, Tick tick)
    : io_(io), state_(std::make_shared<State>(io)) {
  state_->tick = std::move(tick);
  state_->period = period;
}

PeriodicTask::~PeriodicTask() { stop(); }

void PeriodicTask::start() {
  if (state_->started || state_->stopped) return;
  state_->started = true;
  asio::co_spawn(io_, run(state_), [](const std::exception_ptr& error) {
    if (error) std::rethrow_exception(error);
  });
}

void PeriodicTask::stop() {
  state_->stopped = true;
  state_->timer.cancel();
}

bool PeriodicTask::stopped() const { return state_->stopped; }

void PeriodicTask::wake() { state_->timer.cancel(); }

asio::awaitable<void> PeriodicTask::run(std::shared_ptr<State> state) {
  std::chrono::milliseconds delay{0};
  while (!state->stopped) {
    state->timer.expires_after(delay);
    boost::system::error_code ec;
    co_await state->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (state->stopped) co_return;  // else the wait ended when due, or early by wake()
    if (state->tick) {
      state->tick();
      delay = state->period;
    } else {
      delay = co_await state->step();
    }
  }
}

}  // namespace relay
