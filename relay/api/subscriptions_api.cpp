// Subscriptions: create, list, read, update, delete, rotate the signing secret.

#include <boost/asio/use_awaitable.hpp>
#include <functional>
#include <memory>
#include <utility>

#include "relay/api/api_json.h"
#include "relay/api/http_responses.h"
#include "relay/api/request_parsing.h"
#include "relay/api/route.h"
#include "relay/api/subscription_fields.h"
#include "relay/core/duration.h"
#include "relay/delivery/signature.h"
#include "relay/model/event_type.h"

namespace relay {

using nlohmann::json;
namespace asio = boost::asio;

namespace {

constexpr std::int64_t kDefaultRotationGraceMs = 24 * 3'600'000LL;
// Also the page size without `limit`: a client written before the list was paginated, which
// reads `items` whole, still sees every subscription of a store with up to this many.
constexpr std::size_t kMaxSubscriptionPage = 1000;

std::shared_ptr<const Subscription> find(ApiContext& ctx, const std::string& id) {
  return ctx.subscriptions.find(id);
}

}  // namespace

asio::awaitable<HttpResponse> create_subscription(ApiContext& ctx, const RouteRequest& req) {
  auto body = parse_json_object(req.http);
  if (!body) co_return error_response(body.error());
  Subscription sub;
  if (auto applied = apply_subscription_fields(*body, sub, /*creating=*/true); !applied) {
    co_return error_response(applied.error());
  }
  sub.id = ctx.ids.next(keys::kSubscriptionPrefix);
  if (sub.secret.empty()) sub.secret = generate_secret();
  sub.created_at = sub.updated_at = ctx.clock.now_ms();
  set_enabled(sub, std::exchange(sub.enabled, true), sub.created_at);  // created disabled: paused from now
  const auto stored = co_await ctx.subscription_writes.create(std::move(sub));
  if (!stored) co_return error_response(stored.error());
  ctx.logger.info("subscription created", {{"subscription", stored->id}});
  co_return json_response(201, to_api(*stored));
}

asio::awaitable<HttpResponse> list_subscriptions(ApiContext& ctx, const RouteRequest& req) {
  std::size_t limit = kMaxSubscriptionPage;
  std::string tenant;
  std::string cursor;
  for (const auto& [key, value] : req.query) {
    if (key == "limit") {
      auto n = parse_page_limit(value, kMaxSubscriptionPage);
      if (!n) co_return error_response(n.error());
      limit = *n;
    } else if (key == "cursor") {
      // As for deliveries, the cursor is the id of the last item returned.
      if (!value.empty() && !keys::parse_id(value, keys::kSubscriptionPrefix)) {
        co_return error_response(Errc::invalid_field, "cursor is not valid");
      }
      cursor = value;
    } else if (key == "tenant") {
      if (!value.empty() && !is_valid_tenant(value)) {
        co_return error_response(field_error("tenant", "must be 1-128 characters of [A-Za-z0-9._:-]"));
      }
      tenant = value;
    } else {
      co_return error_response(Errc::invalid_field, "'" + key + "' is not a known filter");
    }
  }
  const auto page = ctx.subscriptions.page(tenant, cursor, limit);
  json items = json::array();
  for (const auto& sub : page.items) items.push_back(to_api(*sub));
  json next_cursor = page.more ? json(page.items.back()->id) : json(nullptr);
  co_return json_response(200, {{"items", std::move(items)}, {"next_cursor", std::move(next_cursor)}});
}

asio::awaitable<HttpResponse> get_subscription(ApiContext& ctx, const RouteRequest& req) {
  const auto sub = find(ctx, req.id);
  if (!sub) co_return error_response(Errc::not_found, "no subscription " + req.id);
  co_return json_response(200, to_api(*sub));
}

asio::awaitable<HttpResponse> update_subscription(ApiContext& ctx, const RouteRequest& req) {
  const auto existing = find(ctx, req.id);
  if (!existing) co_return error_response(Errc::not_found, "no subscription " + req.id);
  auto body = parse_json_object(req.http);
  if (!body) co_return error_response(body.error());
  // Bad input answers 400 before anything is queued; the patch is applied again, to the stored
  // record, by the writer thread, so that concurrent changes serialize there.
  Subscription probe = *existing;
  if (auto applied = apply_subscription_fields(*body, probe, /*creating=*/false); !applied) {
    co_return error_response(applied.error());
  }
  auto patch = std::make_shared<const nlohmann::json>(std::move(*body));
  const UnixMillis now = ctx.clock.now_ms();
  SubscriptionWrites::Change change = [patch, now](Subscription& sub) -> Status {
    const bool was_enabled = sub.enabled;
    if (auto applied = apply_subscription_fields(*patch, sub, /*creating=*/false); !applied) return applied;
    sub.updated_at = now;
    // Keeps the pause account; clears disabled_reason when enabled, "manual" when disabled.
    set_enabled(sub, std::exchange(sub.enabled, was_enabled), now);
    return Ok{};
  };
  std::string id = req.id;
  const auto stored = co_await ctx.subscription_writes.update(std::move(id), std::move(change));
  if (!stored) co_return error_response(stored.error());
  co_return json_response(200, to_api(*stored));
}

asio::awaitable<HttpResponse> delete_subscription(ApiContext& ctx, const RouteRequest& req) {
  if (!find(ctx, req.id)) co_return error_response(Errc::not_found, "no subscription " + req.id);
  std::string id = req.id;
  const Status removed = co_await ctx.subscription_writes.remove(std::move(id));
  if (!removed) co_return error_response(removed.error());
  ctx.logger.info("subscription deleted", {{"subscription", req.id}});
  co_return empty_response(204);
}

asio::awaitable<HttpResponse> rotate_subscription_secret(ApiContext& ctx, const RouteRequest& req) {
  if (!find(ctx, req.id)) co_return error_response(Errc::not_found, "no subscription " + req.id);
  std::int64_t grace_ms = kDefaultRotationGraceMs;
  std::string new_secret;
  if (!req.http.body().empty()) {
    auto body = parse_json_object(req.http);
    if (!body) co_return error_response(body.error());
    for (const auto& [key, value] : body->items()) {
      if (key == "grace_period") {
        const auto ms = value.is_string() ? parse_duration_ms(value.get<std::string>()) : std::nullopt;
        if (!ms)
          co_return error_response(Errc::invalid_field,
                                   "field 'grace_period' must be a duration "
                                   "such as \"24h\" or \"0s\"");
        grace_ms = *ms;
      } else if (key == "secret") {
        if (auto valid = validate_secret(value); !valid) co_return error_response(valid.error());
        new_secret = value.get<std::string>();
      } else {
        co_return error_response(Errc::invalid_field, "field '" + key + "' is not known here");
      }
    }
  }
  SubscriptionWrites::Change rotate = [rotation = SecretRotation{new_secret.empty() ? generate_secret() : new_secret,
                                                                  grace_ms, ctx.clock.now_ms()}](Subscription& sub) {
    rotate_secret(sub, rotation);
    return Status(Ok{});
  };
  std::string id = req.id;
  const auto stored = co_await ctx.subscription_writes.update(std::move(id), std::move(rotate));
  if (!stored) co_return error_response(stored.error());
  const Subscription& sub = *stored;
  ctx.logger.info("subscription secret rotated",
                  {{"subscription", sub.id}, {"grace_period", format_duration(grace_ms)}});
  co_return json_response(200, to_api(sub));
}

}  // namespace relay
