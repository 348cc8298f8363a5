// Events: publish (single and batch), read, redeliver, and the event types seen
// so far.

#include <boost/asio/use_awaitable.hpp>
#include <optional>
#include <string>

#include "metrics/relay_metrics.h"
#include "relay/api/event_parsing.h"
#include "relay/api/api_json.h"
#include "relay/api/cluster_router.h"
#include "relay/api/http_responses.h"
#include "relay/api/request_parsing.h"
#include "relay/api/route.h"
#include "relay/core/async_bridge.h"
#include "relay/delivery/delivery_scheduler.h"
#include "storage/async_commit.h"
#include "storage/mutations.h"
#include "storage/queries.h"

namespace relay {

using nlohmann::json;
namespace asio = boost::asio;

namespace {

// One ingest: the events to stage and, once committed, what became of each. The handler and
// the command on the writer thread share it.
struct Ingest {
  std::vector<mutations::NewEvent> events;
  std::vector<mutations::IngestedEvent> results;
};

// Stages the ingest of the events as one command: all of them commit in the same
// atomic batch. Matching runs inside the command, on the writer thread, so it
// sees exactly the subscriptions committed before this event.
CommitPipeline::Command ingest_command(ApiContext& ctx, std::shared_ptr<Ingest> ingest) {
  return [&ctx, ingest = std::move(ingest)](WriteTxn& txn) -> Status {
    const UnixMillis now = ctx.clock.now_ms();
    ingest->results.clear();
    ingest->results.resize(ingest->events.size());
    for (std::size_t i = 0; i < ingest->events.size(); ++i) {
      const auto& event = ingest->events[i];
      const RoutedEvent routed{event.tenant, event.type, event.payload ? std::string_view(*event.payload) : ""};
      if (auto status = mutations::ingest(txn, event, ctx.subscriptions.matching(routed), ctx.ids, now,
                                          ingest->results[i]);
          !status) {
        return status;
      }
    }
    return Ok{};
  };
}

// Hands fresh deliveries to the scheduler and counts what was ingested.
void after_ingest(ApiContext& ctx, std::vector<mutations::IngestedEvent>& results) {
  std::uint64_t created = 0, repeated = 0, deliveries = 0;
  for (auto& result : results) {
    if (!result.created) {
      ++repeated;
      continue;
    }
    ++created;
    deliveries += result.deliveries.size();
    if (!result.deliveries.empty()) ctx.scheduler.enqueue(std::move(result.deliveries), result.event.payload);
  }
  if (created != 0) ctx.metrics.events_ingested(created);
  if (repeated != 0) ctx.metrics.events_deduplicated(repeated);
  if (deliveries != 0) ctx.metrics.deliveries_created(deliveries);
}

// {"deliveries":N,"id":"evt_..."}, as nlohmann would write it (keys sorted) but without a tree.
// Event ids are a prefix and hex digits (storage/keys.h): nothing to escape.
void append_ingest_answer(std::string& out, const mutations::IngestedEvent& result) {
  out += R"({"deliveries":)";
  out += std::to_string(result.delivery_count);
  out += R"(,"id":")";
  out += result.event.id;
  out += R"("})";
}

}  // namespace

asio::awaitable<HttpResponse> publish_event(ApiContext& ctx, const RouteRequest& req) {
  auto event = parse_event_body(req.http, req.http["Idempotency-Key"]);
  if (!event) co_return error_response(event.error());

  auto ingest = std::make_shared<Ingest>();
  ingest->events.push_back(std::move(*event));
  const auto command = ingest_command(ctx, ingest);
  const Status status = co_await async_commit(ctx.pipeline, command, asio::use_awaitable);
  if (!status) co_return error_response(status.error());
  std::string answer;
  answer.reserve(64);
  append_ingest_answer(answer, ingest->results.front());
  const bool created = ingest->results.front().created;
  after_ingest(ctx, ingest->results);
  co_return json_text_response(created ? 202 : 200, std::move(answer));
}

