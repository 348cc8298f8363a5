// The cluster layer's dispatch, its calls to other shards, and the calls that name an id or list.
// Bulk calls are in cluster_bulk.cpp, ingest in cluster_ingest.cpp.

#include "relay/api/cluster_router.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/string.hpp>

#include <algorithm>
#include <exception>

#include "relay/api/http_responses.h"
#include "relay/api/request_parsing.h"
#include "relay/cluster/list_merge.h"
#include "storage/keys.h"

namespace relay {

namespace asio = boost::asio;
namespace http = boost::beast::http;

namespace {

// As the list handlers (relay/api/deliveries_api.cpp, jobs_api.cpp): a page's default and
// largest size. The shards check `limit`; the merge takes the same number of items.
constexpr std::size_t kDefaultPageSize = 100;
constexpr std::size_t kMaxPageSize = 1000;

std::size_t page_limit(const std::map<std::string, std::string>& query) {
  const auto it = query.find("limit");
  if (it == query.end()) return kDefaultPageSize;
  const auto limit = parse_page_limit(it->second, kMaxPageSize);
  return limit ? *limit : kDefaultPageSize;
}

// The headers of another shard's answer that the caller gets too.
bool kept_header(std::string_view name) {
  return boost::beast::iequals(name, "Content-Type") || boost::beast::iequals(name, "Retry-After");
}

}  // namespace

ClusterRouter::ClusterRouter(const cluster::ClusterView& view, cluster::PeerClient& peers, RelayMetrics& metrics,
                             Logger& logger, Options options)
    : view_(view),
      peers_(peers),
      metrics_(metrics),
      logger_(logger),
      options_(std::move(options)),
      coalescer_(peers, metrics, cluster::ForwardCoalescer::Options{.timeout = options_.timeout,
                                                                     .max_in_flight = options_.forwards_in_flight,
                                                                     .max_batch_bytes = options_.max_body_bytes}) {
  metrics_.add_cluster_forwarding();
}

bool ClusterRouter::forwarded(const HttpRequest& request) { return !request[kForwardedBy].empty(); }

asio::awaitable<HttpResponse> ClusterRouter::handle(ClusterPolicy policy, const LocalHandler& local,
                                                    const RouteRequest& request) {
  using Mode = ClusterPolicy::Mode;
  // Another shard decided already: one hop at most, whatever this shard thinks of membership.
  if (forwarded(request.http)) co_return co_await local(request);
  switch (policy.mode) {
    case Mode::local: break;
    case Mode::by_id: co_return co_await by_id(policy, local, request);
    case Mode::merge_list:
    case Mode::event_types: co_return co_await merge_list(policy, local, request);
    case Mode::redrive: co_return co_await redrive(local, request);
    case Mode::replay: co_return co_await replay(local, request);
    case Mode::ingest: co_return co_await ingest(local, request);
    case Mode::ingest_batch: co_return co_await ingest_batch(local, request);
  }
  co_return co_await local(request);
}

asio::awaitable<HttpResponse> ClusterRouter::by_id(ClusterPolicy policy, const LocalHandler& local,
                                                   const RouteRequest& request) {
  // A malformed id, this shard's, or one no shard made: answered here as a single node would.
  const auto number = keys::id_instance(request.id, policy.id_prefix);
  if (!number || *number == view_.self().number) co_return co_await local(request);
  auto shard = view_.shard_by_number(*number);
  if (!shard) co_return co_await local(request);
  if (!shard->live) {
    co_return error_response(Errc::shard_unavailable,
                             "shard " + shard->name + ", which holds " + request.id + ", is not live: retry later");
  }
  const auto kind = request.http.method() == http::verb::get ? RelayMetrics::ForwardKind::read
                                                             : RelayMetrics::ForwardKind::write;
  cluster::PeerRequest forward = peer_request(request.http, std::string(request.http.body()));
  const Part part = co_await call(std::move(*shard), std::move(forward), kind);
  co_return part.answered ? response_of(part) : shard_unavailable(part);
}

asio::awaitable<HttpResponse> ClusterRouter::merge_list(ClusterPolicy policy, const LocalHandler& local,
                                                        const RouteRequest& request) {
  std::vector<cluster::ShardInfo> shards = others();
  const std::vector<std::string> missing = down();
  if (shards.empty() && missing.empty()) co_return co_await local(request);
  cluster::PeerRequest forward = peer_request(request.http, "");
  const std::vector<Part> parts =
      co_await call_all(std::move(shards), std::move(forward), RelayMetrics::ForwardKind::list, &local, &request);
  // This shard's own answer settles a bad query (every shard would refuse it alike).
  if (parts.front().status != 200) co_return response_of(parts.front());
  const auto usable = [this](const Part& part) {
    if (part.answered && part.status != 200) {
      logger_.warn("shard refused its part of a list", {{"shard", part.shard}, {"status", part.status}});
    }
    return part.answered && part.status == 200;
  };
  if (policy.mode == ClusterPolicy::Mode::event_types) {
    std::vector<cluster::ShardEventTypes> shard_types;
    for (const Part& part : parts) {
      shard_types.push_back(usable(part) ? cluster::parse_event_types(part.shard, part.body)
                                         : cluster::ShardEventTypes::missing(part.shard));
    }
    for (const auto& name : missing) shard_types.push_back(cluster::ShardEventTypes::missing(name));
    co_return json_response(200, cluster::merge_event_types(shard_types));
  }
  std::vector<cluster::ShardPage> pages;
  for (const Part& part : parts) {
    pages.push_back(usable(part) ? cluster::parse_page(policy.list, part.shard, part.body)
                                 : cluster::ShardPage::missing(part.shard));
  }
  for (const auto& name : missing) pages.push_back(cluster::ShardPage::missing(name));
  co_return json_response(200, cluster::to_json(cluster::merge_pages(policy.list, std::move(pages),
                                                                     page_limit(request.query))));
}

std::vector<std::string> ClusterRouter::down() const {
  const std::string self = view_.self().name;
  std::vector<std::string> out;
  for (const auto& shard : view_.known_shards()) {
    if (!shard.live && shard.name != self) out.push_back(shard.name);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::vector<cluster::ShardInfo> ClusterRouter::others() const {
  const std::string self = view_.self().name;
  std::vector<cluster::ShardInfo> out;
  for (auto& shard : view_.live_shards()) {
    if (shard.name == self) continue;
    if (std::any_of(out.begin(), out.end(), [&](const auto& s) { return s.name == shard.name; })) continue;
    out.push_back(std::move(shard));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

cluster::PeerRequest ClusterRouter::peer_request(const HttpRequest& request, std::string body) const {
  cluster::PeerRequest out;
  out.method = std::string(request.method_string());
  out.target = std::string(request.target());
  out.body = std::move(body);
  if (const auto type = request[http::field::content_type]; !type.empty()) {
    out.headers.emplace_back("Content-Type", std::string(type));
  }
  if (const auto key = request["Idempotency-Key"]; !key.empty()) {
    out.headers.emplace_back("Idempotency-Key", std::string(key));
  }
  if (!options_.api_key.empty()) out.headers.emplace_back("Authorization", "Bearer " + options_.api_key);
  out.headers.emplace_back(std::string(kForwardedBy), view_.self().name);
  return out;
}

asio::awaitable<ClusterRouter::Part> ClusterRouter::call(cluster::ShardInfo shard, cluster::PeerRequest request,
                                                         RelayMetrics::ForwardKind kind) {
  metrics_.cluster_forwarded(kind);
  std::string name = shard.name;
  auto answer = co_await peers_.send(std::move(shard.base_url), std::move(request), options_.timeout);
  co_return part_of(std::move(name), std::move(answer));
}

ClusterRouter::Part ClusterRouter::part_of(std::string shard, Result<cluster::PeerResponse> answer) {
  Part part;
  part.shard = std::move(shard);
  if (!answer) {
    part.error = answer.error().message;
    logger_.warn("shard did not answer", {{"shard", part.shard}, {"error", part.error}});
    return part;
  }
  part.answered = true;
  part.status = answer->status;
  part.body = std::move(answer->body);
  part.headers = std::move(answer->headers);
  return part;
}

asio::awaitable<ClusterRouter::Part> ClusterRouter::call_local(const LocalHandler& local,
                                                               const RouteRequest& request) {
  HttpResponse response = co_await local(request);
  Part part;
  part.shard = view_.self().name;
  part.answered = true;
  part.status = response.result_int();
  part.body = std::move(response.body());
  for (const auto& field : response) {
    if (kept_header(field.name_string())) {
      part.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
  }
  co_return part;
}

asio::awaitable<std::vector<ClusterRouter::Part>> ClusterRouter::call_all(std::vector<cluster::ShardInfo> shards,
                                                                          cluster::PeerRequest request,
                                                                          RelayMetrics::ForwardKind kind,
                                                                          const LocalHandler* local,
                                                                          const RouteRequest* local_request) {
  std::vector<cluster::PeerRequest> requests(shards.size(), request);
  co_return co_await call_each(std::move(shards), std::move(requests), kind, local, local_request);
}

asio::awaitable<std::vector<ClusterRouter::Part>> ClusterRouter::call_each(std::vector<cluster::ShardInfo> shards,
                                                                           std::vector<cluster::PeerRequest> requests,
                                                                           RelayMetrics::ForwardKind kind,
                                                                           const LocalHandler* local,
                                                                           const RouteRequest* local_request) {
  const auto executor = co_await asio::this_coro::executor;
  using Operation = decltype(asio::co_spawn(executor, std::declval<asio::awaitable<Part>>(), asio::deferred));
  std::vector<Operation> operations;
  std::vector<std::string> names;
  if (local != nullptr) {
    operations.push_back(asio::co_spawn(executor, call_local(*local, *local_request), asio::deferred));
    names.push_back(view_.self().name);
  }
  for (std::size_t i = 0; i < shards.size(); ++i) {
    names.push_back(shards[i].name);
    operations.push_back(
        asio::co_spawn(executor, call(std::move(shards[i]), std::move(requests.at(i)), kind), asio::deferred));
  }
  if (operations.empty()) co_return std::vector<Part>{};
  auto [order, exceptions, parts] = co_await asio::experimental::make_parallel_group(std::move(operations))
                                         .async_wait(asio::experimental::wait_for_all(), asio::use_awaitable);
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (!exceptions[i]) continue;
    // A handler or client that throws is a bug; its part is missing rather than the whole call.
    parts[i] = Part{};
    parts[i].shard = names[i];
    parts[i].error = "the call failed";
    logger_.error("a shard's part of a call threw", {{"shard", names[i]}});
  }
  co_return std::move(parts);
}

HttpResponse ClusterRouter::response_of(const Part& part) {
  HttpResponse response = empty_response(part.status);
  for (const auto& [name, value] : part.headers) {
    if (kept_header(name)) response.set(name, value);
  }
  response.body() = part.body;
  return response;
}

HttpResponse ClusterRouter::shard_unavailable(const Part& part) const {
  return error_response(Errc::shard_unavailable, "shard " + part.shard + " did not answer within " +
                                                     std::to_string(options_.timeout.count()) +
                                                     " ms (" + part.error + "): retry later");
}

cluster::ShardAnswer ClusterRouter::answer_of(const Part& part) {
  return cluster::ShardAnswer{part.shard, part.answered, part.status, part.body};
}

std::string peer_api_key(const Config& config) {
  for (const ApiKey& key : config.api_keys) {
    if (key.scope == ApiScope::admin) return key.key;
  }
  return "";
}

}  // namespace relay
