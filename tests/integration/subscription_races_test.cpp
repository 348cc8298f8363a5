// Concurrent changes to one subscription (spec section 2, "Subscriptions"): against the real
// relayd, many rounds of requests sent at the same moment from separate connections. A PATCH
// never resurrects a deleted subscription, two PATCHes of different fields both apply, and
// concurrent secret rotations chain (each rotates the secret the one before it left), in
// memory and on disk (checked again after a restart).

#include <gtest/gtest.h>

#include <functional>
#include <latch>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/relayd_api_test.h"
#include "tests/support/test_subscriber.h"
#include "tests/support/webhook_verifier.h"

namespace relay::test {
namespace subscription_races_test {

constexpr const char* kNowhere = "http://127.0.0.1:9/hook";

class SubscriptionRaces : public RelaydApiTest {
 protected:
  // Runs every request at once, each on its own connection and thread; the answers in order.
  std::vector<HttpResponse> concurrently(const std::vector<std::function<HttpResponse(HttpClient&)>>& requests) {
    std::vector<HttpResponse> answers(requests.size());
    std::latch go(static_cast<std::ptrdiff_t>(requests.size()));
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < requests.size(); ++i) {
      threads.emplace_back([&, i] {
        HttpClient& client = clients_[i];
        client.get(relayd().url("/healthz"));  // connected before the start signal
        go.arrive_and_wait();
        answers[i] = requests[i](client);
      });
    }
    for (auto& t : threads) t.join();
    return answers;
  }

  std::function<HttpResponse(HttpClient&)> request(std::string method, std::string path, std::string body = {}) {
    return [this, method, path, body](HttpClient& client) {
      return client.request(method, relayd().url(path), body, {bearer(kAdminKey)});
    };
  }

