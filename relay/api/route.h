#pragma once
// What a handler receives: the request, the {id} segment of its path, and its query.

#include <boost/asio/awaitable.hpp>
#include <map>
#include <string>

#include "relay/api/api_context.h"
#include "relay/http/http_server.h"
#include "relay/model/job.h"

namespace relay {

struct RouteRequest {
  const HttpRequest& http;
  std::string id;                             // the {id} path segment, if the route has one
  std::map<std::string, std::string> query;   // percent-decoded
};

using RouteHandler = boost::asio::awaitable<HttpResponse> (*)(ApiContext&, const RouteRequest&);

// Events (relay/api/events_api.cpp)
boost::asio::awaitable<HttpResponse> publish_event(ApiContext&, const RouteRequest&);
boost::asio::awaitable<HttpResponse> publish_event_batch(ApiContext&, const RouteRequest&);
boost::asio::awaitable<HttpResponse> get_event(ApiContext&, const RouteRequest&);
boost::asio::awaitable<HttpResponse> redeliver_event(ApiContext&, const RouteRequest&);
boost::asio::awaitable<HttpResponse> list_event_types(ApiContext&, const RouteRequest&);

// Subscriptions (relay/api/subscriptions_api.cpp)
boost::asio::awaitable<HttpResponse> create_subscription(ApiContext&, const RouteRequest&);
boost::asio::awaitable<HttpResponse> list_subscriptions(ApiContext&, const RouteRequest&);
boost::asio::awaitable<HttpResponse> get_subscription(ApiContext&, const RouteRequest&);
boost::asio::awaitable<HttpResponse> update_subscription(ApiContext&, const RouteRequest&);
boost::asio::awaitable<HttpResponse> delete_subscription(ApiContext&, const RouteRequest&);
boost::asio::awaitable<HttpResponse> rotate_subscription_secret(ApiContext&, const RouteRequest&);

// Deliveries and the dead-letter queue (relay/api/deliveries_api.cpp)
boost::asio::awaitable<HttpResponse> list_deliveries(ApiContext&, const RouteRequest&);
boost::asio::awaitable<HttpResponse> get_delivery(ApiContext&, const RouteRequest&);
boost::asio::awaitable<HttpResponse> retry_delivery(ApiContext&, const RouteRequest&);
boost::asio::awaitable<HttpResponse> list_dead_letters(ApiContext&, const RouteRequest&);
boost::asio::awaitable<HttpResponse> redrive_dead_letters(ApiContext&, const RouteRequest&);
boost::asio::awaitable<HttpResponse> discard_dead_letter(ApiContext&, const RouteRequest&);

// Replay and jobs (relay/api/jobs_api.cpp)
boost::asio::awaitable<HttpResponse> replay_subscription(ApiContext&, const RouteRequest&);
boost::asio::awaitable<HttpResponse> list_jobs(ApiContext&, const RouteRequest&);
boost::asio::awaitable<HttpResponse> get_job(ApiContext&, const RouteRequest&);
boost::asio::awaitable<HttpResponse> cancel_job(ApiContext&, const RouteRequest&);
// Stores a dlq_retry job for a redrive too large to answer inline (POST /v1/dlq/retry).
boost::asio::awaitable<HttpResponse> start_dlq_retry_job(ApiContext&, DlqRetryParams params);

}  // namespace relay
