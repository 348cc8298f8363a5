// ForwardCoalescer (relay/cluster/forward_coalescer.h) against a shard answered by hand: which
// events go alone and which wait to go as one batch, in what order, and how the batch's answer,
// a refusal or silence becomes each producer's own answer.

#include "relay/cluster/forward_coalescer.h"

#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <memory>
#include <optional>

namespace relay::cluster {
namespace forward_coalescer_test {

namespace asio = boost::asio;

// A shard whose answers the test gives, one call at a time.
class HeldShard : public PeerClient {
 public:
  struct Call {
    std::string base_url;
    PeerRequest request;
    std::unique_ptr<asio::steady_timer> release;
    std::optional<Result<PeerResponse>> answer;
  };

  explicit HeldShard(asio::io_context& io) : io_(io) {}

  asio::awaitable<Result<PeerResponse>> send(std::string base_url, PeerRequest request,
                                             std::chrono::milliseconds) override {
    auto call = std::make_shared<Call>();
    call->base_url = std::move(base_url);
    call->request = std::move(request);
    call->release = std::make_unique<asio::steady_timer>(io_, asio::steady_timer::time_point::max());
    calls.push_back(call);
    co_await call->release->async_wait(asio::as_tuple(asio::use_awaitable));
    co_return call->answer ? *call->answer : make_error(Errc::unavailable, "never answered");
  }

  void answer(std::size_t call, Result<PeerResponse> answer) {
    calls.at(call)->answer = std::move(answer);
    calls.at(call)->release->cancel();
  }

  std::vector<std::shared_ptr<Call>> calls;

 private:
  asio::io_context& io_;
};

PeerResponse json_answer(int status, std::string body, Headers extra = {}) {
  extra.emplace_back("Content-Type", "application/json");
  return PeerResponse{status, std::move(body), std::move(extra)};
}

std::string event_body(int n) { return R"({"type":"t","ordering_key":"k","payload":)" + std::to_string(n) + "}"; }

PeerRequest event(int n) {
  return PeerRequest{
      "POST",
      "/v1/events",
      event_body(n),
      {{"Content-Type", "application/json"}, {"Authorization", "Bearer admin-key"}, {"X-Relay-Forwarded-By", "a"}}};
}

std::string header(const Headers& headers, std::string_view name) {
  for (const auto& [n, v] : headers) {
    if (n == name) return v;
  }
  return "";
}

class ForwardCoalescerTest : public ::testing::Test {
 protected:
  using Answers = std::vector<std::optional<Result<PeerResponse>>>;

  explicit ForwardCoalescerTest(ForwardCoalescer::Options options = {})
      : metrics_("test"), shard_(io_), coalescer_(shard_, metrics_, options) {
    metrics_.add_cluster_forwarding();
  }

  // Forwards `event` to shard "b"; its answer lands in answers_[slot] once given.
  void forward(PeerRequest request, bool batchable = true) {
    const std::size_t slot = answers_.size();
    answers_.emplace_back();
    asio::co_spawn(io_, run(slot, std::move(request), batchable),
                   [](std::exception_ptr error) { ASSERT_FALSE(error); });
    settle();
  }

  asio::awaitable<void> run(std::size_t slot, PeerRequest request, bool batchable) {
    ShardInfo owner{"b", 2, "http://b:8080", true};
    Result<PeerResponse> answer = co_await coalescer_.forward(std::move(owner), std::move(request), batchable);
    answers_[slot] = std::move(answer);
  }

  void answer(std::size_t call, Result<PeerResponse> answer) {
    shard_.answer(call, std::move(answer));
    settle();
  }

  // Runs what is ready (an io_context that ran out of work stops: restarted first).
  void settle() {
    io_.restart();
    io_.poll();
  }

  const PeerResponse& answered(std::size_t slot) {
    EXPECT_TRUE(answers_.at(slot).has_value()) << "event " << slot << " has no answer yet";
    EXPECT_TRUE(answers_.at(slot)->ok()) << answers_.at(slot)->error().message;
    return answers_.at(slot)->value();
  }

