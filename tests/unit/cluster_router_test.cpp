// The API router's cluster layer (relay/api/cluster_router.h) with a fixed cluster view and
// shards answered from memory (no network): where each kind of call goes, what a forwarded
// request carries, how answers come back (merged lists, added-up bulk calls, split batches), and
// what a shard that does not answer does to each.

#include "relay/api/cluster_router.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <functional>
#include <map>
#include <set>

#include "relay/api/http_responses.h"
#include "relay/api/request_parsing.h"
#include "storage/keys.h"

namespace relay {
namespace cluster_router_test {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using nlohmann::json;
using Mode = ClusterPolicy::Mode;

constexpr std::string_view kPeerKey = "admin-key-of-the-cluster";

std::string id_of_shard(std::string_view prefix, std::uint32_t number, std::uint64_t n = 1) {
  std::string raw(6, '\x01');
  keys::append_u32(raw, number);
  for (int i = 5; i >= 0; --i) raw.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  return keys::format_id(prefix, raw);
}

class FakeView : public cluster::ClusterView {
 public:
  cluster::ShardInfo self() const override { return shards.at(0); }
  std::vector<cluster::ShardInfo> live_shards() const override {
    std::vector<cluster::ShardInfo> out;
    for (const auto& shard : shards) {
      if (shard.live) out.push_back(shard);
    }
    return out;
  }
  std::vector<cluster::ShardInfo> known_shards() const override { return shards; }
  std::optional<cluster::ShardInfo> shard_by_number(std::uint32_t number) const override {
    for (const auto& shard : shards) {
      if (shard.number == number) return shard;
    }
    return std::nullopt;
  }
  std::optional<cluster::ShardInfo> owner(std::string_view key) const override {
    const auto it = owners.find(std::string(key));
    const std::string name = it == owners.end() ? shards.at(0).name : it->second;
    for (const auto& shard : shards) {
      if (shard.name == name && shard.live) return shard;
    }
    return std::nullopt;
  }

  std::vector<cluster::ShardInfo> shards{{"a", 1, "http://a:8080", true},
                                         {"b", 2, "http://b:8080", true},
                                         {"c", 3, "http://c:8080", true}};
  std::map<std::string, std::string> owners;  // routing key -> shard name; others: this shard
};

// A request as a shard received it.
struct Received {
  std::string shard;  // "a" for this shard's handler
  std::string method;
  std::string target;
  std::string body;
  cluster::Headers headers;

  std::string header(std::string_view name) const {
    for (const auto& [n, v] : headers) {
      if (boost::beast::iequals(n, name)) return v;
    }
    return "";
  }
};

using Answer = std::function<Result<cluster::PeerResponse>(const Received&)>;

class FakePeers : public cluster::PeerClient {
 public:
  asio::awaitable<Result<cluster::PeerResponse>> send(std::string base_url, cluster::PeerRequest request,
                                                      std::chrono::milliseconds timeout) override {
    EXPECT_EQ(timeout, std::chrono::milliseconds(1500));
    const std::string shard = base_url.substr(7, 1);  // "http://b:8080"
    Received received{shard, request.method, request.target, request.body, request.headers};
    received_.push_back(received);
    const auto it = answers.find(shard);
    if (it == answers.end()) co_return make_error(Errc::unavailable, "connection refused");
    co_return it->second(received);
  }

  std::vector<Received>& received() { return received_; }
  std::map<std::string, Answer> answers;  // by shard name; none: the shard does not answer

 private:
  std::vector<Received> received_;
};

cluster::PeerResponse json_answer(int status, const json& body, cluster::Headers extra = {}) {
  extra.emplace_back("Content-Type", "application/json");
  return cluster::PeerResponse{status, body.dump(), std::move(extra)};
}

class ClusterRouterTest : public ::testing::Test {
 protected:
  ClusterRouterTest()
      : metrics_("test"), router_(view_, peers_, metrics_, logger_, {std::chrono::milliseconds(1500), std::string(kPeerKey)}) {}

  // This shard's handler: records the request and answers with `local_answer`.
  ClusterRouter::LocalHandler local_handler() {
    return [this](const RouteRequest& request) -> asio::awaitable<HttpResponse> {
      Received received{"a", std::string(request.http.method_string()), std::string(request.http.target()),
                        std::string(request.http.body()), {}};
      for (const auto& field : request.http) {
        received.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
      }
      local_received_.push_back(received);
      const auto answer = local_answer(received);
      HttpResponse response = json_text_response(answer->status, answer->body);
      co_return response;
    };
  }

