#include "relay/cluster/egress_peer_client.h"

#include <boost/asio/use_awaitable.hpp>
#include <memory>
#include <utility>

#include "relay/delivery/async_egress.h"

namespace relay::cluster {

namespace asio = boost::asio;

namespace {

constexpr std::size_t kMaxAnswerBytes = 64u << 20;

EgressOptions peer_egress_options() {
  EgressOptions options;
  options.destinations.allow_private_networks = true;
  options.max_kept_body = kMaxAnswerBytes;
  options.max_read_body = kMaxAnswerBytes;
  return options;
}

HttpMethod method_of(const std::string& method) {
  if (method == "GET") return HttpMethod::get;
  if (method == "PUT") return HttpMethod::put;
  if (method == "PATCH") return HttpMethod::patch;
  if (method == "DELETE") return HttpMethod::del;
  return HttpMethod::post;
}

}  // namespace

EgressPeerClient::EgressPeerClient(asio::io_context& io) : egress_(io, peer_egress_options()) {}

asio::awaitable<Result<PeerResponse>> EgressPeerClient::send(std::string base_url, PeerRequest request,
                                                             std::chrono::milliseconds timeout) {
  EgressRequest out;
  out.url = std::move(base_url) + request.target;
  out.method = method_of(request.method);
  out.headers = std::move(request.headers);
  if (!request.body.empty()) out.body = std::make_shared<const std::string>(std::move(request.body));
  out.timeout_ms = timeout.count();
  out.response_headers.emplace_back(kStatusesHeader);
  const std::string url = out.url;
  EgressResponse answer = co_await async_send(egress_, std::move(out), asio::use_awaitable);
  if (answer.http_status == 0) co_return make_error(Errc::unavailable, url + ": " + answer.error);
  if (answer.body_excerpt.size() >= kMaxAnswerBytes) {
    co_return make_error(Errc::unavailable, url + ": an answer over 64 MiB");
  }
  PeerResponse response;
  response.status = answer.http_status;
  response.body = std::move(answer.body_excerpt);
  if (!response.body.empty()) response.headers.emplace_back("Content-Type", "application/json");
  if (answer.retry_after) response.headers.emplace_back("Retry-After", *answer.retry_after);
  for (auto& header : answer.headers) response.headers.push_back(std::move(header));
  co_return response;
}

}  // namespace relay::cluster
