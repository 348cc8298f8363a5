// Bulk calls in cluster mode: POST /v1/dlq/retry and POST /v1/subscriptions/{id}/replay run on
// every live shard, this one first, and their answers add up (relay/cluster/bulk_merge.h).
//
// This shard goes first so that a bad request is refused before any shard acts on it, and its
// own failure is answered as a single node's. A redrive with a `limit` then visits the others
// one at a time, each given what remains of the limit, so that the cluster never redrives more
// than asked; a shard that starts a job for its share ends the visit (how much the job will
// redrive is not known yet). Without a limit, the others run at once.

#include <boost/asio/use_awaitable.hpp>

#include <charconv>

#include "relay/api/cluster_router.h"
#include "relay/api/http_responses.h"
#include "relay/cluster/bulk_merge.h"

namespace relay {

namespace asio = boost::asio;
using nlohmann::json;

namespace {

// A redrive body's `limit` (a number or numeric string; the handler checked it), if it has one.
std::optional<std::uint64_t> redrive_limit(std::string_view body) {
  if (body.empty()) return std::nullopt;
  const json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object()) return std::nullopt;
  const auto limit = parsed.find("limit");
  if (limit == parsed.end()) return std::nullopt;
  if (limit->is_number_unsigned()) return limit->get<std::uint64_t>();
  if (limit->is_string()) {
    const std::string text = limit->get<std::string>();
    std::uint64_t value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec == std::errc() && end == text.data() + text.size()) return value;
  }
  return std::nullopt;
}

// `body` (a JSON object, or empty for {}) with `member` set to `value`.
std::string with_member(std::string_view body, const std::string& member, json value) {
  json parsed = body.empty() ? json::object() : json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object()) parsed = json::object();
  parsed[member] = std::move(value);
  return parsed.dump(-1, ' ', false, json::error_handler_t::replace);
}

// The `until` of the job in a 202 {"job": {"params": {"until": ...}}} answer, if any.
std::optional<std::string> job_until(std::string_view answer) {
  const json parsed = json::parse(answer, nullptr, /*allow_exceptions=*/false);
  const json* until = parsed.is_object() ? &parsed : nullptr;
  for (const char* member : {"job", "params", "until"}) {
    if (until == nullptr || !until->is_object() || !until->contains(member)) return std::nullopt;
    until = &(*until)[member];
  }
  if (!until->is_string()) return std::nullopt;
  return until->get<std::string>();
}

}  // namespace

asio::awaitable<HttpResponse> ClusterRouter::redrive(const LocalHandler& local, const RouteRequest& request) {
  std::vector<cluster::ShardInfo> shards = others();
  const std::vector<std::string> missing = down();
  if (shards.empty() && missing.empty()) co_return co_await local(request);
  const Part mine = co_await call_local(local, request);
  if (mine.status != 200 && mine.status != 202) co_return response_of(mine);
  std::vector<cluster::ShardAnswer> answers{answer_of(mine)};
  const std::optional<std::uint64_t> limit = redrive_limit(request.http.body());
  if (!limit) {
    cluster::PeerRequest forward = peer_request(request.http, std::string(request.http.body()));
    const std::vector<Part> parts =
        co_await call_all(std::move(shards), std::move(forward), RelayMetrics::ForwardKind::write, nullptr, nullptr);
    for (const Part& part : parts) answers.push_back(answer_of(part));
  } else {
    std::uint64_t remaining = *limit;
    bool job_started = false;
    const auto account = [&](const cluster::ShardAnswer& answer) {
      const auto outcome = cluster::parse_redrive(answer);
      if (!outcome) return;
      remaining -= std::min(remaining, outcome->retried);
      job_started = job_started || outcome->job.has_value();
    };
    account(answers.front());
    for (auto& shard : shards) {
      if (remaining == 0 || job_started) break;
      cluster::PeerRequest forward =
          peer_request(request.http, with_member(request.http.body(), "limit", json(remaining)));
      const Part part = co_await call(std::move(shard), std::move(forward), RelayMetrics::ForwardKind::write);
      answers.push_back(answer_of(part));
      account(answers.back());
    }
  }
  for (const auto& name : missing) answers.push_back(cluster::ShardAnswer::missing(name));
  const auto merged = cluster::merge_redrive(answers);
  if (!merged) co_return response_of(mine);
  co_return json_response(merged->status, merged->body);
}

asio::awaitable<HttpResponse> ClusterRouter::replay(const LocalHandler& local, const RouteRequest& request) {
  std::vector<cluster::ShardInfo> shards = others();
  const std::vector<std::string> missing = down();
  if (shards.empty() && missing.empty()) co_return co_await local(request);
  const Part mine = co_await call_local(local, request);
  if (mine.status != 202) co_return response_of(mine);
  // Every shard replays the same window: an `until` left to default is this shard's "now".
  std::string body(request.http.body());
  const json given = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (given.is_object() && (!given.contains("until") || given["until"].is_null())) {
    if (auto until = job_until(mine.body)) body = with_member(body, "until", json(*until));
  }
  cluster::PeerRequest forward = peer_request(request.http, std::move(body));
  const std::vector<Part> parts =
      co_await call_all(std::move(shards), std::move(forward), RelayMetrics::ForwardKind::write, nullptr, nullptr);
  std::vector<cluster::ShardAnswer> answers{answer_of(mine)};
  for (const Part& part : parts) answers.push_back(answer_of(part));
  for (const auto& name : missing) answers.push_back(cluster::ShardAnswer::missing(name));
  const auto merged = cluster::merge_replay(answers);
  if (!merged) co_return response_of(mine);
  co_return json_response(merged->status, merged->body);
}

}  // namespace relay
