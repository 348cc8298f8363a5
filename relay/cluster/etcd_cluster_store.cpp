#include "relay/cluster/etcd_cluster_store.h"

#include <algorithm>
#include <boost/asio/use_awaitable.hpp>
#include <optional>
#include <stdexcept>
#include <utility>

#include "relay/cluster/etcd_codec.h"
#include "relay/cluster/etcd_watch.h"
#include "relay/delivery/async_egress.h"

namespace relay::cluster {
namespace {

namespace asio = boost::asio;
using Steady = std::chrono::steady_clock;

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

EgressOptions egress_options(std::chrono::milliseconds timeout, const EtcdTls& tls) {
  EgressOptions options;
  // etcd runs on the private network, or on loopback next to relayd; the destination guard
  // protects subscribers' URLs, not the operator's own configuration.
  options.destinations.allow_private_networks = true;
  options.connect_timeout_ms = timeout.count();
  options.ca_file = tls.ca_file;
  options.client_cert_file = tls.cert_file;
  options.client_key_file = tls.key_file;
  options.max_kept_body = kMaxAnswerBytes;
  options.max_read_body = kMaxAnswerBytes;
  return options;
}

bool etcd_unavailable(int grpc_code) {
  return grpc_code == etcd::kGrpcUnavailable || grpc_code == etcd::kGrpcDeadlineExceeded;
}

// When a TLS connection without a client certificate fails after connecting, the likely cause
// is etcd's --client-cert-auth, whose refusal curl reports in words that do not say so (often
// just a closed connection): the failure says it.
std::string with_tls_hint(const std::string& url, std::string error, const EtcdTls& tls) {
  const bool connected_tls = url.starts_with("https://") && error.find("Couldn't connect") == std::string::npos &&
                             error.find("timed out") == std::string::npos &&
                             error.find("resolve") == std::string::npos &&
                             error.find("SSL certificate problem") == std::string::npos;
  if (connected_tls && tls.cert_file.empty()) {
    error += " (relay offers no client certificate: does etcd require one? see --cluster-etcd-cert)";
  }
  return error;
}

Error refusal(const etcd::GatewayError& error) {
  return make_error(error.code == etcd::kGrpcNotFound ? Errc::not_found : Errc::internal, "etcd: " + error.message);
}

}  // namespace

struct EtcdClusterStore::Sent {
  Result<std::string> answer = make_error(Errc::unavailable, "etcd: no answer");
  std::optional<std::size_t> endpoint;        // the member that answered, if one did
  std::optional<etcd::GatewayError> refusal;  // what etcd refused, when it did
  std::string failure;                        // when none answered: why
};

EtcdClusterStore::EtcdClusterStore(asio::io_context& io, EtcdOptions options, Logger& logger)
    : io_(io),
      logger_(logger),
      timeout_(options.request_timeout),
      tls_(options.tls),
      endpoints_(std::make_shared<EtcdEndpoints>(normalized(std::move(options.endpoints)), logger)),
      session_(std::make_shared<EtcdSession>(std::move(options.credentials))),
      egress_(io, egress_options(options.request_timeout, options.tls)) {}

EtcdClusterStore::~EtcdClusterStore() = default;

asio::awaitable<Result<std::string>> EtcdClusterStore::call(std::string_view path, std::string body, bool streaming) {
  const Deadline deadline = Steady::now() + timeout_;
  const auto shared_body = std::make_shared<const std::string>(std::move(body));
  bool sent_again = false;
  for (;;) {
    if (session_->needs_token()) {
      const Status authenticated = co_await authenticate(deadline);
      if (!authenticated) co_return authenticated.error();
    }
    const std::string token = session_->token();
    Sent sent = co_await send(path, shared_body, streaming, token, deadline);
    // Once per call: a token refused right after authenticating is not a matter of expiry.
    if (sent.refusal && !sent_again && session_->authenticates() &&
        etcd::token_refused(sent.refusal->code, sent.refusal->message)) {
      // Expected now and then: tokens expire. Logged, so that a token renewed on every call
      // (a TTL shorter than the pause between calls) shows.
      logger_.info("etcd refused the token: authenticating again", {{"error", sent.refusal->message}});
      session_->refused(token);
      sent_again = true;
      continue;
    }
    if (sent.endpoint) {
      endpoints_->answered(*sent.endpoint);
    } else {
      endpoints_->unreachable(sent.failure);
    }
    co_return std::move(sent.answer);
  }
}

asio::awaitable<EtcdClusterStore::Sent> EtcdClusterStore::send(std::string_view path,
                                                               std::shared_ptr<const std::string> body,
                                                               bool streaming, const std::string& token,
                                                               Deadline deadline) {
  Sent sent;
  const std::vector<std::string>& urls = endpoints_->urls();
  const std::size_t first = endpoints_->preferred() % urls.size();
  std::size_t tried = 0;
  for (; tried < urls.size(); ++tried) {
    const std::int64_t left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Steady::now()).count();
    if (left <= 0) break;
    const std::size_t index = (first + tried) % urls.size();
    EgressRequest request;
    request.url = urls[index];
    request.url += path;
    request.headers = {{"Content-Type", "application/json"}};
    if (!token.empty()) request.headers.emplace_back("Authorization", token);
    request.body = body;
    request.timeout_ms = left;
    request.connect_timeout_ms = std::max<std::int64_t>(left / static_cast<std::int64_t>(urls.size() - tried), 1);
    EgressResponse response = co_await async_send(egress_, std::move(request), asio::use_awaitable);
    const int status = response.http_status;
    if (status == 0) {
      sent.failure = urls[index] + ": " + with_tls_hint(urls[index], std::move(response.error), tls_);
      endpoints_->failed(index);
      continue;
    }
    if (status >= 500) {
      sent.failure = urls[index] + ": HTTP " + std::to_string(status) + " " +
                     etcd::parse_error_response(response.body_excerpt).message;
      endpoints_->failed(index);
      continue;
    }
    sent.endpoint = index;
    if (response.body_excerpt.size() >= kMaxAnswerBytes) {
      sent.answer = make_error(Errc::internal, "etcd answer over 64 MiB");
      co_return sent;
    }
    if (status >= 200 && status < 300) {
      if (streaming) {
        if (std::optional<etcd::GatewayError> error = etcd::parse_stream_error(response.body_excerpt)) {
          if (etcd_unavailable(error->code)) {
            sent.endpoint.reset();
            sent.failure = urls[index] + ": " + error->message;
            endpoints_->failed(index);
            continue;
          }
          sent.answer = refusal(*error);
          sent.refusal = std::move(*error);
          co_return sent;
        }
      }
      sent.answer = std::move(response.body_excerpt);
      co_return sent;
    }
    etcd::GatewayError error = etcd::parse_error_response(response.body_excerpt);
    sent.answer = refusal(error);
    sent.refusal = std::move(error);
    co_return sent;
  }
  if (tried < urls.size()) {
    if (!sent.failure.empty()) sent.failure += "; ";
    sent.failure += std::to_string(urls.size() - tried) + " of " + std::to_string(urls.size()) +
                    " endpoints not tried within the " + std::to_string(timeout_.count()) + " ms deadline";
  }
  sent.answer = make_error(Errc::unavailable, "etcd unavailable: " + sent.failure);
  co_return sent;
}

