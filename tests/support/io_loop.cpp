#include "tests/support/io_loop.h"

namespace relay::test {

namespace asio = boost::asio;

bool run_until(asio::io_context& io, const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  auto work = asio::make_work_guard(io);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  if (io.stopped()) io.restart();
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    io.run_one_for(std::chrono::milliseconds(5));
  }
  return true;
}

void run_for(asio::io_context& io, std::chrono::milliseconds duration) {
  auto work = asio::make_work_guard(io);
  if (io.stopped()) io.restart();
  const auto deadline = std::chrono::steady_clock::now() + duration;
  while (std::chrono::steady_clock::now() < deadline) io.run_one_until(deadline);
}

void run_task(asio::io_context& io, asio::awaitable<void> task, std::chrono::milliseconds timeout) {
  std::exception_ptr error;
  bool finished = false;
  asio::co_spawn(io, std::move(task), [&](std::exception_ptr e) {
    finished = true;
    error = e;
  });
  if (!run_until(io, [&] { return finished; }, timeout)) {
    ADD_FAILURE() << "the task did not finish in time";
    throw std::runtime_error("task timed out");
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace relay::test