  HttpResponse call(ClusterPolicy policy, http::verb method, const std::string& target, std::string body = "",
                    std::string id = "", std::vector<std::pair<std::string, std::string>> headers = {}) {
    HttpRequest request{method, target, 11};
    if (!body.empty()) request.set(http::field::content_type, "application/json");
    for (const auto& [name, value] : headers) request.set(name, value);
    request.body() = std::move(body);
    auto query = parse_query(target);
    EXPECT_TRUE(query.ok());
    const RouteRequest route_request{request, std::move(id), std::move(*query)};
    const ClusterRouter::LocalHandler local = local_handler();
    asio::io_context io;
    auto future = asio::co_spawn(io, router_.handle(policy, local, route_request), asio::use_future);
    io.run();
    return future.get();
  }

  static json body_of(const HttpResponse& response) { return json::parse(response.body()); }

  std::string forwarded_count(std::string_view kind) const {
    const std::string scrape = metrics_.scrape();
    const std::string series = "relay_cluster_forwarded_requests_total{kind=\"" + std::string(kind) + "\"} ";
    const auto at = scrape.find(series);
    if (at == std::string::npos) return "absent";
    return scrape.substr(at + series.size(), scrape.find('\n', at) - at - series.size());
  }

  FakeView view_;
  FakePeers peers_;
  RelayMetrics metrics_;
  Logger logger_{LogLevel::error};
  ClusterRouter router_;
  std::vector<Received> local_received_;
  Answer local_answer = [](const Received&) { return json_answer(200, {{"here", true}}); };
};

// ---- calls that name an id

TEST_F(ClusterRouterTest, ACallNamingAnotherShardsIdIsForwardedThereAndAnsweredAsItAnswers) {
  const std::string id = id_of_shard("dlv_", 2);
  peers_.answers["b"] = [](const Received&) {
    return json_answer(409, {{"error", {{"code", "conflict"}, {"message", "not dead"}}}}, {{"Retry-After", "3"}});
  };
  const HttpResponse response =
      call(by_id(keys::kDeliveryPrefix), http::verb::post, "/v1/deliveries/" + id + "/retry?x=1", "{}", id);
  EXPECT_EQ(response.result_int(), 409);
  EXPECT_EQ(body_of(response)["error"]["code"], "conflict");
  EXPECT_EQ(response[http::field::retry_after], "3");
  EXPECT_EQ(response[http::field::content_type], "application/json");
  EXPECT_TRUE(local_received_.empty());
  ASSERT_EQ(peers_.received().size(), 1u);
  const Received& sent = peers_.received()[0];
  EXPECT_EQ(sent.shard, "b");
  EXPECT_EQ(sent.method, "POST");
  EXPECT_EQ(sent.target, "/v1/deliveries/" + id + "/retry?x=1");
  EXPECT_EQ(sent.body, "{}");
  // This shard's own key, never the caller's, and the mark that stops a second hop.
  EXPECT_EQ(sent.header("Authorization"), "Bearer " + std::string(kPeerKey));
  EXPECT_EQ(sent.header(ClusterRouter::kForwardedBy), "a");
  EXPECT_EQ(sent.header("Content-Type"), "application/json");
  EXPECT_EQ(forwarded_count("write"), "1");
  EXPECT_EQ(forwarded_count("read"), "0");

  peers_.answers["c"] = [](const Received&) { return cluster::PeerResponse{204, "", {}}; };
  const std::string on_c = id_of_shard("dlv_", 3);
  const HttpResponse discarded = call(by_id(keys::kDeliveryPrefix), http::verb::delete_, "/v1/dlq/" + on_c, "", on_c);
  EXPECT_EQ(discarded.result_int(), 204);
  EXPECT_EQ(discarded.body(), "");
  const std::string job = id_of_shard("job_", 3);
  peers_.answers["c"] = [&](const Received&) { return json_answer(200, {{"id", job}}); };
  EXPECT_EQ(body_of(call(by_id(keys::kJobPrefix), http::verb::get, "/v1/jobs/" + job, "", job))["id"], job);
  EXPECT_EQ(forwarded_count("read"), "1");
}

TEST_F(ClusterRouterTest, IdsOfThisShardOfNoShardOrMalformedAreAnsweredHere) {
  for (const std::string& id : {id_of_shard("evt_", 1), id_of_shard("evt_", 77), std::string("evt_short"),
                                id_of_shard("dlv_", 2) /* not an event id */}) {
    local_received_.clear();
    local_answer = [](const Received&) { return json_answer(404, {{"error", {{"code", "not_found"}, {"message", "no"}}}}); };
    const HttpResponse response = call(by_id(keys::kEventPrefix), http::verb::get, "/v1/events/" + id, "", id);
    EXPECT_EQ(response.result_int(), 404) << id;
    EXPECT_EQ(local_received_.size(), 1u) << id;
  }
  EXPECT_TRUE(peers_.received().empty());
}

TEST_F(ClusterRouterTest, AnIdOfAShardThatIsDownOrSilentAnswers503ShardUnavailable) {
  const std::string id = id_of_shard("evt_", 2);
  view_.shards[1].live = false;
  HttpResponse response = call(by_id(keys::kEventPrefix), http::verb::get, "/v1/events/" + id, "", id);
  EXPECT_EQ(response.result_int(), 503);
  EXPECT_EQ(body_of(response)["error"]["code"], "shard_unavailable");
  EXPECT_TRUE(peers_.received().empty());

  view_.shards[1].live = true;  // live, but it does not answer
  response = call(by_id(keys::kEventPrefix), http::verb::get, "/v1/events/" + id, "", id);
  EXPECT_EQ(response.result_int(), 503);
  EXPECT_EQ(body_of(response)["error"]["code"], "shard_unavailable");
  EXPECT_NE(body_of(response)["error"]["message"].get<std::string>().find("shard b"), std::string::npos);
  EXPECT_TRUE(local_received_.empty());
}

TEST_F(ClusterRouterTest, AForwardedRequestIsServedHereWhateverItsPolicy) {
  const std::string id = id_of_shard("evt_", 2);
  const std::vector<std::pair<std::string, std::string>> mark{{std::string(ClusterRouter::kForwardedBy), "c"}};
  EXPECT_EQ(body_of(call(by_id(keys::kEventPrefix), http::verb::get, "/v1/events/" + id, "", id, mark))["here"], true);
  EXPECT_EQ(body_of(call(merged_list(cluster::ListKind::deliveries), http::verb::get, "/v1/deliveries", "", "", mark))["here"],
            true);
  view_.owners["k"] = "b";
  EXPECT_EQ(body_of(call(on_owner(Mode::ingest), http::verb::post, "/v1/events",
                         R"({"type":"t","payload":1,"ordering_key":"k"})", "", mark))["here"],
            true);
  EXPECT_TRUE(peers_.received().empty());
  EXPECT_EQ(local_received_.size(), 3u);
}

TEST_F(ClusterRouterTest, LocalRoutesNeverLeaveThisShard) {
  EXPECT_EQ(body_of(call(ClusterPolicy{}, http::verb::get, "/v1/subscriptions"))["here"], true);
  EXPECT_TRUE(peers_.received().empty());
}

// ---- lists

// A shard's delivery list from memory, paged like storage/queries.cpp: newest first, `limit`
// per page, the cursor an exclusive bound.
json delivery_page(const std::vector<std::string>& ids_newest_first, const std::string& target) {
  const auto query = parse_query(target);
  const std::size_t limit = query->count("limit") ? std::stoul(query->at("limit")) : 100;
  const std::string cursor = query->count("cursor") ? query->at("cursor") : "";
  json items = json::array();
  std::string next;
  for (const auto& id : ids_newest_first) {
    if (!cursor.empty() && id >= cursor) continue;
    items.push_back({{"id", id}});
    if (items.size() == limit) {
      next = id;
      break;
    }
  }
  return {{"items", items}, {"next_cursor", next.empty() ? json(nullptr) : json(next)}};
}

TEST_F(ClusterRouterTest, ListsMergeEveryLiveShardAndTheirCursorsWorkAcrossShards) {
  std::map<std::string, std::vector<std::string>> data;
  std::set<std::string, std::greater<>> all;
  for (std::uint32_t number = 1; number <= 3; ++number) {
    const std::string shard(1, static_cast<char>('a' + number - 1));
    for (std::uint64_t n = 0; n < 7 * number; ++n) {
      std::string raw;
      keys::append_u64(raw, (n * 7919 + number) % 50);  // interleaved times across shards
      raw.erase(0, 2);
      keys::append_u32(raw, number);
      keys::append_u32(raw, 0);
      keys::append_u32(raw, static_cast<std::uint32_t>(n));
      raw.resize(16);
      data[shard].push_back(keys::format_id(keys::kDeliveryPrefix, raw));
    }
    std::sort(data[shard].rbegin(), data[shard].rend());
    all.insert(data[shard].begin(), data[shard].end());
  }
  local_answer = [&](const Received& r) { return json_answer(200, delivery_page(data["a"], r.target)); };
  for (const std::string shard : {"b", "c"}) {
    peers_.answers[shard] = [&, shard](const Received& r) { return json_answer(200, delivery_page(data[shard], r.target)); };
  }
  std::vector<std::string> listed;
  std::string cursor;
  int pages = 0;
  do {
    ASSERT_LT(++pages, 100);
    const HttpResponse response = call(merged_list(cluster::ListKind::deliveries), http::verb::get,
                                       "/v1/deliveries?state=dead&limit=5" + (cursor.empty() ? "" : "&cursor=" + cursor));
    ASSERT_EQ(response.result_int(), 200);
    const json page = body_of(response);
    EXPECT_FALSE(page.contains("incomplete"));
    EXPECT_LE(page["items"].size(), 5u);
    for (const auto& item : page["items"]) listed.push_back(item["id"]);
    cursor = page["next_cursor"].is_null() ? "" : page["next_cursor"].get<std::string>();
  } while (!cursor.empty());
  EXPECT_EQ(listed, std::vector<std::string>(all.begin(), all.end()));
  // Every shard was asked the same query; this one through its handler, not over HTTP.
  for (const auto& sent : peers_.received()) {
    EXPECT_EQ(sent.target.rfind("/v1/deliveries?state=dead&limit=5", 0), 0u) << sent.target;
    EXPECT_EQ(sent.header(ClusterRouter::kForwardedBy), "a");
  }
  EXPECT_EQ(local_received_.size(), static_cast<std::size_t>(pages));
  EXPECT_EQ(peers_.received().size(), 2u * pages);
  EXPECT_EQ(forwarded_count("list"), std::to_string(2 * pages));
}

TEST_F(ClusterRouterTest, AListNamesTheShardsThatDidNotAnswer) {
  const std::string mine = id_of_shard("job_", 1), theirs = id_of_shard("job_", 2, 9);
  local_answer = [&](const Received&) { return json_answer(200, {{"items", {{{"id", mine}}}}, {"next_cursor", nullptr}}); };
  peers_.answers["b"] = [&](const Received&) {
    return json_answer(200, {{"items", {{{"id", theirs}}}}, {"next_cursor", nullptr}});
  };
  peers_.answers["c"] = [](const Received&) {
    return json_answer(503, {{"error", {{"code", "unavailable"}, {"message", "relay is shutting down"}}}});
  };
  json page = body_of(call(merged_list(cluster::ListKind::jobs), http::verb::get, "/v1/jobs"));
  EXPECT_EQ(page["items"], json::array({{{"id", theirs}}, {{"id", mine}}}));
  EXPECT_EQ(page["incomplete"], json::array({"c"}));

  peers_.answers.erase("c");  // silent
  peers_.answers["b"] = [](const Received&) { return cluster::PeerResponse{200, "<html>", {}}; };
  page = body_of(call(merged_list(cluster::ListKind::jobs), http::verb::get, "/v1/jobs"));
  EXPECT_EQ(page["items"], json::array({{{"id", mine}}}));
  EXPECT_EQ(page["incomplete"], json::array({"b", "c"}));
}

TEST_F(ClusterRouterTest, AListThisShardRefusesIsRefusedWhole) {
  local_answer = [](const Received&) {
    return json_answer(400, {{"error", {{"code", "invalid_field"}, {"message", "cursor is not valid"}}}});
  };
  peers_.answers["b"] = [](const Received&) { return json_answer(200, {{"items", json::array()}, {"next_cursor", nullptr}}); };
  const HttpResponse response =
      call(merged_list(cluster::ListKind::dead_letters), http::verb::get, "/v1/dlq?cursor=nonsense");
  EXPECT_EQ(response.result_int(), 400);
  EXPECT_EQ(body_of(response)["error"]["message"], "cursor is not valid");
}

TEST_F(ClusterRouterTest, EventTypesAreSummedOverEveryShard) {
  const auto types = [](std::uint64_t n, std::string seen) {
    return json{{"items", {{{"type", "meeting.completed"}, {"count", n}, {"last_seen", std::move(seen)}}}}};
  };
  local_answer = [&](const Received&) { return json_answer(200, types(2, "2024-10-01T00:00:00.000Z")); };
  peers_.answers["b"] = [&](const Received&) { return json_answer(200, types(5, "2024-10-02T00:00:00.000Z")); };
  peers_.answers["c"] = [&](const Received&) { return json_answer(200, types(1, "2024-09-01T00:00:00.000Z")); };
  const json merged = body_of(call(on_every_shard(Mode::event_types), http::verb::get, "/v1/event-types"));
  EXPECT_EQ(merged, types(8, "2024-10-02T00:00:00.000Z"));
}

TEST_F(ClusterRouterTest, AShardThatIsDownIsMissingFromListsAndBulkCallsWithoutBeingAsked) {
  view_.shards[2].live = false;
  local_answer = [](const Received&) { return json_answer(200, {{"items", json::array()}, {"next_cursor", nullptr}}); };
  peers_.answers["b"] = local_answer;
  json page = body_of(call(merged_list(cluster::ListKind::dead_letters), http::verb::get, "/v1/dlq"));
  EXPECT_EQ(page["incomplete"], json::array({"c"}));
  local_answer = [](const Received&) { return json_answer(200, {{"retried", 1}}); };
  peers_.answers["b"] = local_answer;
  EXPECT_EQ(body_of(call(on_every_shard(Mode::redrive), http::verb::post, "/v1/dlq/retry")),
            (json{{"retried", 2}, {"incomplete", {"c"}}}));
  // Alone among live shards: still not a single node's answer, since c's part is missing.
  view_.shards[1].live = false;
  EXPECT_EQ(body_of(call(on_every_shard(Mode::redrive), http::verb::post, "/v1/dlq/retry")),
            (json{{"retried", 1}, {"incomplete", {"b", "c"}}}));
  for (const auto& sent : peers_.received()) EXPECT_EQ(sent.shard, "b");
}

TEST_F(ClusterRouterTest, WithNoOtherShardEveryCallIsServedHereAsOnASingleNode) {
  view_.shards.resize(1);
  local_answer = [](const Received&) { return json_answer(200, {{"items", json::array()}, {"next_cursor", nullptr}}); };
  EXPECT_EQ(call(merged_list(cluster::ListKind::deliveries), http::verb::get, "/v1/deliveries").body(),
            R"({"items":[],"next_cursor":null})");
  local_answer = [](const Received&) { return json_answer(200, {{"retried", 3}}); };
  EXPECT_EQ(call(on_every_shard(Mode::redrive), http::verb::post, "/v1/dlq/retry", R"({"limit": 5})").body(),
            R"({"retried":3})");
  view_.owners["k"] = "b";
  local_answer = [](const Received&) { return json_answer(202, {{"id", "evt_here"}}); };
  EXPECT_EQ(call(on_owner(Mode::ingest), http::verb::post, "/v1/events", R"({"type":"t","payload":1,"id":"k"})")
                .result_int(),
            202);
  EXPECT_TRUE(peers_.received().empty());
}

// ---- bulk calls

TEST_F(ClusterRouterTest, ARedriveRunsOnEveryShardAndAddsUp) {
  local_answer = [](const Received&) { return json_answer(200, {{"retried", 2}}); };
  peers_.answers["b"] = [](const Received&) { return json_answer(200, {{"retried", 5}}); };
  const HttpResponse response =
      call(on_every_shard(Mode::redrive), http::verb::post, "/v1/dlq/retry", R"({"subscription_id": "sub_x"})");
  EXPECT_EQ(response.result_int(), 200);
  EXPECT_EQ(body_of(response), (json{{"retried", 7}, {"incomplete", {"c"}}}));
  ASSERT_EQ(peers_.received().size(), 2u);
  for (const auto& sent : peers_.received()) EXPECT_EQ(sent.body, R"({"subscription_id": "sub_x"})");
  EXPECT_EQ(forwarded_count("write"), "2");
}

TEST_F(ClusterRouterTest, ARedriveWithALimitNeverRedrivesMoreThanIt) {
  // This shard first, then the others one at a time with what remains of the limit.
  local_answer = [](const Received&) { return json_answer(200, {{"retried", 4}}); };
  peers_.answers["b"] = [](const Received& r) {
    EXPECT_EQ(json::parse(r.body)["limit"], 6);
    EXPECT_EQ(json::parse(r.body)["tenant"], "acme");
    return json_answer(200, {{"retried", 6}});
  };
  peers_.answers["c"] = [](const Received&) { return json_answer(200, {{"retried", 1}}); };
  HttpResponse response =
      call(on_every_shard(Mode::redrive), http::verb::post, "/v1/dlq/retry", R"({"tenant": "acme", "limit": "10"})");
  EXPECT_EQ(body_of(response), (json{{"retried", 10}}));
  ASSERT_EQ(peers_.received().size(), 1u);  // nothing left for c

  // A shard that starts a job for its share ends the visit: its job may take all that remains.
  peers_.received().clear();
  local_answer = [](const Received&) { return json_answer(202, {{"job", {{"id", "job_here"}}}}); };
  response = call(on_every_shard(Mode::redrive), http::verb::post, "/v1/dlq/retry", R"({"limit": 5000})");
  EXPECT_EQ(response.result_int(), 202);
  EXPECT_EQ(body_of(response), (json{{"job", {{"id", "job_here"}}}, {"jobs", {{{"id", "job_here"}}}}, {"retried", 0}}));
  EXPECT_TRUE(peers_.received().empty());
}

TEST_F(ClusterRouterTest, ARedriveThisShardRefusesReachesNoOtherShard) {
  local_answer = [](const Received&) {
    return json_answer(400, {{"error", {{"code", "invalid_field"}, {"message", "'x' is not a known filter"}}}});
  };
  EXPECT_EQ(call(on_every_shard(Mode::redrive), http::verb::post, "/v1/dlq/retry", R"({"x": 1})").result_int(), 400);
  EXPECT_TRUE(peers_.received().empty());
}

TEST_F(ClusterRouterTest, AReplayStartsAJobOnEveryShardOverTheSameWindow) {
  const auto job = [](std::string id) {
    return json{{"id", std::move(id)}, {"params", {{"since", "2024-10-01T00:00:00.000Z"}, {"until", "2024-10-02T00:00:00.123Z"}}}};
  };
  local_answer = [&](const Received&) { return json_answer(202, {{"job", job("job_a")}}); };
  peers_.answers["b"] = [&](const Received& r) {
    // The window's end, left to default, is this shard's: every shard replays the same events' range.
    EXPECT_EQ(json::parse(r.body)["until"], "2024-10-02T00:00:00.123Z");
    return json_answer(202, {{"job", job("job_b")}});
  };
  peers_.answers["c"] = [&](const Received&) {
    return json_answer(404, {{"error", {{"code", "not_found"}, {"message", "no subscription"}}}});
  };
  const HttpResponse response = call(on_every_shard(Mode::replay), http::verb::post, "/v1/subscriptions/sub_x/replay",
                                     R"({"since": "2024-10-01T00:00:00Z"})", "sub_x");
  EXPECT_EQ(response.result_int(), 202);
  EXPECT_EQ(body_of(response), (json{{"job", job("job_a")}, {"jobs", {job("job_a"), job("job_b")}}, {"incomplete", {"c"}}}));

  local_answer = [](const Received&) {
    return json_answer(404, {{"error", {{"code", "not_found"}, {"message", "no subscription sub_y"}}}});
  };
  peers_.received().clear();
  EXPECT_EQ(call(on_every_shard(Mode::replay), http::verb::post, "/v1/subscriptions/sub_y/replay",
                 R"({"since": "2024-10-01T00:00:00Z"})", "sub_y")
                .result_int(),
            404);
  EXPECT_TRUE(peers_.received().empty());
}

// ---- ingest

TEST_F(ClusterRouterTest, AnEventWithAKeyIsStoredOnItsOwnerAndOthersWhereTheyArrive) {
  view_.owners = {{"calendar-42", "b"}, {"client-7", "c"}};
  peers_.answers["b"] = [](const Received&) { return json_answer(202, {{"deliveries", 1}, {"id", "evt_on_b"}}); };
  peers_.answers["c"] = [](const Received&) { return json_answer(200, {{"deliveries", 1}, {"id", "evt_on_c"}}); };
  local_answer = [](const Received&) { return json_answer(202, {{"deliveries", 0}, {"id", "evt_here"}}); };

  // The ordering key decides, not the client id: one key's events all reach one shard.
  const std::string keyed = R"({"type": "calendar.update", "payload": {}, "ordering_key": "calendar-42", "id": "client-7"})";
  HttpResponse response = call(on_owner(Mode::ingest), http::verb::post, "/v1/events", keyed);
  EXPECT_EQ(response.result_int(), 202);
  EXPECT_EQ(body_of(response)["id"], "evt_on_b");
  ASSERT_EQ(peers_.received().size(), 1u);
  EXPECT_EQ(peers_.received()[0].shard, "b");
  EXPECT_EQ(peers_.received()[0].body, keyed);  // forwarded whole

  // The client id alone, from the header: its repeat is answered 200 by the owner.
  response = call(on_owner(Mode::ingest), http::verb::post, "/v1/events", R"({"type": "t", "payload": 1})", "",
                  {{"Idempotency-Key", "client-7"}});
  EXPECT_EQ(response.result_int(), 200);
  ASSERT_EQ(peers_.received().size(), 2u);
  EXPECT_EQ(peers_.received()[1].shard, "c");
  EXPECT_EQ(peers_.received()[1].header("Idempotency-Key"), "client-7");

  // A member name written with escapes is a client id all the same.
  EXPECT_EQ(body_of(call(on_owner(Mode::ingest), http::verb::post, "/v1/events",
                         R"({"type": "t", "payload": 1, "\u0069d": "client-7"})"))["id"],
            "evt_on_c");

  // Neither key, a key this shard owns, or an event the handler will refuse: stored (or refused) here.
  for (const std::string& body : {std::string(R"({"type": "t", "payload": {"id": 1}})"),
                                  std::string(R"({"type": "t", "payload": 1, "id": "mine"})"),
                                  std::string(R"({"type": "t", "id": "client-7"})")}) {
    local_received_.clear();
    call(on_owner(Mode::ingest), http::verb::post, "/v1/events", body);
    EXPECT_EQ(local_received_.size(), 1u) << body;
  }
  EXPECT_EQ(peers_.received().size(), 3u);
  EXPECT_EQ(forwarded_count("ingest"), "3");
}

TEST_F(ClusterRouterTest, AnEventWhoseOwnerDoesNotAnswerIsRefusedWith503) {
  view_.owners["k"] = "c";
  const HttpResponse response =
      call(on_owner(Mode::ingest), http::verb::post, "/v1/events", R"({"type":"t","payload":1,"ordering_key":"k"})");
  EXPECT_EQ(response.result_int(), 503);
  EXPECT_EQ(body_of(response)["error"]["code"], "shard_unavailable");
  EXPECT_TRUE(local_received_.empty());
}

// A batch handler from memory: each event's id is "<shard>-<its payload's n>".
Result<cluster::PeerResponse> batch_answer_of(const std::string& shard, const Received& r) {
  json results = json::array();
  const json batch = json::parse(r.body);
  for (const auto& event : batch["events"]) {
    results.push_back({{"deliveries", 1}, {"id", shard + "-" + std::to_string(event["payload"]["n"].get<int>())}});
  }
  return json_answer(200, {{"results", results}});
}

TEST_F(ClusterRouterTest, ABatchIsSplitByOwnerAndAnsweredInRequestOrder) {
  view_.owners = {{"kb", "b"}, {"kc", "c"}};
  local_answer = [](const Received& r) { return batch_answer_of("a", r); };
  peers_.answers["b"] = [](const Received& r) { return batch_answer_of("b", r); };
  peers_.answers["c"] = [](const Received& r) { return batch_answer_of("c", r); };
  const std::string body = R"({"events": [
      {"type": "t", "payload": {"n": 0}, "ordering_key": "kb"},
      {"type": "t", "payload": {"n": 1}},
      {"type": "bad type!", "payload": {"n": 2}},
      {"type": "t", "payload": {"n": 3}, "id": "kc"},
      {"type": "t", "payload": {"n": 4}, "ordering_key": "kb", "id": "kc"},
      {"type": "t", "payload": {"n": 5}, "id": "ka"}]})";
  const HttpResponse response = call(on_owner(Mode::ingest_batch), http::verb::post, "/v1/events/batch", body);
  ASSERT_EQ(response.result_int(), 200);
  const json results = body_of(response)["results"];
  ASSERT_EQ(results.size(), 6u) << response.body();
  EXPECT_EQ(results[0].value("id", ""), "b-0");
  EXPECT_EQ(results[1].value("id", ""), "a-1");  // this shard's sub-batch: events 1 and 5
  EXPECT_EQ(results[2]["error"].value("code", ""), "invalid_field");
  EXPECT_EQ(results[3].value("id", ""), "c-3");
  EXPECT_EQ(results[4].value("id", ""), "b-4");  // its ordering key wins: with event 0, on the same shard
  EXPECT_EQ(results[5].value("id", ""), "a-5");
  ASSERT_EQ(local_received_.size(), 1u);
  EXPECT_EQ(json::parse(local_received_[0].body)["events"].size(), 2u);
  std::map<std::string, std::string> sent;
  for (const auto& r : peers_.received()) sent[r.shard] = r.body;
  EXPECT_EQ(sent["b"], R"({"events":[{"type": "t", "payload": {"n": 0}, "ordering_key": "kb"},)"
                       R"({"type": "t", "payload": {"n": 4}, "ordering_key": "kb", "id": "kc"}]})");
  EXPECT_EQ(sent["c"], R"({"events":[{"type": "t", "payload": {"n": 3}, "id": "kc"}]})");
  EXPECT_EQ(forwarded_count("ingest"), "2");
}

