// Three shards in one process, each with its own RocksDB, commit pipeline, scheduler and API
// handlers, behind ApiRouters with the cluster layer (relay/api/cluster_router.h). The shards
// reach each other through a PeerClient that calls the other shard's ApiRouter directly (no
// network) and see a fixed membership. What the cluster layer's own unit test answers from
// memory, the real handlers answer here: ids name their shards, events land on their key's
// owner, and lists page through the three stores with the handlers' real cursors.

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "metrics/relay_metrics.h"
#include "relay/api/api_context.h"
#include "relay/api/api_router.h"
#include "relay/api/cluster_router.h"
#include "relay/delivery/delivery_scheduler.h"
#include "relay/delivery/job_runner.h"
#include "relay/subscriptions/local_subscription_writes.h"
#include "relay/core/time.h"
#include "storage/keys.h"
#include "storage/mutations.h"
#include "tests/support/relayd_api_test.h"
#include "tests/support/temp_dir.h"

namespace relay {
namespace cluster_shards_test {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kAdminKey = "cluster-admin-key";
constexpr std::size_t kShards = 3;

// Every attempt fails at once (a 500), so that with a 1 ms retry window every delivery dies on
// its first attempt and the dead-letter queues fill.
class FailingEgress : public Egress {
 public:
  explicit FailingEgress(asio::io_context& io) : io_(io) {}
  void send(EgressRequest, Callback done) override {
    asio::post(io_, [done = std::move(done)] {
      EgressResponse response;
      response.outcome = AttemptOutcome::http_5xx;
      response.http_status = 500;
      done(std::move(response));
    });
  }
  void cancel_all() override {}

 private:
  asio::io_context& io_;
};

struct Membership {
  std::vector<cluster::ShardInfo> shards;
};

// One shard's view of the fixed membership; owners by a hash of the key over the shard names.
class View : public cluster::ClusterView {
 public:
  View(const Membership& membership, std::size_t self) : membership_(membership), self_(self) {}
  cluster::ShardInfo self() const override { return membership_.shards[self_]; }
  std::vector<cluster::ShardInfo> live_shards() const override { return membership_.shards; }
  std::vector<cluster::ShardInfo> known_shards() const override { return membership_.shards; }
  std::optional<cluster::ShardInfo> shard_by_number(std::uint32_t number) const override {
    for (const auto& shard : membership_.shards) {
      if (shard.number == number) return shard;
    }
    return std::nullopt;
  }
  std::optional<cluster::ShardInfo> owner(std::string_view key) const override {
    return membership_.shards[std::hash<std::string_view>{}(key) % membership_.shards.size()];
  }

 private:
  const Membership& membership_;
  std::size_t self_;
};

class Shard;

// Calls the addressed shard's router in this process, as the HTTP client would over the network.
class InProcessPeers : public cluster::PeerClient {
 public:
  explicit InProcessPeers(std::map<std::string, Shard*>& by_url) : by_url_(by_url) {}
  asio::awaitable<Result<cluster::PeerResponse>> send(std::string base_url, cluster::PeerRequest request,
                                                      std::chrono::milliseconds timeout) override;

 private:
  std::map<std::string, Shard*>& by_url_;
};

class Shard {
 public:
  Shard(const Membership& membership, std::size_t index, asio::io_context& io, asio::thread_pool& pool,
        InProcessPeers& peers, const Subscription& subscription)
      : view_(membership, index),
        store_(Store::open(StoreOptions{dir_.str() + "/db", false})),
        pipeline_(*store_, [](double, std::size_t) {}),
        registry_({subscription}),
        ids_(clock_, membership.shards[index].number),
        metrics_("test"),
        egress_(io) {
    config_.api_keys = {{ApiScope::admin, kAdminKey}};
    SchedulerOptions scheduler_options;
    scheduler_options.retry = RetryPolicy{10, 10, 1};
    scheduler_ = std::make_unique<DeliveryScheduler>(io, scheduler_options, clock_, logger_, *store_, pipeline_,
                                                     registry_, egress_, metrics_, pool, ids_, streaks_);
    jobs_ = std::make_unique<JobRunner>(io, JobRunnerOptions{}, clock_, logger_, *store_, pipeline_, registry_, ids_,
                                        *scheduler_, metrics_, pool);
    writes_ = std::make_unique<LocalSubscriptionWrites>(pipeline_, registry_, streaks_,
                                                        [](const std::string&, const Subscription*) {});
    context_ = std::make_unique<ApiContext>(ApiContext{config_, clock_, logger_, *store_, pipeline_, registry_, *writes_,
                                                       ids_, metrics_, *scheduler_, pool, draining_, *jobs_});
    cluster_ = std::make_unique<ClusterRouter>(view_, peers, metrics_, logger_,
                                               ClusterRouter::Options{2000ms, peer_api_key(config_)});
    router_ = std::make_unique<ApiRouter>(*context_, cluster_.get());
  }

