#pragma once
// Bridge from Asio coroutines on the event loop to the blocking pool (disk
// scans). The completion always resumes on the caller's executor, so handlers
// keep single-threaded ownership of event-loop state. Commits have their own
// bridge, storage/async_commit.h.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <type_traits>
#include <utility>

namespace relay {

// g++ 12 destroys non-trivial temporaries inside a co_await expression twice,
// so bridges like this one take their callable by reference and copy it: call
// sites pass a named variable.

// Runs `fn` on `pool` and completes with its result on the caller's executor.
template <typename Fn, typename CompletionToken>
auto run_blocking(boost::asio::thread_pool& pool, const Fn& fn, CompletionToken&& token) {
  using R = std::invoke_result_t<Fn&>;
  return boost::asio::async_initiate<CompletionToken, void(R)>(
      [&pool](auto handler, Fn f) {
        auto work = boost::asio::make_work_guard(boost::asio::get_associated_executor(handler));
        boost::asio::post(pool, [h = std::move(handler), f = std::move(f), w = std::move(work)]() mutable {
          R result = f();
          auto executor = w.get_executor();
          boost::asio::post(executor,
                            [h = std::move(h), r = std::move(result)]() mutable { std::move(h)(std::move(r)); });
          w.reset();
        });
      },
      token, fn);
}

}  // namespace relay
