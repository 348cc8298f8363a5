// Replay and jobs (spec section 6, "Replay and jobs"): start a subscription's replay, list,
// show and cancel jobs. The jobs themselves run in relay/delivery/job_runner.h.

#include <boost/asio/use_awaitable.hpp>

#include "relay/api/api_json.h"
#include "relay/api/http_responses.h"
#include "relay/api/request_parsing.h"
#include "relay/api/route.h"
#include "relay/core/async_bridge.h"
#include "relay/core/time.h"
#include "relay/delivery/job_runner.h"
#include "relay/model/event_type.h"
#include "storage/async_commit.h"
#include "storage/job_mutations.h"
#include "storage/job_queries.h"

namespace relay {

using nlohmann::json;
namespace asio = boost::asio;

namespace {

constexpr std::size_t kDefaultPageSize = 100;
constexpr std::size_t kMaxPageSize = 1000;


Result<UnixMillis> time_field(const json& value, const std::string& field) {
  const auto t = value.is_string() ? parse_time(value.get<std::string>()) : std::nullopt;
  if (!t) return field_error(field, "must be an RFC 3339 UTC time");
  return *t;
}

// The replay's parameters from its body; `sub` supplies the default patterns.
Result<ReplayParams> parse_replay(const json& body, const Subscription& sub, UnixMillis now) {
  ReplayParams params;
  params.subscription_id = sub.id;
  params.until = now;
  bool has_since = false;
  for (const auto& [key, value] : body.items()) {
    if (key == "since") {
      auto t = time_field(value, key);
      if (!t) return t.error();
      params.since = *t;
      has_since = true;
    } else if (key == "until") {
      if (value.is_null()) continue;
      auto t = time_field(value, key);
      if (!t) return t.error();
      params.until = *t;
    } else if (key == "event_types") {
      if (value.is_null()) continue;
      if (!value.is_array() || value.empty()) return field_error(key, "must be a non-empty array of patterns");
      for (const auto& pattern : value) {
        if (!pattern.is_string() || !is_valid_event_pattern(pattern.get<std::string>())) {
          return field_error(key, "must hold event types, \"*\" or prefixes ending in \".*\"");
        }
        params.event_types.push_back(pattern.get<std::string>());
      }
    } else if (key == "only_failed") {
      if (!value.is_boolean()) return field_error(key, "must be true or false");
      params.only_failed = value.get<bool>();
    } else {
      return make_error(Errc::invalid_field, "field '" + key + "' is not known here");
    }
  }
  if (!has_since) return field_error("since", "is required");
  if (params.until <= params.since) return field_error("until", "must be after since");
  if (params.event_types.empty()) params.event_types = sub.event_types;
  return params;
}

// Stores `job` as running and hands it to the runner: 202 {"job": ...}.
asio::awaitable<HttpResponse> start_job(ApiContext& ctx, Job job) {
  const CommitPipeline::Command command = [&job](WriteTxn& txn) { return mutations::create_job(txn, job); };
  const Status status = co_await async_commit(ctx.pipeline, command, asio::use_awaitable);
  if (!status) co_return error_response(status.error());
  ctx.logger.info("job started", {{"job", job.id}, {"kind", job_kind_name(job.kind)}});
  const json out = {{"job", to_api(job)}};
  ctx.jobs.submit(std::move(job));
  co_return json_response(202, out);
}

}  // namespace

asio::awaitable<HttpResponse> replay_subscription(ApiContext& ctx, const RouteRequest& req) {
  const auto sub = ctx.subscriptions.find(req.id);
  if (!sub) co_return error_response(Errc::not_found, "no subscription " + req.id);
  auto body = parse_json_object(req.http);
  if (!body) co_return error_response(body.error());
  const UnixMillis now = ctx.clock.now_ms();
  auto params = parse_replay(*body, *sub, now);
  if (!params) co_return error_response(params.error());
  Job job;
  job.id = ctx.ids.next(keys::kJobPrefix);
  job.kind = JobKind::replay;
  job.replay = std::move(*params);
  job.created_at = now;
  co_return co_await start_job(ctx, std::move(job));
}

asio::awaitable<HttpResponse> start_dlq_retry_job(ApiContext& ctx, DlqRetryParams params) {
  Job job;
  job.id = ctx.ids.next(keys::kJobPrefix);
  job.kind = JobKind::dlq_retry;
  job.created_at = ctx.clock.now_ms();
  // What dies from now on (a redriven delivery that fails again included) is not the job's.
  if (params.until == 0 || params.until > job.created_at) params.until = job.created_at + 1;
  job.dlq = std::move(params);
  co_return co_await start_job(ctx, std::move(job));
}

asio::awaitable<HttpResponse> list_jobs(ApiContext& ctx, const RouteRequest& req) {
  std::size_t limit = kDefaultPageSize;
  std::string cursor;
  for (const auto& [key, value] : req.query) {
    if (key == "limit") {
      auto n = parse_page_limit(value, kMaxPageSize);
      if (!n) co_return error_response(n.error());
      limit = *n;
    } else if (key == "cursor") {
      cursor = value;
    } else {
      co_return error_response(Errc::invalid_field, "'" + key + "' is not a known filter");
    }
  }
  const auto read = [&store = ctx.store, limit, cursor] { return queries::list_jobs(store, limit, cursor); };
  auto page = co_await run_blocking(ctx.blocking_pool, read, asio::use_awaitable);
  if (!page) co_return error_response(page.error());
  json items = json::array();
  for (const auto& job : page->items) items.push_back(to_api(job));
  co_return json_response(200, {{"items", std::move(items)},
                                {"next_cursor", page->next_cursor.empty() ? json(nullptr) : json(page->next_cursor)}});
}

asio::awaitable<HttpResponse> get_job(ApiContext& ctx, const RouteRequest& req) {
  const auto read = [&store = ctx.store, id = req.id] { return queries::job(store, id); };
  const auto job = co_await run_blocking(ctx.blocking_pool, read, asio::use_awaitable);
  if (!job) co_return error_response(Errc::not_found, "no job " + req.id);
  co_return json_response(200, to_api(*job));
}

asio::awaitable<HttpResponse> cancel_job(ApiContext& ctx, const RouteRequest& req) {
  const std::string id = req.id;
  auto cancelled = std::make_shared<Job>();
  const CommitPipeline::Command command = [&ctx, id, cancelled](WriteTxn& txn) {
    return mutations::cancel_job(txn, id, ctx.clock.now_ms(), *cancelled);
  };
  const Status status = co_await async_commit(ctx.pipeline, command, asio::use_awaitable);
  if (!status) co_return error_response(status.error());
  ctx.jobs.cancelled(*cancelled);
  co_return json_response(200, {{"job", to_api(*cancelled)}});
}

}  // namespace relay
