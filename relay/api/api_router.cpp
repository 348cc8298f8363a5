#include "relay/api/api_router.h"

#include <openssl/crypto.h>

#include <boost/beast/core/string.hpp>

#include <array>
#include <chrono>
#include <map>
#include <optional>
#include <string>

#include "metrics/relay_metrics.h"
#include "relay/api/cluster_policy.h"
#include "relay/api/cluster_router.h"
#include "relay/api/http_responses.h"
#include "relay/api/request_parsing.h"
#include "relay/api/route.h"
#include "relay/delivery/delivery_scheduler.h"
#include "storage/keys.h"

namespace relay {

namespace http = boost::beast::http;

namespace {

enum class Access { open, ingest, admin };

// What a client refused by --max-pending-deliveries is told to wait: deliveries drain in seconds.
constexpr int kPendingRetryAfterSeconds = 5;

using Mode = ClusterPolicy::Mode;

struct Route {
  http::verb method;
  std::string_view path;  // "{id}" marks the one variable segment
  Access access;
  RouteHandler handler;  // nullptr for the built-in health, readiness and metrics routes
  ClusterPolicy cluster = {};  // where it runs in cluster mode (relay/api/cluster_policy.h)
};

// A row without a cluster policy runs where it arrives in cluster mode too: health, readiness,
// metrics, and subscriptions (every shard holds the copy etcd shares; writes go to etcd).
constexpr std::array kRoutes = {
    Route{http::verb::get, "/healthz", Access::open, nullptr},
    Route{http::verb::get, "/readyz", Access::open, nullptr},
    Route{http::verb::get, "/metrics", Access::open, nullptr},
    Route{http::verb::post, "/v1/events", Access::ingest, &publish_event, on_owner(Mode::ingest)},
    Route{http::verb::post, "/v1/events/batch", Access::ingest, &publish_event_batch, on_owner(Mode::ingest_batch)},
    Route{http::verb::get, "/v1/events/{id}", Access::admin, &get_event, by_id(keys::kEventPrefix)},
    Route{http::verb::post, "/v1/events/{id}/redeliver", Access::admin, &redeliver_event, by_id(keys::kEventPrefix)},
    Route{http::verb::get, "/v1/event-types", Access::admin, &list_event_types, on_every_shard(Mode::event_types)},
    Route{http::verb::post, "/v1/subscriptions", Access::admin, &create_subscription},
    Route{http::verb::get, "/v1/subscriptions", Access::admin, &list_subscriptions},
    Route{http::verb::get, "/v1/subscriptions/{id}", Access::admin, &get_subscription},
    Route{http::verb::patch, "/v1/subscriptions/{id}", Access::admin, &update_subscription},
    Route{http::verb::delete_, "/v1/subscriptions/{id}", Access::admin, &delete_subscription},
    Route{http::verb::post, "/v1/subscriptions/{id}/rotate-secret", Access::admin, &rotate_subscription_secret},
    Route{http::verb::get, "/v1/deliveries", Access::admin, &list_deliveries,
          merged_list(cluster::ListKind::deliveries)},
    Route{http::verb::get, "/v1/deliveries/{id}", Access::admin, &get_delivery, by_id(keys::kDeliveryPrefix)},
    Route{http::verb::post, "/v1/deliveries/{id}/retry", Access::admin, &retry_delivery, by_id(keys::kDeliveryPrefix)},
    Route{http::verb::get, "/v1/dlq", Access::admin, &list_dead_letters, merged_list(cluster::ListKind::dead_letters)},
    Route{http::verb::post, "/v1/dlq/retry", Access::admin, &redrive_dead_letters, on_every_shard(Mode::redrive)},
    Route{http::verb::delete_, "/v1/dlq/{id}", Access::admin, &discard_dead_letter, by_id(keys::kDeliveryPrefix)},
    Route{http::verb::post, "/v1/subscriptions/{id}/replay", Access::admin, &replay_subscription,
          on_every_shard(Mode::replay)},
    Route{http::verb::get, "/v1/jobs", Access::admin, &list_jobs, merged_list(cluster::ListKind::jobs)},
    Route{http::verb::get, "/v1/jobs/{id}", Access::admin, &get_job, by_id(keys::kJobPrefix)},
    Route{http::verb::post, "/v1/jobs/{id}/cancel", Access::admin, &cancel_job, by_id(keys::kJobPrefix)},
};

// Matches `path` against a route template; on success `id` holds the {id}
// segment.
bool path_matches(std::string_view pattern, std::string_view path, std::string& id) {
  while (!pattern.empty() && !path.empty()) {
    const auto brace = pattern.find("{id}");
    if (brace == std::string_view::npos) return pattern == path;
    if (path.substr(0, brace) != pattern.substr(0, brace)) return false;
    path.remove_prefix(brace);
    pattern.remove_prefix(brace + 4);
    const auto slash = path.find('/');
    id = std::string(path.substr(0, slash));
    if (id.empty()) return false;
    path.remove_prefix(slash == std::string_view::npos ? path.size() : slash);
    if (pattern.empty()) return path.empty();
  }
  return pattern == path;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  // Length is not secret; contents are compared without early exit.
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string_view presented_key(const HttpRequest& request) {
  const auto authorization = request[http::field::authorization];
  constexpr std::string_view kBearer = "bearer ";
  // The scheme name is case-insensitive (RFC 9110, section 11.1).
  if (authorization.size() > kBearer.size() &&
      boost::beast::iequals(authorization.substr(0, kBearer.size()), kBearer)) {
    return authorization.substr(kBearer.size());
  }
  return request["X-Api-Key"];
}

// The scope granted to the request's key, or an error.
Result<ApiScope> authenticate(const Config& config, const HttpRequest& request) {
  if (config.api_keys.empty() && config.insecure_no_auth) return ApiScope::admin;
  const std::string_view key = presented_key(request);
  if (key.empty())
    return make_error(Errc::unauthorized, "an API key is required (Authorization: Bearer KEY or X-Api-Key)");
  std::optional<ApiScope> scope;
  for (const ApiKey& configured : config.api_keys) {
    // Every key is compared so that timing does not tell which one matched.
    if (constant_time_equal(configured.key, key) && (!scope || configured.scope == ApiScope::admin)) {
      scope = configured.scope;
    }
  }
  if (!scope) return make_error(Errc::unauthorized, "the API key is not valid");
  return *scope;
}

// Refusals that the request line and headers settle alone, before the handler (and before the
// body is read): missing or wrong key, wrong scope, shutting down, and the ingest bound.
std::optional<HttpResponse> access_refusal(const ApiContext& context, const Route& route, const HttpRequest& request) {
  auto scope = authenticate(context.config, request);
  if (!scope) return error_response(scope.error());
  if (route.access == Access::admin && *scope != ApiScope::admin) {
    return error_response(Errc::forbidden, "this API key may only publish events");
  }
  if (context.draining.load()) return error_response(Errc::unavailable, "relay is shutting down");
  const std::uint64_t bound = context.config.max_pending_deliveries;
  if (route.access == Access::ingest && bound != 0 && context.scheduler.pending_deliveries() >= bound) {
    HttpResponse response = error_response(
        Errc::too_many_requests, "too many deliveries are pending (--max-pending-deliveries " + std::to_string(bound) +
                                     "): retry later");
    response.set(http::field::retry_after, std::to_string(kPendingRetryAfterSeconds));
    return response;
  }
  return std::nullopt;
}

// The query parameters. A route without an {id} segment matched its own literal path, which is
// well formed: without a '?' there is nothing to parse.
Result<std::map<std::string, std::string>> query_of(std::string_view target, const std::string& id) {
  if (id.empty() && target.find('?') == std::string_view::npos) return std::map<std::string, std::string>{};
  return parse_query(target);
}

}  // namespace

boost::asio::awaitable<HttpResponse> ApiRouter::handle(HttpRequest request) {
  const auto started = std::chrono::steady_clock::now();
  const std::string_view target = request.target();
  const std::string_view path = target.substr(0, target.find('?'));

  const Route* route = nullptr;
  bool path_known = false;
  std::string id;
  for (const Route& candidate : kRoutes) {
    std::string candidate_id;
    if (!path_matches(candidate.path, path, candidate_id)) continue;
    path_known = true;
    if (candidate.method == request.method()) {
      route = &candidate;
      id = std::move(candidate_id);
      break;
    }
  }

  HttpResponse response;
  const std::string_view route_label = route != nullptr ? route->path : (path_known ? "unmatched_method" : "unmatched");
  if (route == nullptr) {
    response = path_known ? error_response(Errc::method_not_allowed, "method not allowed on " + std::string(path))
                          : error_response(Errc::not_found, "no route " + std::string(path));
  } else if (route->path == "/healthz") {
    response = json_response(200, {{"status", "ok"}});
  } else if (route->path == "/readyz") {
    response = context_.draining.load()     ? error_response(Errc::unavailable, "relay is shutting down")
               : !context_.store.writable() ? error_response(Errc::unavailable, "storage is not writable")
                                            : json_response(200, {{"status", "ready"}});
  } else if (route->path == "/metrics") {
    response = empty_response(200);
    response.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    response.body() = context_.metrics.scrape();
  } else if (auto refusal = access_refusal(context_, *route, request)) {
    response = std::move(*refusal);
  } else if (auto query = query_of(target, id); !query) {
    response = error_response(query.error());
  } else {
    RouteRequest route_request{request, std::move(id), std::move(*query)};
    if (cluster_ != nullptr && route->cluster.mode != Mode::local) {
      const RouteHandler handler = route->handler;
      const ClusterRouter::LocalHandler local = [this, handler](const RouteRequest& r) { return handler(context_, r); };
      response = co_await cluster_->handle(route->cluster, local, route_request);
    } else {
      response = co_await route->handler(context_, route_request);
    }
  }

  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  context_.metrics.http_request(route_label, request.method_string(), response.result_int(), seconds);
  co_return response;
}

std::optional<HttpResponse> ApiRouter::screen(const HttpRequest& header) {
  const std::string_view target = header.target();
  const std::string_view path = target.substr(0, target.find('?'));
  // Only a refusal is answered here; everything else, unknown routes included, is left to handle().
  for (const Route& route : kRoutes) {
    std::string id;
    if (route.method != header.method() || !path_matches(route.path, path, id)) continue;
    if (route.access == Access::open) return std::nullopt;
    std::optional<HttpResponse> refusal = access_refusal(context_, route, header);
    if (refusal) context_.metrics.http_request(route.path, header.method_string(), refusal->result_int(), 0.0);
    return refusal;
  }
  return std::nullopt;
}

HttpResponse ApiRouter::reject(int status) {
  if (status == 503) {
    HttpResponse response =
        error_response(Errc::unavailable, "request bodies in flight have reached --max-body-memory (" +
                                              std::to_string(context_.config.max_body_memory) + " bytes): retry later");
    response.set(http::field::retry_after, "1");
    context_.metrics.http_request("rejected", "", status, 0.0);
    return response;
  }

  HttpResponse response = status == 413 ? error_response(Errc::payload_too_large,
                                                         "the request body exceeds --max-body (" +
                                                             std::to_string(context_.config.max_body_bytes) + " bytes)")
                                        : error_response(Errc::invalid_field, "the HTTP request is malformed");
  context_.metrics.http_request("rejected", "", status, 0.0);
  return response;
}

}  // namespace relay
