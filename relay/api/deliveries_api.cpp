// Deliveries and the dead-letter queue: inspect, retry, redrive, discard.

#include <boost/asio/use_awaitable.hpp>

#include "metrics/relay_metrics.h"
#include "relay/api/api_json.h"
#include "relay/api/http_responses.h"
#include "relay/api/request_parsing.h"
#include "relay/api/route.h"
#include "relay/core/async_bridge.h"
#include "relay/core/time.h"
#include "relay/delivery/delivery_scheduler.h"
#include "relay/model/event_type.h"
#include "storage/async_commit.h"
#include "storage/job_queries.h"
#include "storage/mutations.h"
#include "storage/ordering_queue.h"
#include "storage/queries.h"

namespace relay {

using nlohmann::json;
namespace asio = boost::asio;

namespace {

constexpr std::size_t kDefaultPageSize = 100;
constexpr std::size_t kMaxPageSize = 1000;
// A redrive commits this many deliveries per batch so that ingest and delivery
// commits interleave with it instead of waiting behind one huge write.
constexpr std::size_t kRedriveChunk = 500;
constexpr std::size_t kMaxRedrive = 1'000'000;
// Up to this many matching dead letters are redriven inline (200 {"retried"}); more become a
// dlq_retry job (202 {"job"}, relay/delivery/job_runner.h).
constexpr std::size_t kInlineRedrive = 1000;

// Reads filter fields from query parameters or a JSON body (both are string ->
// value maps).
Result<queries::DeliveryFilter> parse_filter(const std::map<std::string, json>& fields, bool allow_paging,
                                             std::size_t default_limit, std::size_t max_limit) {
  queries::DeliveryFilter filter;
  filter.limit = default_limit;
  for (const auto& [key, value] : fields) {
    if (value.is_null()) continue;
    auto text = [&]() -> std::optional<std::string> {
      if (value.is_string()) return value.get<std::string>();
      if (value.is_number_unsigned()) return std::to_string(value.get<std::uint64_t>());
      return std::nullopt;
    }();
    if (!text) return make_error(Errc::invalid_field, "field '" + key + "' must be a string");
    if (key == "subscription_id") {
      filter.subscription_id = *text;
    } else if (key == "event_id") {
      filter.event_id = *text;
    } else if (key == "event_type") {
      filter.event_type = *text;
    } else if (key == "state") {
      auto state = parse_delivery_state(*text);
      if (!state) return make_error(Errc::invalid_field, "state must be pending, in_flight, succeeded or dead");
      filter.state = state;
    } else if (key == "since" || key == "until") {
      auto t = parse_time(*text);
      if (!t) return make_error(Errc::invalid_field, key + " must be an RFC 3339 UTC time or Unix milliseconds");
      (key == "since" ? filter.since : filter.until) = *t;
    } else if (key == "tenant") {
      if (!is_valid_tenant(*text)) return field_error("tenant", "must be 1-128 characters of [A-Za-z0-9._:-]");
      filter.tenant = *text;
    } else if (key == "limit") {
      auto n = parse_page_limit(*text, max_limit);
      if (!n) return n.error();
      filter.limit = *n;
    } else if (key == "cursor" && allow_paging) {
      filter.cursor = *text;
    } else {
      return make_error(Errc::invalid_field, "'" + key + "' is not a known filter");
    }
  }
  return filter;
}

std::map<std::string, json> query_fields(const RouteRequest& req) {
  std::map<std::string, json> fields;
  for (const auto& [key, value] : req.query) fields[key] = value;
  return fields;
}

json page_json(const queries::DeliveryPage& page, const DeliveryScheduler& scheduler) {
  json items = json::array();
  for (const auto& d : page.items) {
    json item = to_api(d);
    if (scheduler.is_in_flight(d.id)) item["state"] = "in_flight";
    items.push_back(std::move(item));
  }
  return {{"items", std::move(items)},
          {"next_cursor", page.next_cursor.empty() ? json(nullptr) : json(page.next_cursor)}};
}

}  // namespace

asio::awaitable<HttpResponse> list_deliveries(ApiContext& ctx, const RouteRequest& req) {
  auto filter = parse_filter(query_fields(req), true, kDefaultPageSize, kMaxPageSize);
  if (!filter) co_return error_response(filter.error());
  // in_flight is a state of memory, not of disk: on disk those deliveries are
  // pending.
  const bool want_in_flight = filter->state == DeliveryState::in_flight;
  if (want_in_flight) filter->state = DeliveryState::pending;
  const auto read = [&store = ctx.store, f = *filter] { return queries::list_deliveries(store, f); };
  auto page = co_await run_blocking(ctx.blocking_pool, read, asio::use_awaitable);
  if (!page) co_return error_response(page.error());
  if (want_in_flight) std::erase_if(page->items, [&](const Delivery& d) { return !ctx.scheduler.is_in_flight(d.id); });
  co_return json_response(200, page_json(*page, ctx.scheduler));
}

asio::awaitable<HttpResponse> get_delivery(ApiContext& ctx, const RouteRequest& req) {
  struct Found {
    std::optional<Delivery> delivery;
    std::vector<Attempt> attempts;
    std::optional<std::string> blocked_by;  // the head of its ordering queue, while it waits
  };
  const std::string id = req.id;
  const auto read = [&store = ctx.store, id] {
    Found f;
    f.delivery = queries::delivery(store, id);
    if (f.delivery) {
      f.attempts = queries::attempts(store, id);
      f.blocked_by = ordering_queue::blocked_by(store, *f.delivery);
    }
    return f;
  };
  Found found = co_await run_blocking(ctx.blocking_pool, read, asio::use_awaitable);
  if (!found.delivery) co_return error_response(Errc::not_found, "no delivery " + id);
  json out = to_api(*found.delivery);
  if (ctx.scheduler.is_in_flight(id)) out["state"] = "in_flight";
  if (found.blocked_by) out["blocked_by"] = *found.blocked_by;
  json attempts = json::array();
  for (const auto& a : found.attempts) attempts.push_back(to_api(a));
  out["attempts"] = std::move(attempts);
  co_return json_response(200, out);
}

asio::awaitable<HttpResponse> retry_delivery(ApiContext& ctx, const RouteRequest& req) {
  const std::string id = req.id;
  if (!keys::parse_id(id, keys::kDeliveryPrefix)) co_return error_response(Errc::not_found, "no delivery " + id);
  auto retried = std::make_shared<mutations::RetriedDelivery>();
  const CommitPipeline::Command command = [&ctx, id, retried](WriteTxn& txn) {
    return mutations::retry_delivery(txn, id, ctx.clock.now_ms(), *retried);
  };
  const Status status = co_await async_commit(ctx.pipeline, command, asio::use_awaitable);
  if (!status) co_return error_response(status.error());
  if (retried->was_dead) ctx.metrics.dlq_redriven(1);
  const json out = to_api(retried->delivery);
  ctx.scheduler.enqueue(
      {retried->delivery}, nullptr,
      retried->was_dead ? DeliveryScheduler::Origin::redriven_dead : DeliveryScheduler::Origin::rescheduled_pending);
  co_return json_response(200, out);
}

asio::awaitable<HttpResponse> list_dead_letters(ApiContext& ctx, const RouteRequest& req) {
  auto filter = parse_filter(query_fields(req), true, kDefaultPageSize, kMaxPageSize);
  if (!filter) co_return error_response(filter.error());
  if (filter->state || !filter->event_id.empty()) {
    co_return error_response(Errc::invalid_field, "the DLQ filters by subscription_id, tenant, event_type, since and until");
  }
  const auto read = [&store = ctx.store, f = *filter] { return queries::list_dead(store, f); };
  auto page = co_await run_blocking(ctx.blocking_pool, read, asio::use_awaitable);
  if (!page) co_return error_response(page.error());
  co_return json_response(200, page_json(*page, ctx.scheduler));
}

asio::awaitable<HttpResponse> redrive_dead_letters(ApiContext& ctx, const RouteRequest& req) {
  std::map<std::string, json> fields;
  if (!req.http.body().empty()) {
    auto body = parse_json_object(req.http);
    if (!body) co_return error_response(body.error());
    for (const auto& [key, value] : body->items()) fields[key] = value;
  }
  auto filter = parse_filter(fields, false, kMaxRedrive, kMaxRedrive);
  if (!filter) co_return error_response(filter.error());
  if (filter->state || !filter->event_id.empty()) {
    co_return error_response(Errc::invalid_field, "a redrive filters by subscription_id, tenant, event_type, since and until");
  }
  // Counting stops one past the inline bound: the whole queue is never counted here.
  const auto count = [&store = ctx.store, f = *filter] { return queries::count_dead(store, f, kInlineRedrive + 1); };
  const auto matching = co_await run_blocking(ctx.blocking_pool, count, asio::use_awaitable);
  if (!matching) co_return error_response(matching.error());
  if (std::min(*matching, filter->limit) > kInlineRedrive) {
    // Every filter of the request must reach the job's params (DlqRetryParams).
    // A named local, not a temporary in the co_await: g++ 12 relocates such a temporary's strings
    // into the coroutine's frame bitwise, leaving them pointing into this frame (found by ASan).
    DlqRetryParams params{filter->subscription_id, filter->event_type, filter->since, filter->until, filter->limit,
                          filter->tenant};
    co_return co_await start_dlq_retry_job(ctx, std::move(params));
  }
  std::size_t retried = 0;
  std::size_t remaining = filter->limit;
  queries::DeliveryFilter page_filter = *filter;
  // Page through the DLQ as it is listed (newest first) in chunks; every chunk is its own
  // commit so that ingress and delivery keep flowing while a large redrive runs.
  for (;;) {
    page_filter.limit = std::min(remaining, kRedriveChunk);
    const auto read = [&store = ctx.store, f = page_filter] { return queries::list_dead(store, f); };
    auto page = co_await run_blocking(ctx.blocking_pool, read, asio::use_awaitable);
    if (!page) co_return error_response(page.error());
    auto ids = std::make_shared<std::vector<std::string>>();
    for (const auto& d : page->items) ids->push_back(d.id);
    auto moved = std::make_shared<std::vector<Delivery>>();
    if (!ids->empty()) {
      const CommitPipeline::Command command = [&ctx, ids, moved](WriteTxn& txn) -> Status {
        const UnixMillis now = ctx.clock.now_ms();
        for (const auto& id : *ids) {
          Delivery d;
          if (mutations::reschedule_now(txn, id, now, d)) moved->push_back(std::move(d));
        }
        return Ok{};
      };
      const Status status = co_await async_commit(ctx.pipeline, command, asio::use_awaitable);
      if (!status) co_return error_response(status.error());
      retried += moved->size();
      remaining -= std::min(remaining, ids->size());
      ctx.metrics.dlq_redriven(moved->size());
      ctx.scheduler.enqueue(std::move(*moved), nullptr, DeliveryScheduler::Origin::redriven_dead);
    }
    if (page->next_cursor.empty() || remaining == 0) break;
    page_filter.cursor = page->next_cursor;
  }
  if (retried > 0) ctx.logger.info("dead-letter queue redriven", {{"retried", retried}});
  co_return json_response(200, {{"retried", retried}});
}

asio::awaitable<HttpResponse> discard_dead_letter(ApiContext& ctx, const RouteRequest& req) {
  const std::string id = req.id;
  if (!keys::parse_id(id, keys::kDeliveryPrefix)) co_return error_response(Errc::not_found, "no delivery " + id);
  const CommitPipeline::Command command = [id](WriteTxn& txn) { return mutations::discard_dead(txn, id); };
  const Status status = co_await async_commit(ctx.pipeline, command, asio::use_awaitable);
  if (!status) co_return error_response(status.error());
  ctx.scheduler.dead_removed(1);
  co_return empty_response(204);
}

}  // namespace relay