asio::awaitable<HttpResponse> publish_event_batch(ApiContext& ctx, const RouteRequest& req) {
  auto items = parse_event_batch_body(req.http);
  if (!items) co_return error_response(items.error());

  // Invalid items answer with their error in place; the valid ones commit
  // together.
  std::vector<std::optional<Error>> errors(items->size());
  auto ingest = std::make_shared<Ingest>();
  for (std::size_t i = 0; i < items->size(); ++i) {
    auto& event = (*items)[i];
    if (!event) {
      errors[i] = event.error();
      continue;
    }
    ingest->events.push_back(std::move(*event));
  }
  if (!ingest->events.empty()) {
    const auto command = ingest_command(ctx, ingest);
    const Status status = co_await async_commit(ctx.pipeline, command, asio::use_awaitable);
    if (!status) co_return error_response(status.error());
  }
  // {"results":[...]} in the order of the request. Another shard that coalesced its producers'
  // events into this batch is also told the status each would have had alone
  // (relay/cluster/forward_coalescer.h): a result does not tell a repeat (200) from a new event.
  const bool forwarded = ClusterRouter::forwarded(req.http);
  std::string statuses;
  std::string answer = R"({"results":[)";
  std::size_t committed = 0;
  for (std::size_t i = 0; i < errors.size(); ++i) {
    if (i != 0) answer += ',';
    int status = 0;
    if (errors[i]) {
      answer += error_json(*errors[i]);
      status = errc_http_status(errors[i]->code);
    } else {
      const auto& result = ingest->results[committed++];
      append_ingest_answer(answer, result);
      status = result.created ? 202 : 200;
    }
    if (forwarded) {
      if (i != 0) statuses += ',';
      statuses += std::to_string(status);
    }
  }
  answer += "]}";
  after_ingest(ctx, ingest->results);
  HttpResponse response = json_text_response(200, std::move(answer));
  if (forwarded) response.set(cluster::kStatusesHeader, statuses);
  co_return response;
}

asio::awaitable<HttpResponse> get_event(ApiContext& ctx, const RouteRequest& req) {
  struct Found {
    std::optional<Event> event;
    std::vector<Delivery> deliveries;
  };
  const std::string id = req.id;
  const auto read = [&store = ctx.store, id] {
    Found f;
    f.event = queries::event(store, id);
    if (f.event) f.deliveries = queries::deliveries_of_event(store, id);
    return f;
  };
  Found found = co_await run_blocking(ctx.blocking_pool, read, asio::use_awaitable);
  if (!found.event) co_return error_response(Errc::not_found, "no event " + id);
  json deliveries = json::array();
  for (const auto& d : found.deliveries) deliveries.push_back(to_api(d));
  co_return json_text_response(200, to_api_text(*found.event, {{"deliveries", std::move(deliveries)}}));
}

asio::awaitable<HttpResponse> redeliver_event(ApiContext& ctx, const RouteRequest& req) {
  std::string only_subscription;
  if (!req.http.body().empty()) {
    auto body = parse_json_object(req.http);
    if (!body) co_return error_response(body.error());
    for (const auto& [key, value] : body->items()) {
      if (key != "subscription_id")
        co_return error_response(Errc::invalid_field, "field '" + key + "' is not known here");
      if (!value.is_null() && !value.is_string()) {
        co_return error_response(Errc::invalid_field, "field 'subscription_id' must be a string");
      }
      if (value.is_string()) only_subscription = value.get<std::string>();
    }
  }
  if (!only_subscription.empty() && !ctx.subscriptions.find(only_subscription)) {
    co_return error_response(Errc::not_found, "no subscription " + only_subscription);
  }
  const std::string id = req.id;
  auto redelivery = std::make_shared<mutations::Redelivery>();
  const CommitPipeline::Command command = [&ctx, id, only_subscription, redelivery](WriteTxn& txn) {
    const mutations::RedeliveryTargets targets =
        [&ctx, &only_subscription](const Event& event) -> Result<std::vector<std::shared_ptr<const Subscription>>> {
      auto matching = ctx.subscriptions.matching(
          RoutedEvent{event.tenant, event.type, event.payload ? std::string_view(*event.payload) : ""});
      if (only_subscription.empty()) return matching;
      std::erase_if(matching, [&](const auto& sub) { return sub->id != only_subscription; });
      if (matching.empty()) {
        return make_error(Errc::conflict,
                          "subscription " + only_subscription +
                               " is disabled or does not match this event's tenant, type or filter");
      }
      return matching;
    };
    return mutations::redeliver_event(txn, id, targets, ctx.ids, ctx.clock.now_ms(), *redelivery);
  };
  const Status status = co_await async_commit(ctx.pipeline, command, asio::use_awaitable);
  if (!status) co_return error_response(status.error());
  auto& created = redelivery->deliveries;
  json items = json::array();
  for (const auto& d : created) items.push_back(to_api(d));
  ctx.metrics.deliveries_created(created.size());
  if (!created.empty()) ctx.scheduler.enqueue(std::move(created), redelivery->event.payload);
  co_return json_response(202, {{"event_id", id}, {"deliveries", items}});
}

asio::awaitable<HttpResponse> list_event_types(ApiContext& ctx, const RouteRequest&) {
  const auto read = [&store = ctx.store] { return queries::event_types(store); };
  auto stats = co_await run_blocking(ctx.blocking_pool, read, asio::use_awaitable);
  json items = json::array();
  for (const auto& s : stats) items.push_back(to_api(s));
  co_return json_response(200, {{"items", items}});
}

}  // namespace relay
