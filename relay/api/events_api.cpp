// Events: publish (single and batch), read, redeliver, and the event types seen
// so far.

#include <boost/asio/use_awaitable.hpp>

#include "metrics/relay_metrics.h"
#include "relay/api/http_responses.h"
#include "relay/api/request_parsing.h"
#include "relay/api/route.h"
#include "relay/core/async_bridge.h"
#include "relay/delivery/delivery_scheduler.h"
#include "relay/model/json_mapping.h"
#include "storage/mutations.h"
#include "storage/queries.h"
#include "storage/records.h"

namespace relay {

using nlohmann::json;
namespace asio = boost::asio;

namespace {

constexpr std::size_t kMaxBatchEvents = 1000;

// Stages the ingest of `events` as one command: all of them commit in the same
// atomic batch. Matching runs inside the command, on the writer thread, so it
// sees exactly the subscriptions committed before this event.
CommitPipeline::Command ingest_command(ApiContext& ctx, std::shared_ptr<std::vector<mutations::NewEvent>> events,
                                       std::shared_ptr<std::vector<mutations::IngestedEvent>> results) {
  return [&ctx, events, results](WriteTxn& txn) -> Status {
    const auto subscriptions = ctx.subscriptions.snapshot();
    const UnixMillis now = ctx.clock.now_ms();
    results->assign(events->size(), {});
    for (std::size_t i = 0; i < events->size(); ++i) {
      const auto& event = (*events)[i];
      if (auto status = mutations::ingest(txn, event, subscriptions->matching(event.type), ctx.ids, now, (*results)[i]);
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
  ctx.metrics.events_ingested(created);
  ctx.metrics.events_deduplicated(repeated);
  ctx.metrics.deliveries_created(deliveries);
}

json ingest_answer(const mutations::IngestedEvent& result) {
  return {{"id", result.event.id}, {"deliveries", result.delivery_count}};
}

}  // namespace

asio::awaitable<HttpResponse> publish_event(ApiContext& ctx, const RouteRequest& req) {
  auto event = parse_event_body(req.http, req.http["Idempotency-Key"]);
  if (!event) co_return error_response(event.error());

  auto events = std::make_shared<std::vector<mutations::NewEvent>>(1, std::move(*event));
  auto results = std::make_shared<std::vector<mutations::IngestedEvent>>();
  const auto command = ingest_command(ctx, events, results);
  const Status status = co_await async_commit(ctx.pipeline, command, asio::use_awaitable);
  if (!status) co_return error_response(status.error());
  const json answer = ingest_answer(results->front());
  const bool created = results->front().created;
  after_ingest(ctx, *results);
  co_return json_response(created ? 202 : 200, answer);
}

asio::awaitable<HttpResponse> publish_event_batch(ApiContext& ctx, const RouteRequest& req) {
  auto body = parse_json_object(req.http);
  if (!body) co_return error_response(body.error());
  const auto items = body->find("events");
  if (items == body->end() || !items->is_array()) {
    co_return error_response(Errc::invalid_field, "field 'events' is required and must be an array");
  }
  if (items->empty() || items->size() > kMaxBatchEvents) {
    co_return error_response(Errc::invalid_field, "field 'events' must hold 1 to 1000 events");
  }
  if (body->size() != 1) co_return error_response(Errc::invalid_field, "a batch has only the field 'events'");

  // Invalid items answer with their error in place; the valid ones commit
  // together.
  std::vector<json> answers(items->size());
  std::vector<std::size_t> positions;
  auto events = std::make_shared<std::vector<mutations::NewEvent>>();
  for (std::size_t i = 0; i < items->size(); ++i) {
    auto event = parse_new_event((*items)[i], "");
    if (!event) {
      answers[i] = {{"error", {{"code", errc_name(event.error().code)}, {"message", event.error().message}}}};
      continue;
    }
    positions.push_back(i);
    events->push_back(std::move(*event));
  }
  auto results = std::make_shared<std::vector<mutations::IngestedEvent>>();
  if (!events->empty()) {
    const auto command = ingest_command(ctx, events, results);
    const Status status = co_await async_commit(ctx.pipeline, command, asio::use_awaitable);
    if (!status) co_return error_response(status.error());
    for (std::size_t k = 0; k < positions.size(); ++k) answers[positions[k]] = ingest_answer((*results)[k]);
    after_ingest(ctx, *results);
  }
  co_return json_response(200, {{"results", answers}});
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
  json out = to_api(*found.event);
  json deliveries = json::array();
  for (const auto& d : found.deliveries) deliveries.push_back(to_api(d));
  out["deliveries"] = std::move(deliveries);
  co_return json_response(200, out);
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
  const auto subscriptions = ctx.subscriptions.snapshot();
  if (!only_subscription.empty() && !subscriptions->find(only_subscription)) {
    co_return error_response(Errc::not_found, "no subscription " + only_subscription);
  }
  const std::string id = req.id;
  auto created = std::make_shared<std::vector<Delivery>>();
  auto event = std::make_shared<Event>();
  const CommitPipeline::Command command = [&ctx, id, only_subscription, created, event](WriteTxn& txn) -> Status {
    auto bytes = keys::parse_id(id, keys::kEventPrefix) ? txn.get(Family::events, keys::event_key(id)) : std::nullopt;
    auto stored = bytes ? records::decode_event(*bytes) : std::nullopt;
    if (!stored) return make_error(Errc::not_found, "no event " + id);
    *event = std::move(*stored);
    auto targets = ctx.subscriptions.snapshot()->matching(event->type);
    if (!only_subscription.empty()) {
      std::erase_if(targets, [&](const auto& sub) { return sub->id != only_subscription; });
      if (targets.empty()) {
        return make_error(Errc::conflict,
                          "subscription " + only_subscription + " is disabled or does not match this event's type");
      }
    }
    *created = mutations::add_deliveries(txn, *event, targets, ctx.ids, ctx.clock.now_ms());
    return Ok{};
  };
  const Status status = co_await async_commit(ctx.pipeline, command, asio::use_awaitable);
  if (!status) co_return error_response(status.error());
  json items = json::array();
  for (const auto& d : *created) items.push_back(to_api(d));
  ctx.metrics.deliveries_created(created->size());
  if (!created->empty()) ctx.scheduler.enqueue(std::move(*created), event->payload);
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