asio::awaitable<Status> EtcdClusterStore::authenticate(Deadline deadline) {
  const EtcdCredentials& credentials = session_->credentials();
  const auto body =
      std::make_shared<const std::string>(etcd::authenticate_request(credentials.user, credentials.password));
  const std::string no_token;  // a named local: no temporary inside co_await (g++ 12)
  Sent sent = co_await send("/v3/auth/authenticate", body, false, no_token, deadline);
  if (!sent.endpoint) {
    endpoints_->unreachable(sent.failure);
    co_return sent.answer.error();
  }
  if (sent.answer) {
    Result<std::string> token = etcd::parse_authenticate_response(*sent.answer);
    if (!token) co_return token.error();
    session_->set(std::move(*token));
    co_return Ok{};
  }
  if (sent.refusal && etcd::authentication_off(sent.refusal->message)) {
    // Credentials configured ahead of enabling etcd's authentication: calls go without a token
    // until etcd asks for one.
    logger_.warn("etcd has authentication off: calls go without a token", {{"user", credentials.user}});
    session_->set(std::string());
    co_return Ok{};
  }
  const std::string why = "authentication as user '" + credentials.user + "' refused: " +
                          (sent.refusal ? sent.refusal->message : sent.answer.error().message);
  endpoints_->refused(why);
  co_return make_error(Errc::unavailable, "etcd: " + why);
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
  return std::make_unique<EtcdWatch>(io_, endpoints_, session_, tls_, timeout_, std::move(prefix), from_revision,
                                     std::move(on_batch));
}

bool EtcdClusterStore::reachable() const { return endpoints_->reachable(); }

}  // namespace relay::cluster