  HttpClient clients_[3];
};

TEST_F(SubscriptionRaces, PatchRacingDeleteNeverResurrectsTheSubscription) {
  start({});
  constexpr int kRounds = 100;
  std::vector<std::string> deleted;
  int resurrected = 0;
  for (int round = 0; round < kRounds; ++round) {
    const std::string id = subscribe_id({{"url", kNowhere}});
    const std::string path = "/v1/subscriptions/" + id;
    const auto answers =
        concurrently({request("PATCH", path, json{{"description", "round " + std::to_string(round)}}.dump()),
                      request("DELETE", path)});
    ASSERT_EQ(answers[1].status, 204) << answers[1].describe();
    ASSERT_TRUE(answers[0].status == 200 || answers[0].status == 404) << answers[0].describe();
    if (answers[0].status == 404) {
      EXPECT_EQ(answers[0].error_code(), "not_found");
    }
    if (call("GET", path).status != 404) ++resurrected;
    deleted.push_back(id);
  }
  EXPECT_EQ(resurrected, 0) << "of " << kRounds << " rounds";
  EXPECT_TRUE(items("/v1/subscriptions").empty());

  relayd().restart();
  int on_disk = 0;
  for (const std::string& id : deleted) on_disk += call("GET", "/v1/subscriptions/" + id).status != 404;
  EXPECT_EQ(on_disk, 0) << "deleted subscriptions back after a restart";
}

TEST_F(SubscriptionRaces, ConcurrentPatchesOfDifferentFieldsBothApply) {
  start({});
  constexpr int kRounds = 100;
  std::vector<std::string> ids;
  int lost = 0;
  for (int round = 0; round < kRounds; ++round) {
    const std::string id = subscribe_id({{"url", kNowhere}});
    const std::string path = "/v1/subscriptions/" + id;
    const std::string description = "round " + std::to_string(round);
    const auto answers = concurrently({request("PATCH", path, json{{"description", description}}.dump()),
                                       request("PATCH", path, json{{"event_types", {"round.*"}}}.dump())});
    for (const HttpResponse& a : answers) ASSERT_EQ(a.status, 200) << a.describe();
    const json now = get(path);
    if (now.value("description", "") != description || now.value("event_types", json()) != json{"round.*"}) ++lost;
    ids.push_back(id);
  }
  EXPECT_EQ(lost, 0) << "rounds that lost a change, of " << kRounds;

  relayd().restart();
  int lost_on_disk = 0;
  for (int round = 0; round < kRounds; ++round) {
    const json now = get("/v1/subscriptions/" + ids[static_cast<std::size_t>(round)]);
    lost_on_disk += now.value("description", "") != "round " + std::to_string(round) ||
                    now.value("event_types", json()) != json{"round.*"};
  }
  EXPECT_EQ(lost_on_disk, 0) << "rounds whose stored subscription lost a change";
}

// The signatures of a `webhook-signature` header ("v1,SIG v1,SIG").
std::set<std::string> signatures_of(const RecordedRequest& r) {
  std::set<std::string> out;
  std::istringstream in(r.header("webhook-signature").value_or(""));
  for (std::string word; in >> word;) out.insert(word);
  return out;
}

std::string signature_by(const std::string& secret, const RecordedRequest& r) {
  return test::standard_signature(secret, r.header("webhook-id").value_or(""),
                                  r.header("webhook-timestamp").value_or(""), r.body);
}

TEST_F(SubscriptionRaces, ConcurrentSecretRotationsChainAndSignTogether) {
  TestSubscriber receiver;
  start({"--allow-private-networks"});
  constexpr int kRounds = 10;
  for (int round = 0; round < kRounds; ++round) {
    const std::string original = "original-secret-" + std::to_string(round);
    const std::string type = "rotation.round" + std::to_string(round);
    const std::string id = subscribe_id(
        {{"url", receiver.url("/r" + std::to_string(round))}, {"secret", original}, {"event_types", {type}}});
    const std::string path = "/v1/subscriptions/" + id + "/rotate-secret";
    std::vector<std::function<HttpResponse(HttpClient&)>> rotations;
    for (int k = 0; k < 3; ++k) {
      rotations.push_back(
          request("POST", path,
                  json{{"grace_period", "24h"}, {"secret", "secret-" + std::to_string(round) + "-" + std::to_string(k)}}
                      .dump()));
    }
    std::set<std::string> answered;
    for (const HttpResponse& a : concurrently(rotations)) {
      ASSERT_EQ(a.status, 200) << a.describe();
      answered.insert(a.json().value("secret", ""));
    }
    ASSERT_EQ(answered.size(), 3u);
    const std::string current = get("/v1/subscriptions/" + id).value("secret", "");
    ASSERT_TRUE(answered.count(current)) << "current secret " << current << " was not answered by any rotation";

    // The delivery is signed by the last rotation's secret and by the one it replaced, which
    // another rotation answered: not by the original, which the second rotation retired.
    publish(type, {{"round", round}}, 1);
    ASSERT_TRUE(receiver.wait_until(
        [&](const std::vector<RecordedRequest>& seen) {
          for (const auto& r : seen) {
            if (r.path == "/r" + std::to_string(round)) return true;
          }
          return false;
        },
        kApiWait));
    const RecordedRequest delivered = receiver.requests("/r" + std::to_string(round)).front();
    const std::set<std::string> signatures = signatures_of(delivered);
    ASSERT_EQ(signatures.size(), 2u) << delivered.header("webhook-signature").value_or("");
    EXPECT_TRUE(signatures.count(signature_by(current, delivered)));
    EXPECT_FALSE(signatures.count(signature_by(original, delivered)))
        << "round " << round << ": a rotation was lost (the original secret still signs)";
    int by_answered = 0;
    for (const std::string& secret : answered) by_answered += signatures.count(signature_by(secret, delivered)) ? 1 : 0;
    EXPECT_EQ(by_answered, 2) << "round " << round;
  }
}

}  // namespace subscription_races_test
}  // namespace relay::test
