#pragma once
// RelaydClusterTest: the base fixture of black-box tests that drive a cluster (RelaydCluster:
// etcd and relayd shards) through its API, any call through any shard: subscribe, publish,
// read back, page through merged lists. As RelaydApiTest does for one relayd; waiting is
// polling (eventually()).

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/relayd_api_test.h"
#include "tests/support/relayd_cluster.h"
#include "tests/support/test_subscriber.h"

namespace relay::test {

// An id of relay's form ("evt_" + 32 hex digits) with `instance` as its instance part (a shard's
// number) and `counter` as its counter: an id that shard never made, for 404s and forwarding.
std::string made_up_id(std::string_view prefix, std::uint32_t instance, std::uint64_t counter);

// The webhook-id of every request the subscriber received (on `path`, or any).
std::set<std::string> webhook_ids(const TestSubscriber& sub, std::string_view path = {});
// Polls until the subscriber received each of `ids` as a webhook-id (on `path`, or any).
bool received_all(const TestSubscriber& sub, const std::vector<std::string>& ids, std::string_view path = {},
                  std::chrono::milliseconds timeout = kApiWait);
// The `id` of each listed item, in order.
std::vector<std::string> ids_of(const std::vector<nlohmann::json>& items);

class RelaydClusterTest : public ::testing::Test {
 protected:
  using json = nlohmann::json;

  // Starts etcd and the shards (3 and 3 unless `options` says otherwise).
  void start(RelaydClusterOptions options = {});
  RelaydCluster& cluster();

  // A request through `shard` with the admin key (or exactly `headers`).
  HttpResponse call(int shard, std::string_view method, std::string_view path, const std::string& body = {});
  HttpResponse call(int shard, std::string_view method, std::string_view path, const std::string& body,
                    const Headers& headers);
  // GET through `shard` that must answer 200; the JSON body (an empty object after a failure).
  json get(int shard, const std::string& path);
  // Creates a subscription through `shard`: the stored object, or an empty one after a failure.
  json subscribe(int shard, const json& body);
  // Polls `shard` until GET /v1/subscriptions/{id} answers `status` (and, for 200, `ready`
  // holds of the body): the shard's registry, which ingest matches against, holds that state.
  bool await_subscription(int shard, const std::string& id, long status = 200,
                          const std::function<bool(const json&)>& ready = {});
  // Publishes `event` through `shard` (admin key); its id, or "" after recording a failure.
  // `deliveries`: the fan-out count the answer must carry.
  std::string publish(int shard, const json& event, std::optional<int> deliveries = std::nullopt);
  // Every item of a merged listing through `shard`, following next_cursor with `limit` per page;
  // fails the test on a page that names an `incomplete` shard.
  std::vector<json> all_pages(int shard, const std::string& path, std::size_t limit, std::size_t* pages = nullptr);

  std::optional<RelaydCluster> cluster_;
};

}  // namespace relay::test