  // On the io thread.
  void start() {
    scheduler_->start(nullptr);
    jobs_->start();
  }
  void stop() {
    jobs_->stop();
    pipeline_.stop();
  }

  ApiRouter& router() { return *router_; }
  std::string metrics() const { return metrics_.scrape(); }

 private:
  test::TempDir dir_;
  Config config_;
  SystemClock clock_;
  Logger logger_{LogLevel::error};
  View view_;
  std::unique_ptr<Store> store_;
  CommitPipeline pipeline_;
  SubscriptionRegistry registry_;
  keys::IdGenerator ids_;
  FailureStreaks streaks_;
  RelayMetrics metrics_;
  FailingEgress egress_;
  std::atomic<bool> draining_{false};
  std::unique_ptr<DeliveryScheduler> scheduler_;
  std::unique_ptr<JobRunner> jobs_;
  std::unique_ptr<LocalSubscriptionWrites> writes_;
  std::unique_ptr<ApiContext> context_;
  std::unique_ptr<ClusterRouter> cluster_;
  std::unique_ptr<ApiRouter> router_;
};

asio::awaitable<Result<cluster::PeerResponse>> InProcessPeers::send(std::string base_url, cluster::PeerRequest request,
                                                                    std::chrono::milliseconds) {
  const auto it = by_url_.find(base_url);
  if (it == by_url_.end()) co_return make_error(Errc::unavailable, "no such shard");
  HttpRequest http_request{http::string_to_verb(request.method), request.target, 11};
  for (const auto& [name, value] : request.headers) http_request.set(name, value);
  http_request.body() = request.body;
  HttpResponse response = co_await it->second->router().handle(std::move(http_request));
  cluster::PeerResponse out{static_cast<int>(response.result_int()), response.body(), {}};
  for (const auto& field : response) out.headers.emplace_back(field.name_string(), field.value());
  co_return out;
}

struct Answer {
  int status = 0;
  json body;
};

class ClusterShardsTest : public ::testing::Test {
 protected:
  ClusterShardsTest() : peers_(by_url_) {
    for (std::size_t i = 0; i < kShards; ++i) {
      const std::string name = "shard-" + std::to_string(i);
      // Numbers that are not indices, as etcd hands them out.
      membership_.shards.push_back({name, static_cast<std::uint32_t>(100 + 7 * i), "http://" + name, true});
    }
    subscription_.id = "sub_" + std::string(32, '1');
    subscription_.url = "http://127.0.0.1:9/hook";
    subscription_.secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    for (std::size_t i = 0; i < kShards; ++i) {
      shards_.push_back(std::make_unique<Shard>(membership_, i, io_, pool_, peers_, subscription_));
      by_url_[membership_.shards[i].base_url] = shards_.back().get();
    }
    std::promise<void> started;
    asio::post(io_, [&] {
      for (auto& shard : shards_) shard->start();
      started.set_value();
    });
    loop_ = std::thread([this] {
      auto guard = asio::make_work_guard(io_);
      io_.run();
    });
    started.get_future().wait();
  }

  ~ClusterShardsTest() override {
    std::promise<void> stopped;
    asio::post(io_, [&] {
      for (auto& shard : shards_) shard->stop();
      stopped.set_value();
    });
    stopped.get_future().wait();
    io_.stop();
    loop_.join();
    pool_.join();
    shards_.clear();
  }

  // A call to shard `index` with the admin key (and `headers`).
  Answer call(std::size_t index, http::verb method, const std::string& target, const std::string& body = "",
              const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    HttpRequest request{method, target, 11};
    request.set(http::field::authorization, std::string("Bearer ") + kAdminKey);
    if (!body.empty()) request.set(http::field::content_type, "application/json");
    for (const auto& [name, value] : headers) request.set(name, value);
    request.body() = body;
    auto future = asio::co_spawn(io_, shards_[index]->router().handle(std::move(request)), asio::use_future);
    const HttpResponse response = future.get();
    Answer answer{static_cast<int>(response.result_int()), json::parse(response.body(), nullptr, false)};
    return answer;
  }

  // Every item of a list, paging from shard `index` with `limit` items a page.
  std::vector<json> page_through(std::size_t index, const std::string& path, std::size_t limit) {
    std::vector<json> items;
    std::string cursor;
    for (int pages = 0; pages < 1000; ++pages) {
      const Answer page = call(index, http::verb::get,
                               path + "?limit=" + std::to_string(limit) + (cursor.empty() ? "" : "&cursor=" + cursor));
      EXPECT_EQ(page.status, 200) << page.body.dump();
      EXPECT_FALSE(page.body.contains("incomplete")) << page.body.dump();
      for (const auto& item : page.body["items"]) items.push_back(item);
      if (page.body["next_cursor"].is_null()) return items;
      cursor = page.body["next_cursor"].get<std::string>();
    }
    ADD_FAILURE() << "paging does not end";
    return items;
  }

