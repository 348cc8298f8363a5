// Building an attempt's request and reading its answer, without a loop, a store or a network.
#include "relay/delivery/attempt_builder.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace relay {
namespace attempt_builder_test {

constexpr UnixMillis kStart = 1'614'265'330'000;

class AttemptBuilder : public ::testing::Test {
 protected:
  AttemptBuilder() {
    sub_.id = "sub_1";
    sub_.url = "http://subscriber.example/hook";
    sub_.secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    sub_.headers = {{"X-Tenant", "acme"}};
    delivery_.id = "dlv_1";
    delivery_.event_id = "evt_1";
    delivery_.subscription_id = sub_.id;
    delivery_.event_type = "meeting.completed";
    delivery_.next_attempt_at = kStart;
    delivery_.attempts = 2;
    delivery_.window_start = kStart - 60'000;
  }

  std::vector<std::string> header_names(const EgressRequest& r) {
    std::vector<std::string> names;
    for (const auto& [name, value] : r.headers) names.push_back(name);
    return names;
  }

  Subscription sub_;
  Delivery delivery_;
};

TEST_F(AttemptBuilder, TheRequestCarriesThePayloadSignedAndTheRelayHeadersInOrder) {
  const auto payload = std::make_shared<const std::string>("{\"n\":1}");
  const SubscriptionSigner signer(sub_);
  const EgressRequest r = build_request(delivery_, sub_, payload, signer, kStart + 1'500, 15'000);
  EXPECT_EQ(r.url, sub_.url);
  EXPECT_EQ(r.body, payload);
  EXPECT_EQ(r.timeout_ms, 15'000);
  EXPECT_EQ(header_names(r), (std::vector<std::string>{"Content-Type", "webhook-id", "webhook-timestamp",
                                                       "webhook-signature", "X-Relay-Event-Type",
                                                       "X-Relay-Delivery-Id", "X-Relay-Attempt", "X-Tenant"}));
  EXPECT_EQ(r.headers[2].second, std::to_string((kStart + 1'500) / 1000));
  EXPECT_EQ(r.headers[6].second, "3");
  EXPECT_TRUE(r.headers[3].second.starts_with("v1,"));

  sub_.timeout_ms = 2'000;
  EXPECT_EQ(build_request(delivery_, sub_, payload, signer, kStart, 15'000).timeout_ms, 2'000);
}

TEST_F(AttemptBuilder, ASuccessIsRecordedAndSucceeds) {
  EgressResponse response;
  response.outcome = AttemptOutcome::success;
  response.http_status = 204;
  response.duration_ms = 40;
  const AttemptResult result = resolve_attempt(delivery_, &sub_, RetryPolicy{}, kStart, response, 0.5);
  EXPECT_EQ(result.attempt.number, 3u);
  EXPECT_EQ(result.attempt.started_at, kStart);
  EXPECT_EQ(result.attempt.duration_ms, 40);
  EXPECT_EQ(result.attempt.http_status, 204);
  EXPECT_EQ(result.resolution.state, DeliveryState::succeeded);
}

TEST_F(AttemptBuilder, AFailureIsRetriedAfterTheBackoffAndAtLeastRetryAfter) {
  EgressResponse response;
  response.outcome = AttemptOutcome::http_5xx;
  response.http_status = 503;
  response.retry_after = "120";
  response.body_excerpt = "busy";
  const AttemptResult result = resolve_attempt(delivery_, &sub_, RetryPolicy{}, kStart, response, 0.5);
  EXPECT_EQ(result.attempt.response_body, "busy");
  EXPECT_EQ(result.resolution.state, DeliveryState::pending);
  EXPECT_EQ(result.resolution.next_attempt_at, kStart + 120'000) << "Retry-After beats the 20 s backoff";
}

TEST_F(AttemptBuilder, AFailureAfterTheWindowIsDeadAndTimeDisabledExtendsTheWindow) {
  EgressResponse response;
  response.outcome = AttemptOutcome::http_5xx;
  response.http_status = 500;
  delivery_.window_start = kStart - 3'590'000;  // the next try would start after the hour
  EXPECT_EQ(resolve_attempt(delivery_, &sub_, RetryPolicy{}, kStart, response, 0.5).resolution.state,
            DeliveryState::dead);
  sub_.disabled_ms = 600'000;  // disabled for ten minutes since the window started
  const AttemptResult result = resolve_attempt(delivery_, &sub_, RetryPolicy{}, kStart, response, 0.5);
  EXPECT_EQ(result.resolution.state, DeliveryState::pending);
  EXPECT_EQ(result.resolution.window_pause_mark, 600'000);
}

}  // namespace attempt_builder_test
}  // namespace relay
