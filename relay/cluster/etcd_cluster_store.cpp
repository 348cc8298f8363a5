#include "relay/cluster/etcd_cluster_store.h"

#include <boost/asio/use_awaitable.hpp>
#include <stdexcept>
#include <utility>

#include "relay/cluster/etcd_codec.h"
#include "relay/cluster/etcd_watch.h"
#include "relay/delivery/async_egress.h"

namespace relay::cluster {
namespace {

namespace asio = boost::asio;

// Whole answers are kept. A range over every subscription of a large cluster is the largest
// answer expected, far below this; a larger one is refused rather than read forever.
constexpr std::size_t kMaxAnswerBytes = 64 << 20;

std::vector<std::string> normalized(std::vector<std::string> urls) {
  if (urls.empty()) throw std::invalid_argument("etcd: no endpoints");
  for (std::string& url : urls) {
    while (url.ends_with('/')) url.pop_back();
    if (url.empty()) throw std::invalid_argument("etcd: an empty endpoint URL");
  }
  return urls;
}

EgressOptions egress_options(std::chrono::milliseconds timeout) {
  EgressOptions options;
  // etcd runs on the private network, or on loopback next to relayd; the destination guard
  // protects subscribers' URLs, not the operator's own configuration.
  options.destinations.allow_private_networks = true;
  options.connect_timeout_ms = timeout.count();
  options.max_kept_body = kMaxAnswerBytes;
  options.max_read_body = kMaxAnswerBytes;
  return options;
}

bool etcd_unavailable(int grpc_code) {
  return grpc_code == etcd::kGrpcUnavailable || grpc_code == etcd::kGrpcDeadlineExceeded;
}

Error refusal(const etcd::GatewayError& error) {
  return make_error(error.code == etcd::kGrpcNotFound ? Errc::not_found : Errc::internal, "etcd: " + error.message);
}

}  // namespace

EtcdClusterStore::EtcdClusterStore(asio::io_context& io, EtcdOptions options, Logger& logger)
    : io_(io),
      timeout_(options.request_timeout),
      endpoints_(std::make_shared<EtcdEndpoints>(normalized(std::move(options.endpoints)), logger)),
      egress_(io, egress_options(options.request_timeout)) {}

EtcdClusterStore::~EtcdClusterStore() = default;

asio::awaitable<Result<std::string>> EtcdClusterStore::call(std::string_view path, std::string body, bool streaming) {
  const auto shared_body = std::make_shared<const std::string>(std::move(body));
  const std::vector<std::string>& urls = endpoints_->urls();
  const std::size_t first = endpoints_->preferred() % urls.size();
  std::string failure;
  for (std::size_t i = 0; i < urls.size(); ++i) {
    const std::size_t index = (first + i) % urls.size();
    EgressRequest request;
    request.url = urls[index];
    request.url += path;
    request.headers = {{"Content-Type", "application/json"}};
    request.body = shared_body;
    request.timeout_ms = timeout_.count();
    EgressResponse response = co_await async_send(egress_, std::move(request), asio::use_awaitable);
    const int status = response.http_status;
    if (status == 0) {
      failure = urls[index] + ": " + response.error;
      continue;
    }
    if (status >= 500) {
      failure = urls[index] + ": HTTP " + std::to_string(status) + " " +
                etcd::parse_error_response(response.body_excerpt).message;
      continue;
    }
    if (response.body_excerpt.size() >= kMaxAnswerBytes) {
      endpoints_->answered(index);
      co_return make_error(Errc::internal, "etcd answer over 64 MiB");
    }
    if (status >= 200 && status < 300) {
      if (streaming) {
        if (std::optional<etcd::GatewayError> error = etcd::parse_stream_error(response.body_excerpt)) {
          if (etcd_unavailable(error->code)) {
            failure = urls[index] + ": " + error->message;
            continue;
          }
          endpoints_->answered(index);
          co_return refusal(*error);
        }
      }
      endpoints_->answered(index);
      co_return std::move(response.body_excerpt);
    }
    endpoints_->answered(index);
    co_return refusal(etcd::parse_error_response(response.body_excerpt));
  }
  endpoints_->unreachable(failure);
  co_return make_error(Errc::unavailable, "etcd unavailable: " + failure);
}

asio::awaitable<Result<RangeResult>> EtcdClusterStore::range(std::string key, bool prefix) {
  std::string body = etcd::range_request(key, prefix);
  Result<std::string> answer = co_await call("/v3/kv/range", std::move(body), false);
  if (!answer) co_return answer.error();
  co_return etcd::parse_range_response(*answer);
}

asio::awaitable<Result<TxnResult>> EtcdClusterStore::commit(Txn txn) {
  std::string body = etcd::txn_request(txn);
  Result<std::string> answer = co_await call("/v3/kv/txn", std::move(body), false);
  if (!answer) co_return answer.error();
  co_return etcd::parse_txn_response(*answer);
}

asio::awaitable<Result<std::int64_t>> EtcdClusterStore::grant_lease(std::chrono::seconds ttl) {
  std::string body = etcd::lease_grant_request(ttl);
  Result<std::string> answer = co_await call("/v3/lease/grant", std::move(body), false);
  if (!answer) co_return answer.error();
  co_return etcd::parse_lease_grant_response(*answer);
}

asio::awaitable<Status> EtcdClusterStore::keep_alive(std::int64_t lease) {
  std::string body = etcd::lease_id_request(lease);
  Result<std::string> answer = co_await call("/v3/lease/keepalive", std::move(body), true);
  if (!answer) co_return answer.error();
  const Result<std::int64_t> ttl = etcd::parse_keepalive_response(*answer);
  if (!ttl) co_return ttl.error();
  // etcd answers a renewal of a lease it no longer knows with a TTL of 0.
  if (*ttl <= 0) co_return make_error(Errc::not_found, "etcd: lease " + std::to_string(lease) + " expired");
  co_return Ok{};
}

asio::awaitable<Status> EtcdClusterStore::revoke_lease(std::int64_t lease) {
  std::string body = etcd::lease_id_request(lease);
  Result<std::string> answer = co_await call("/v3/lease/revoke", std::move(body), false);
  if (!answer && answer.error().code != Errc::not_found) co_return answer.error();
  co_return Ok{};
}

std::unique_ptr<WatchHandle> EtcdClusterStore::watch(std::string prefix, std::int64_t from_revision,
                                                     WatchCallback on_batch) {
  return std::make_unique<EtcdWatch>(io_, endpoints_, timeout_, std::move(prefix), from_revision, std::move(on_batch));
}

bool EtcdClusterStore::reachable() const { return endpoints_->reachable(); }

}  // namespace relay::cluster
