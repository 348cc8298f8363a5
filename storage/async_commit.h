#pragma once
// Bridge from Asio coroutines on the event loop to the commit pipeline's writer
// thread: co_await a command until the group holding it is durable. The
// completion resumes on the caller's executor, so coroutines keep
// single-threaded ownership of event-loop state. The command is taken by
// reference and copied (g++ 12 and temporaries in co_await: see
// relay/core/async_bridge.h).

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <functional>
#include <memory>
#include <utility>

#include "storage/commit_pipeline.h"

namespace relay {

// Submits `command` and completes with its Status once the group holding it is durable.
// `on_durable` (may be empty) runs on the writer thread right after a successful commit, before
// the completion is posted: in commit order, whatever order the awaiting coroutines resume in
// (the subscription registry is updated this way).
template <typename CompletionToken>
auto async_commit(CommitPipeline& pipeline, const CommitPipeline::Command& command,
                  const std::function<void()>& on_durable, CompletionToken&& token) {
  return boost::asio::async_initiate<CompletionToken, void(Status)>(
      [&pipeline](auto handler, CommitPipeline::Command cmd, std::function<void()> after) {
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        auto work = std::make_shared<boost::asio::executor_work_guard<boost::asio::any_io_executor>>(
            boost::asio::get_associated_executor(*shared));
        pipeline.submit(std::move(cmd), [shared, work, after = std::move(after)](const Status& status) {
          if (status && after) after();
          auto executor = boost::asio::get_associated_executor(*shared);
          boost::asio::post(executor, [shared, status, work]() mutable {
            std::move (*shared)(status);
            work->reset();
          });
        });
      },
      token, command, on_durable);
}

template <typename CompletionToken>
auto async_commit(CommitPipeline& pipeline, const CommitPipeline::Command& command, CompletionToken&& token) {
  return async_commit(pipeline, command, std::function<void()>(), std::forward<CompletionToken>(token));
}

}  // namespace relay