  double counted(std::string_view series) {
    const std::string text = metrics_.scrape();
    const auto at = text.find(std::string("\n") + std::string(series) + " ");
    return at == std::string::npos ? -1 : std::stod(text.substr(at + series.size() + 2));
  }

  asio::io_context io_;
  RelayMetrics metrics_;
  HeldShard shard_;
  ForwardCoalescer coalescer_;
  Answers answers_;
};

TEST_F(ForwardCoalescerTest, AnEventWithNothingInFlightGoesAloneAtOnceAsItCame) {
  forward(event(0));
  ASSERT_EQ(shard_.calls.size(), 1u);
  EXPECT_EQ(shard_.calls[0]->base_url, "http://b:8080");
  EXPECT_EQ(shard_.calls[0]->request.target, "/v1/events");
  EXPECT_EQ(shard_.calls[0]->request.body, event_body(0));
  answer(0, json_answer(202, R"({"deliveries":1,"id":"evt_1"})"));
  EXPECT_EQ(answered(0).status, 202);
  EXPECT_EQ(answered(0).body, R"({"deliveries":1,"id":"evt_1"})");
}

TEST_F(ForwardCoalescerTest, EventsArrivingWhileOneIsInFlightGoAsOneBatchInArrivalOrder) {
  forward(event(0));
  for (int n = 1; n <= 3; ++n) forward(event(n));
  ASSERT_EQ(shard_.calls.size(), 1u) << "the others wait for the request in flight";
  answer(0, json_answer(202, R"({"deliveries":0,"id":"evt_1"})"));
  EXPECT_EQ(answered(0).status, 202);

  ASSERT_EQ(shard_.calls.size(), 2u);
  const PeerRequest& batch = shard_.calls[1]->request;
  EXPECT_EQ(batch.method, "POST");
  EXPECT_EQ(batch.target, "/v1/events/batch");
  EXPECT_EQ(batch.body, "{\"events\":[" + event_body(1) + "," + event_body(2) + "," + event_body(3) + "]}");
  EXPECT_EQ(header(batch.headers, "Authorization"), "Bearer admin-key");
  EXPECT_EQ(header(batch.headers, "X-Relay-Forwarded-By"), "a");

  // A new event, a repeat of a client id, and an event the owner refused: each its own answer.
  const std::string refusal = R"({"error":{"code":"invalid_field","message":"no"}})";
  answer(1, json_answer(200,
                        R"({"results":[{"deliveries":2,"id":"evt_2"},{"deliveries":1,"id":"evt_0"},)" + refusal + "]}",
                        {{"X-Relay-Statuses", "202,200,400"}}));
  EXPECT_EQ(answered(1).status, 202);
  EXPECT_EQ(answered(1).body, R"({"deliveries":2,"id":"evt_2"})");
  EXPECT_EQ(answered(2).status, 200);
  EXPECT_EQ(answered(2).body, R"({"deliveries":1,"id":"evt_0"})");
  EXPECT_EQ(answered(3).status, 400);
  EXPECT_EQ(answered(3).body, refusal);
  EXPECT_EQ(header(answered(3).headers, "Content-Type"), "application/json");
  EXPECT_EQ(counted("relay_cluster_forwarded_requests_total{kind=\"ingest\"}"), 2);
  EXPECT_EQ(counted("relay_cluster_forwarded_events_total"), 4);
}

TEST_F(ForwardCoalescerTest, EventsArrivingWhileABatchIsInFlightMakeTheNextBatch) {
  forward(event(0));
  forward(event(1));
  forward(event(2));
  answer(0, json_answer(202, R"({"deliveries":0,"id":"evt_1"})"));
  ASSERT_EQ(shard_.calls.size(), 2u);
  forward(event(3));
  forward(event(4));
  ASSERT_EQ(shard_.calls.size(), 2u);
  answer(1, json_answer(200, R"({"results":[{"deliveries":0,"id":"evt_2"},{"deliveries":0,"id":"evt_3"}]})",
                        {{"X-Relay-Statuses", "202,202"}}));
  ASSERT_EQ(shard_.calls.size(), 3u);
  EXPECT_EQ(shard_.calls[2]->request.body, "{\"events\":[" + event_body(3) + "," + event_body(4) + "]}");
  answer(2, json_answer(200, R"({"results":[{"deliveries":0,"id":"evt_4"},{"deliveries":0,"id":"evt_5"}]})",
                        {{"X-Relay-Statuses", "202,202"}}));
  for (std::size_t slot = 0; slot < 5; ++slot) EXPECT_EQ(answered(slot).status, 202);
  EXPECT_EQ(answered(4).body, R"({"deliveries":0,"id":"evt_5"})");
}

TEST_F(ForwardCoalescerTest, ABatchRefusedAsARequestIsSentAgainOneEventAtATimeInOrder) {
  forward(event(0));
  forward(event(1));
  forward(event(2));
  answer(0, json_answer(202, R"({"deliveries":0,"id":"evt_1"})"));
  answer(1, json_answer(413, R"({"error":{"code":"payload_too_large","message":"big"}})"));
  // Alone, one after the other: the second only once the first is answered.
  ASSERT_EQ(shard_.calls.size(), 3u);
  EXPECT_EQ(shard_.calls[2]->request.target, "/v1/events");
  EXPECT_EQ(shard_.calls[2]->request.body, event_body(1));
  answer(2, json_answer(202, R"({"deliveries":0,"id":"evt_2"})"));
  ASSERT_EQ(shard_.calls.size(), 4u);
  EXPECT_EQ(shard_.calls[3]->request.body, event_body(2));
  answer(3, json_answer(200, R"({"deliveries":0,"id":"evt_0"})"));
  EXPECT_EQ(answered(1).status, 202);
  EXPECT_EQ(answered(2).status, 200);
  EXPECT_EQ(answered(2).body, R"({"deliveries":0,"id":"evt_0"})");
}

TEST_F(ForwardCoalescerTest, AfterAnEventSentAgainAloneGotNoAnswerTheRestAreNotSent) {
  forward(event(0));
  for (int n = 1; n <= 3; ++n) forward(event(n));
  answer(0, json_answer(202, R"({"deliveries":0,"id":"evt_1"})"));
  answer(1, json_answer(413, R"({"error":{"code":"payload_too_large","message":"big"}})"));
  ASSERT_EQ(shard_.calls.size(), 3u);
  answer(2, make_error(Errc::unavailable, "timed out"));
  ASSERT_EQ(shard_.calls.size(), 3u) << "events 2 and 3 were not sent";
  for (std::size_t slot = 1; slot <= 3; ++slot) {
    ASSERT_TRUE(answers_[slot].has_value());
    EXPECT_FALSE(answers_[slot]->ok());
  }
}

TEST_F(ForwardCoalescerTest, ABatchRefusedForWhatWouldRefuseEachEventGivesEachThatRefusal) {
  forward(event(0));
  forward(event(1));
  forward(event(2));
  answer(0, json_answer(202, R"({"deliveries":0,"id":"evt_1"})"));
  const std::string busy = R"({"error":{"code":"too_many_requests","message":"retry later"}})";
  answer(1, json_answer(429, busy, {{"Retry-After", "5"}}));
  ASSERT_EQ(shard_.calls.size(), 2u) << "nothing is sent again";
  for (std::size_t slot : {1, 2}) {
    EXPECT_EQ(answered(slot).status, 429);
    EXPECT_EQ(answered(slot).body, busy);
    EXPECT_EQ(header(answered(slot).headers, "Retry-After"), "5");
  }
}

TEST_F(ForwardCoalescerTest, NoAnswerFailsEveryEventWaitingForThatShardWithoutSendingThem) {
  forward(event(0));
  forward(event(1));
  forward(event(2));
  answer(0, make_error(Errc::unavailable, "timed out"));
  ASSERT_EQ(shard_.calls.size(), 1u);
  for (std::size_t slot = 0; slot < 3; ++slot) {
    ASSERT_TRUE(answers_[slot].has_value());
    ASSERT_FALSE(answers_[slot]->ok());
    EXPECT_NE(answers_[slot]->error().message.find("timed out"), std::string::npos);
  }
  // The next event finds nothing in flight and goes at once.
  forward(event(3));
  ASSERT_EQ(shard_.calls.size(), 2u);
  EXPECT_EQ(shard_.calls[1]->request.target, "/v1/events");
}

TEST_F(ForwardCoalescerTest, AnEventWithAnIdempotencyKeyHeaderGoesAloneEvenWhileOneIsInFlight) {
  forward(event(0));
  PeerRequest keyed = event(1);
  keyed.headers.emplace_back("Idempotency-Key", "client-1");
  forward(std::move(keyed), /*batchable=*/false);
  ASSERT_EQ(shard_.calls.size(), 2u);
  EXPECT_EQ(shard_.calls[1]->request.target, "/v1/events");
  EXPECT_EQ(header(shard_.calls[1]->request.headers, "Idempotency-Key"), "client-1");
}

TEST(CoalescedAnswers, AnOwnerWithoutStatusesHasResultsAnswered202AndErrors400) {
  const PeerResponse batch{
      200, R"({"results":[{"deliveries":0,"id":"evt_2"},{"error":{"code":"invalid_field","message":"x"}}]})", {}};
  const auto answers = coalesced_answers(batch, 2);
  ASSERT_TRUE(answers);
  EXPECT_EQ((*answers)[0].status, 202);
  EXPECT_EQ((*answers)[1].status, 400);
  EXPECT_FALSE(coalesced_answers(batch, 3)) << "a count that does not match";
  EXPECT_EQ((*coalesced_answers(PeerResponse{200, batch.body, {{"X-Relay-Statuses", "200"}}}, 2))[0].status, 202)
      << "statuses that do not match the results are ignored";
  EXPECT_EQ((*coalesced_answers(PeerResponse{200, batch.body, {{"X-Relay-Statuses", "200,409"}}}, 2))[1].status, 409);
}

class SmallBatches : public ForwardCoalescerTest {
 protected:
  SmallBatches()
      : ForwardCoalescerTest(ForwardCoalescer::Options{.timeout = std::chrono::milliseconds(2000),
                                                       .max_in_flight = 1,
                                                       .max_batch_bytes = 16 + 2 * event_body(1).size(),
                                                       .max_batch_events = 3}) {}
};

TEST_F(SmallBatches, ABatchHoldsWhatFitsInTheShardsBodyLimitAndTheRestWaits) {
  forward(event(0));
  for (int n = 1; n <= 4; ++n) forward(event(n));
  answer(0, json_answer(202, R"({"deliveries":0,"id":"evt_1"})"));
  ASSERT_EQ(shard_.calls.size(), 2u);
  EXPECT_EQ(shard_.calls[1]->request.body, "{\"events\":[" + event_body(1) + "," + event_body(2) + "]}");
  EXPECT_LE(shard_.calls[1]->request.body.size(), 16 + 2 * event_body(1).size());
  answer(1, json_answer(200, R"({"results":[{"deliveries":0,"id":"evt_2"},{"deliveries":0,"id":"evt_3"}]})",
                        {{"X-Relay-Statuses", "202,202"}}));
  ASSERT_EQ(shard_.calls.size(), 3u);
  EXPECT_EQ(shard_.calls[2]->request.body, "{\"events\":[" + event_body(3) + "," + event_body(4) + "]}");
}

class ShortTimeout : public ForwardCoalescerTest {
 protected:
  ShortTimeout() : ForwardCoalescerTest(ForwardCoalescer::Options{.timeout = std::chrono::milliseconds(20)}) {}
};

TEST_F(ShortTimeout, AnEventThatWaitsLongerThanTheTimeoutForItsTurnIsAnsweredUnsent) {
  forward(event(0));
  forward(event(1));
  // The request in flight is never answered here; the event behind it gives up.
  while (!answers_[1].has_value()) io_.run_one_for(std::chrono::milliseconds(100));
  ASSERT_FALSE(answers_[1]->ok());
  EXPECT_NE(answers_[1]->error().message.find("waited over 20 ms"), std::string::npos);
  EXPECT_EQ(shard_.calls.size(), 1u);
  EXPECT_FALSE(answers_[0].has_value());
}

}  // namespace forward_coalescer_test
}  // namespace relay::cluster