  // Shard `index`'s own list, as a single node would answer it.
  std::vector<json> local_list(std::size_t index, const std::string& path) {
    const Answer page = call(index, http::verb::get, path + "?limit=1000", "", {{"X-Relay-Forwarded-By", "test"}});
    EXPECT_TRUE(page.body["next_cursor"].is_null());
    return page.body["items"].get<std::vector<json>>();
  }

  std::size_t index_of_number(std::uint32_t number) const {
    for (std::size_t i = 0; i < kShards; ++i) {
      if (membership_.shards[i].number == number) return i;
    }
    return kShards;
  }

  asio::io_context io_;
  asio::thread_pool pool_{2};
  Membership membership_;
  Subscription subscription_;
  std::map<std::string, Shard*> by_url_;
  InProcessPeers peers_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::thread loop_;
};

TEST_F(ClusterShardsTest, EventsLandOnTheirKeysShardAndEveryListPagesThroughEveryShard) {
  const View any_view(membership_, 0);
  std::mt19937 random(7);
  std::map<std::string, std::string> client_ids;  // client id -> event id
  std::set<std::string> event_ids;
  // Single events through random shards: by ordering key, by client id, or neither.
  for (int i = 0; i < 45; ++i) {
    const std::size_t entry = random() % kShards;
    json event = {{"type", "meeting.completed"}, {"payload", {{"n", i}}}};
    std::optional<std::string> key;
    if (i % 3 == 0) key = event["ordering_key"] = "calendar-" + std::to_string(i % 7);
    if (i % 3 == 1) key = event["id"] = "client-" + std::to_string(i);
    const Answer answer = call(entry, http::verb::post, "/v1/events", event.dump());
    ASSERT_EQ(answer.status, 202) << answer.body.dump();
    const std::string id = answer.body["id"];
    const auto number = keys::id_instance(id, keys::kEventPrefix);
    ASSERT_TRUE(number);
    const std::size_t stored_on = index_of_number(*number);
    EXPECT_EQ(stored_on, key ? index_of_number(any_view.owner(*key)->number) : entry) << event.dump();
    if (i % 3 == 1) client_ids[*key] = id;
    event_ids.insert(id);
  }
  // A batch through one shard: its events land on their owners too, answered in order.
  json batch = json::array();
  for (int i = 0; i < 12; ++i) {
    batch.push_back({{"type", "calendar.update"}, {"payload", {{"b", i}}}, {"ordering_key", "batch-" + std::to_string(i)}});
  }
  const Answer batch_answer = call(1, http::verb::post, "/v1/events/batch", json{{"events", batch}}.dump());
  ASSERT_EQ(batch_answer.status, 200);
  ASSERT_EQ(batch_answer.body["results"].size(), 12u);
  std::set<std::size_t> batch_shards;
  for (int i = 0; i < 12; ++i) {
    const std::string id = batch_answer.body["results"][i]["id"];
    const std::size_t stored_on = index_of_number(*keys::id_instance(id, keys::kEventPrefix));
    EXPECT_EQ(stored_on, index_of_number(any_view.owner("batch-" + std::to_string(i))->number));
    batch_shards.insert(stored_on);
    event_ids.insert(id);
  }
  EXPECT_GT(batch_shards.size(), 1u) << "the batch was not split";

  // A repeated client id, through any shard, answers the first event.
  for (const auto& [client_id, id] : client_ids) {
    const Answer repeat = call(random() % kShards, http::verb::post, "/v1/events", R"({"type":"t","payload":0})",
                               {{"Idempotency-Key", client_id}});
    EXPECT_EQ(repeat.status, 200);
    EXPECT_EQ(repeat.body["id"], id);
  }
  // Any shard shows any event.
  for (const auto& id : event_ids) {
    const Answer event = call(random() % kShards, http::verb::get, "/v1/events/" + id);
    ASSERT_EQ(event.status, 200) << id;
    EXPECT_EQ(event.body["id"], id);
  }

  // Deliveries: paged from one shard, 7 at a time, they are every shard's, newest first, once.
  std::vector<json> expected;
  for (std::size_t i = 0; i < kShards; ++i) {
    for (auto& item : local_list(i, "/v1/deliveries")) expected.push_back(item);
  }
  ASSERT_EQ(expected.size(), event_ids.size());
  std::vector<std::string> expected_ids;
  for (const auto& item : expected) expected_ids.push_back(item["id"]);
  std::sort(expected_ids.rbegin(), expected_ids.rend());
  std::vector<std::string> listed_ids;
  for (const auto& item : page_through(2, "/v1/deliveries", 7)) listed_ids.push_back(item["id"]);
  EXPECT_EQ(listed_ids, expected_ids);

  // Every delivery dies on its first attempt; the dead-letter queue then pages most recently
  // dead first, with the DLQ's own cursors, across the three stores.
  ASSERT_TRUE(test::eventually([&] {
    std::size_t dead = 0;
    for (std::size_t i = 0; i < kShards; ++i) dead += local_list(i, "/v1/dlq").size();
    return dead == expected.size();
  }));
  const std::vector<json> dead = page_through(0, "/v1/dlq", 4);
  ASSERT_EQ(dead.size(), expected.size());
  std::set<std::string> dead_ids;
  for (std::size_t i = 0; i < dead.size(); ++i) {
    dead_ids.insert(dead[i]["id"]);
    if (i == 0) continue;
    const auto previous = std::make_pair(*parse_time(dead[i - 1]["completed_at"].get<std::string>()),
                                         dead[i - 1]["id"].get<std::string>());
    const auto current = std::make_pair(*parse_time(dead[i]["completed_at"].get<std::string>()),
                                        dead[i]["id"].get<std::string>());
    EXPECT_GT(previous, current) << i;
  }
  EXPECT_EQ(dead_ids.size(), dead.size());

  // Event types add up over the shards (relay.delivery.dead events included).
  std::map<std::string, std::uint64_t> counts;
  for (std::size_t i = 0; i < kShards; ++i) {
    const Answer types = call(i, http::verb::get, "/v1/event-types", "", {{"X-Relay-Forwarded-By", "test"}});
    for (const auto& item : types.body["items"]) counts[item["type"]] += item["count"].get<std::uint64_t>();
  }
  const Answer merged_types = call(1, http::verb::get, "/v1/event-types");
  std::map<std::string, std::uint64_t> merged_counts;
  for (const auto& item : merged_types.body["items"]) merged_counts[item["type"]] = item["count"];
  EXPECT_EQ(merged_counts, counts);
  EXPECT_EQ(merged_counts["meeting.completed"], 45u);

  // A redrive runs on every shard and adds up.
  const Answer redriven = call(2, http::verb::post, "/v1/dlq/retry", "{}");
  EXPECT_EQ(redriven.status, 200) << redriven.body.dump();
  EXPECT_EQ(redriven.body, (json{{"retried", expected.size()}}));

  // Reads and writes by id went to their shards: counted by the shard that forwarded them.
  std::uint64_t forwarded = 0;
  for (const auto& shard : shards_) {
    const std::string text = shard->metrics();
    EXPECT_NE(text.find("relay_cluster_forwarded_requests_total{kind=\"list\"}"), std::string::npos);
    forwarded += text.find("relay_cluster_forwarded_requests_total{kind=\"ingest\"} 0") == std::string::npos;
  }
  EXPECT_GT(forwarded, 0u);
}

TEST_F(ClusterShardsTest, JobsOfEveryShardListAndAnswerThroughAnyShard) {
  // A replay on every shard (nothing to replay: each job ends done), listed and read anywhere.
  const Answer started = call(0, http::verb::post, "/v1/subscriptions/" + subscription_.id + "/replay",
                              R"({"since": "2024-01-01T00:00:00Z"})");
  ASSERT_EQ(started.status, 202) << started.body.dump();
  ASSERT_EQ(started.body["jobs"].size(), kShards);
  EXPECT_EQ(started.body["job"], started.body["jobs"][0]);
  std::set<std::string> job_ids;
  std::set<std::uint32_t> numbers;
  for (const auto& job : started.body["jobs"]) {
    job_ids.insert(job["id"]);
    numbers.insert(*keys::id_instance(job["id"].get<std::string>(), keys::kJobPrefix));
    EXPECT_EQ(job["params"]["until"], started.body["job"]["params"]["until"]);  // one window
  }
  EXPECT_EQ(numbers.size(), kShards);
  std::set<std::string> listed;
  for (const auto& job : page_through(1, "/v1/jobs", 1)) listed.insert(job["id"]);
  EXPECT_EQ(listed, job_ids);
  for (const auto& id : job_ids) {
    EXPECT_TRUE(test::eventually([&] { return call(2, http::verb::get, "/v1/jobs/" + id).body["state"] == "done"; }))
        << id;
    EXPECT_EQ(call(1, http::verb::post, "/v1/jobs/" + id + "/cancel").status, 409);  // answered by its shard
  }
  // An unknown subscription is refused before any shard starts a job.
  EXPECT_EQ(call(0, http::verb::post, "/v1/subscriptions/sub_" + std::string(32, '2') + "/replay",
                 R"({"since": "2024-01-01T00:00:00Z"})")
                .status,
            404);
  EXPECT_EQ(page_through(2, "/v1/jobs", 10).size(), kShards);
}

}  // namespace cluster_shards_test
}  // namespace relay
