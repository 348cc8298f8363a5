#pragma once
// Maps each request to its route, checks the API key and its scope, answers health, readiness
// and metrics, and records relay_http_requests_total / relay_http_request_duration_seconds
// with the route template (never the concrete path) as label.

#include <boost/asio/awaitable.hpp>
#include <optional>

#include "relay/api/api_context.h"
#include "relay/http/http_server.h"

namespace relay {

class ClusterRouter;

class ApiRouter {
 public:
  // With `cluster` (cluster mode), each route runs where its ClusterPolicy says; without it,
  // every route runs here.
  explicit ApiRouter(ApiContext& context, ClusterRouter* cluster = nullptr) : context_(context), cluster_(cluster) {}

  boost::asio::awaitable<HttpResponse> handle(HttpRequest request);
  // For HttpServer, from the header alone: the refusal (401, 403, 503 draining, 429 ingest
  // bound) of a request whose body should not be read, counted like any answer; else nullopt.
  std::optional<HttpResponse> screen(const HttpRequest& header);
  // For requests refused by the server (413 oversize, 400 malformed, 503 body memory spent): the
  // error JSON, counted too.
  HttpResponse reject(int status);

 private:
  ApiContext& context_;
  ClusterRouter* cluster_;
};

}  // namespace relay
