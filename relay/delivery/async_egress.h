#pragma once
// async_send: an Egress request as an Asio asynchronous operation, so that a coroutine can
// `co_await async_send(egress, std::move(request), boost::asio::use_awaitable)` instead of
// passing a callback. It completes through the egress's callback, which runs on the io_context
// the egress was given; an egress destroyed first never completes it.

#include <boost/asio/async_result.hpp>
#include <memory>
#include <utility>

#include "relay/delivery/egress.h"

namespace relay {

template <typename CompletionToken>
auto async_send(Egress& egress, EgressRequest request, CompletionToken&& token) {
  return boost::asio::async_initiate<CompletionToken, void(EgressResponse)>(
      [&egress](auto handler, EgressRequest r) {
        // Egress::Callback is a std::function, which must be copyable; Asio's handlers are
        // move-only.
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        egress.send(std::move(r), [shared](EgressResponse response) { std::move (*shared)(std::move(response)); });
      },
      token, std::move(request));
}

}  // namespace relay