TEST_F(ClusterRouterTest, ABatchPartThatFailsAnswersItsEventsWithTheError) {
  view_.owners = {{"kb", "b"}, {"kc", "c"}};
  local_answer = [](const Received& r) { return batch_answer_of("a", r); };
  peers_.answers["b"] = [](const Received&) {
    return json_answer(429, {{"error", {{"code", "too_many_requests"}, {"message", "retry later"}}}});
  };  // c does not answer
  const HttpResponse response = call(on_owner(Mode::ingest_batch), http::verb::post, "/v1/events/batch",
                                     R"({"events": [{"type": "t", "payload": {"n": 0}, "ordering_key": "kc"},
                                                    {"type": "t", "payload": {"n": 1}, "ordering_key": "kb"},
                                                    {"type": "t", "payload": {"n": 2}}]})");
  ASSERT_EQ(response.result_int(), 200);
  const json results = body_of(response)["results"];
  EXPECT_EQ(results[0]["error"].value("code", ""), "shard_unavailable");
  EXPECT_EQ(results[1]["error"].value("code", ""), "too_many_requests");
  EXPECT_EQ(results[2].value("id", ""), "a-2");
}

TEST_F(ClusterRouterTest, ABatchOfThisShardAloneIsItsHandlersAsOnASingleNode) {
  local_answer = [](const Received&) { return json_answer(200, {{"results", {{{"id", "evt_here"}}, {{"error", 1}}}}}); };
  const std::string body = R"({"events": [{"type": "t", "payload": {"n": 7}, "ordering_key": "mine"}, 1]})";
  const HttpResponse response = call(on_owner(Mode::ingest_batch), http::verb::post, "/v1/events/batch", body);
  EXPECT_EQ(response.body(), R"({"results":[{"id":"evt_here"},{"error":1}]})");
  ASSERT_EQ(local_received_.size(), 1u);
  EXPECT_EQ(local_received_[0].body, body);
  EXPECT_TRUE(peers_.received().empty());
  // A body that is not a batch is refused by the handler alone.
  local_answer = [](const Received&) { return json_answer(400, {{"error", {{"code", "invalid_json"}, {"message", "no"}}}}); };
  EXPECT_EQ(call(on_owner(Mode::ingest_batch), http::verb::post, "/v1/events/batch", "{").result_int(), 400);
}

TEST_F(ClusterRouterTest, TheForwardedCountersExistFromTheStartAtZero) {
  for (const char* kind : {"ingest", "read", "write", "list"}) EXPECT_EQ(forwarded_count(kind), "0") << kind;
  RelayMetrics single_node("test");
  EXPECT_EQ(single_node.scrape().find("relay_cluster_forwarded_requests_total"), std::string::npos);
}

TEST(PeerApiKeyTest, IsTheFirstAdminKey) {
  Config config;
  config.api_keys = {{ApiScope::ingest, "ingest-key"}, {ApiScope::admin, "first"}, {ApiScope::admin, "second"}};
  EXPECT_EQ(peer_api_key(config), "first");
  config.api_keys.clear();
  EXPECT_EQ(peer_api_key(config), "");
}

}  // namespace cluster_router_test
}  // namespace relay
