#pragma once
// Bridges from Asio coroutines on the event loop to work that runs on other
// threads: the commit pipeline (writes) and the blocking pool (scans). The
// completion always resumes on the caller's executor, so handlers keep
// single-threaded ownership of event-loop state.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <memory>
#include <type_traits>
#include <utility>

#include "storage/commit_pipeline.h"

namespace relay {

// g++ 12 destroys non-trivial temporaries inside a co_await expression twice,
// so both functions take their callable by reference and copy it: call sites
// pass a named variable.

// Submits `command` and completes with its Status once the group holding it is
// durable.
template <typename CompletionToken>
auto async_commit(CommitPipeline& pipeline, const CommitPipeline::Command& command, CompletionToken&& token) {
  return boost::asio::async_initiate<CompletionToken, void(Status)>(
      [&pipeline](auto handler, CommitPipeline::Command cmd) {
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        auto work = std::make_shared<boost::asio::executor_work_guard<boost::asio::any_io_executor>>(
            boost::asio::get_associated_executor(*shared));
        pipeline.submit(std::move(cmd), [shared, work](const Status& status) {
          auto executor = boost::asio::get_associated_executor(*shared);
          boost::asio::post(executor, [shared, status, work]() mutable {
            std::move (*shared)(status);
            work->reset();
          });
        });
      },
      token, command);
}

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
