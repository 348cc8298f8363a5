#include "relay/delivery/retry_policy.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "relay/core/clock.h"

namespace relay {
namespace retry_policy_test {

constexpr UnixMillis kStart = 1'614'265'330'000;  // Thu, 25 Feb 2021 15:02:10 GMT
constexpr double kMidpoint = 0.5;                  // no jitter
const double kHighest = std::nextafter(1.0, 0.0);  // +20% (almost)
constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();

// Replays a delivery whose every attempt fails with `status`, each taking `attempt_ms`, through
// decide_after_attempt until it stops retrying; returns the start times relative to the first.
std::vector<std::int64_t> simulate_failing_delivery(const RetryPolicy& policy, double jitter_unit,
                                                    std::int64_t attempt_ms = 0, int status = 500) {
  ManualClock clock(kStart);
  const UnixMillis window_start = clock.now_ms();
  std::vector<std::int64_t> starts;
  for (std::uint32_t attempts = 1; attempts <= 1000; ++attempts) {
    starts.push_back(clock.now_ms() - window_start);
    clock.advance(attempt_ms);
    const RetryDecision decision =
        decide_after_attempt(policy, window_start, attempts, clock.now_ms(), AttemptReply{status, {}}, jitter_unit);
    if (decision.kind == RetryDecision::dead) return starts;
    EXPECT_EQ(decision.kind, RetryDecision::retry);
    EXPECT_GT(decision.next_attempt_at, clock.now_ms());
    EXPECT_LE(decision.next_attempt_at, window_start + policy.window_ms);
    clock.set(decision.next_attempt_at);
  }
  ADD_FAILURE() << "the delivery never died";
  return starts;
}

std::vector<std::int64_t> seconds(std::initializer_list<std::int64_t> values) {
  std::vector<std::int64_t> ms;
  for (std::int64_t s : values) ms.push_back(s * 1000);
  return ms;
}

TEST(RetryPolicyTest, DefaultHourWithoutJitterMakesTwelveAttempts) {
  EXPECT_EQ(simulate_failing_delivery(RetryPolicy{}, kMidpoint),
            seconds({0, 5, 15, 35, 75, 155, 315, 635, 1235, 1835, 2435, 3035}));
}

TEST(RetryPolicyTest, DefaultHourAtTheJitterBounds) {
  // -20%: 4, 8, 16, ... capped at 600 then 480 s.
  EXPECT_EQ(simulate_failing_delivery(RetryPolicy{}, 0.0),
            seconds({0, 4, 12, 28, 60, 124, 252, 508, 988, 1468, 1948, 2428, 2908, 3388}));
  // +20%: 6, 12, 24, ... capped at 600 then 720 s.
  EXPECT_EQ(simulate_failing_delivery(RetryPolicy{}, kHighest),
            seconds({0, 6, 18, 42, 90, 186, 378, 762, 1482, 2202, 2922}));
}

TEST(RetryPolicyTest, BackoffCountsFromTheEndOfTheAttempt) {
  // Every attempt times out after 15 s.
  EXPECT_EQ(simulate_failing_delivery(RetryPolicy{}, kMidpoint, 15'000),
            seconds({0, 20, 45, 80, 135, 230, 405, 740, 1355, 1970, 2585, 3200}));
}

TEST(RetryPolicyTest, EveryFailureKindIsRetried) {
  // No response at all (timeout, DNS, TLS, blocked), 3xx (redirects are not followed), 4xx, 5xx.
  for (int status : {0, 300, 301, 302, 304, 400, 401, 404, 408, 429, 500, 502, 503}) {
    const RetryDecision decision =
        decide_after_attempt(RetryPolicy{}, kStart, 1, kStart + 100, AttemptReply{status, {}}, kMidpoint);
    EXPECT_EQ(decision.kind, RetryDecision::retry) << status;
    EXPECT_EQ(decision.next_attempt_at, kStart + 5'100) << status;
  }
}

TEST(RetryPolicyTest, AnyTwoHundredSucceeds) {
  for (int status : {200, 201, 202, 204, 299}) {
    EXPECT_EQ(decide_after_attempt(RetryPolicy{}, kStart, 1, kStart, AttemptReply{status, {}}, kMidpoint).kind,
              RetryDecision::succeeded)
        << status;
  }
  // Even after the window: the attempt itself started inside it.
  EXPECT_EQ(decide_after_attempt(RetryPolicy{}, kStart, 12, kStart + 7'200'000, AttemptReply{200, {}}, kMidpoint).kind,
            RetryDecision::succeeded);
}

TEST(RetryPolicyTest, GoneIsDeadAtOnce) {
  EXPECT_EQ(decide_after_attempt(RetryPolicy{}, kStart, 1, kStart, AttemptReply{410, {}}, kMidpoint).kind,
            RetryDecision::dead);
  EXPECT_EQ(decide_after_attempt(RetryPolicy{}, kStart, 1, kStart, AttemptReply{410, 1000}, kMidpoint).kind,
            RetryDecision::dead);
}

TEST(RetryPolicyTest, WindowEndMakesTheDeliveryDead) {
  // Attempt 1 failed 5 s before the window closes; the next would start exactly at its end.
  const RetryDecision at_end =
      decide_after_attempt(RetryPolicy{}, kStart, 1, kStart + 3'595'000, AttemptReply{500, {}}, kMidpoint);
  EXPECT_EQ(at_end.kind, RetryDecision::retry);
  EXPECT_EQ(at_end.next_attempt_at, kStart + 3'600'000);
  // One millisecond later it would start after the end.
  EXPECT_EQ(decide_after_attempt(RetryPolicy{}, kStart, 1, kStart + 3'595'001, AttemptReply{500, {}}, kMidpoint).kind,
            RetryDecision::dead);
}

TEST(RetryPolicyTest, BackoffDoublesUpToTheCap) {
  const RetryPolicy policy;
  EXPECT_EQ(backoff_delay_ms(policy, 0, kMidpoint), 0);  // attempt 1 is immediate
  const std::int64_t expected[] = {5'000, 10'000, 20'000, 40'000, 80'000, 160'000, 320'000, 600'000, 600'000};
  for (std::uint32_t k = 1; k <= 9; ++k) EXPECT_EQ(backoff_delay_ms(policy, k, kMidpoint), expected[k - 1]) << k;
  for (std::uint32_t k : {10u, 62u, 63u, 64u, 1000u, std::numeric_limits<std::uint32_t>::max()}) {
    EXPECT_EQ(backoff_delay_ms(policy, k, kMidpoint), 600'000) << k;
  }
  // A cap below the initial delay wins from the start.
  EXPECT_EQ(backoff_delay_ms(RetryPolicy{5'000, 3'000, 3'600'000}, 1, kMidpoint), 3'000);
}

TEST(RetryPolicyTest, JitterStaysWithinTwentyPercent) {
  const RetryPolicy policy;
  for (std::uint32_t k = 1; k <= 12; ++k) {
    const std::int64_t base = backoff_delay_ms(policy, k, kMidpoint);
    EXPECT_EQ(backoff_delay_ms(policy, k, 0.0), base * 8 / 10) << k;
    EXPECT_EQ(backoff_delay_ms(policy, k, kHighest), base * 12 / 10) << k;
    for (double u : {0.1, 0.25, 0.75, 0.9}) {
      const std::int64_t delay = backoff_delay_ms(policy, k, u);
      EXPECT_GE(delay, base * 8 / 10) << k << " " << u;
      EXPECT_LE(delay, base * 12 / 10) << k << " " << u;
    }
  }
  EXPECT_EQ(backoff_delay_ms(policy, 1, 0.25), 4'500);
  EXPECT_EQ(backoff_delay_ms(policy, 1, 0.75), 5'500);
  // Out-of-range jitter is clamped, never stretches past +-20%.
  EXPECT_EQ(backoff_delay_ms(policy, 1, -3.0), 4'000);
  EXPECT_EQ(backoff_delay_ms(policy, 1, std::nan("")), 4'000);
  EXPECT_EQ(backoff_delay_ms(policy, 1, 7.0), 6'000);
}

TEST(RetryPolicyTest, HugePoliciesSaturateInsteadOfOverflowing) {
  const RetryPolicy huge{kMax / 4, kMax, kMax};
  EXPECT_EQ(backoff_delay_ms(huge, 1, kMidpoint), kMax / 4);
  EXPECT_EQ(backoff_delay_ms(huge, 3, kMidpoint), kMax / 4 * 4);  // just below the cap
  EXPECT_EQ(backoff_delay_ms(huge, 4, kMidpoint), kMax);
  EXPECT_EQ(backoff_delay_ms(huge, 100, kHighest), kMax);
  EXPECT_EQ(backoff_delay_ms(RetryPolicy{1, kMax, kMax}, 64, kMidpoint), kMax);
  const RetryDecision decision = decide_after_attempt(huge, kStart, 5, kStart, AttemptReply{500, {}}, kHighest);
  EXPECT_EQ(decision.kind, RetryDecision::retry);
  EXPECT_EQ(decision.next_attempt_at, kMax);
}

TEST(RetryPolicyTest, SubscriptionOverridesReplaceDefaultsFieldByField) {
  const RetryPolicy defaults{5'000, 600'000, 3'600'000};
  const RetryPolicy none = effective_policy(defaults, RetryOverrides{});
  EXPECT_EQ(none.initial_ms, 5'000);
  EXPECT_EQ(none.max_delay_ms, 600'000);
  EXPECT_EQ(none.window_ms, 3'600'000);

  const RetryPolicy custom = effective_policy(defaults, RetryOverrides{1'000, std::nullopt, 60'000});
  EXPECT_EQ(custom.initial_ms, 1'000);
  EXPECT_EQ(custom.max_delay_ms, 600'000);
  EXPECT_EQ(custom.window_ms, 60'000);
  EXPECT_EQ(simulate_failing_delivery(custom, kMidpoint), seconds({0, 1, 3, 7, 15, 31}));

  const RetryPolicy capped = effective_policy(defaults, RetryOverrides{std::nullopt, 20'000, std::nullopt});
  EXPECT_EQ(capped.max_delay_ms, 20'000);
  EXPECT_EQ(backoff_delay_ms(capped, 5, kMidpoint), 20'000);
}

TEST(RetryPolicyTest, RetryAfterDelaysTooManyRequestsAndUnavailable) {
  for (int status : {429, 503}) {
    const RetryDecision longer =
        decide_after_attempt(RetryPolicy{}, kStart, 1, kStart, AttemptReply{status, 120'000}, kMidpoint);
    EXPECT_EQ(longer.kind, RetryDecision::retry);
    EXPECT_EQ(longer.next_attempt_at, kStart + 120'000);
    // Retry-After is a lower bound: a longer backoff stands.
    const RetryDecision shorter =
        decide_after_attempt(RetryPolicy{}, kStart, 1, kStart, AttemptReply{status, 1'000}, kMidpoint);
    EXPECT_EQ(shorter.next_attempt_at, kStart + 5'000);
    // Beyond the window: dead rather than waiting past it.
    EXPECT_EQ(decide_after_attempt(RetryPolicy{}, kStart, 1, kStart + 1'000, AttemptReply{status, 3'600'000},
                                   kMidpoint)
                  .kind,
              RetryDecision::dead);
    EXPECT_EQ(decide_after_attempt(RetryPolicy{}, kStart, 1, kStart, AttemptReply{status, kMax}, kMidpoint).kind,
              RetryDecision::dead);
  }
  // Other statuses do not get to dictate the schedule.
  const RetryDecision other = decide_after_attempt(RetryPolicy{}, kStart, 1, kStart, AttemptReply{500, 120'000}, kMidpoint);
  EXPECT_EQ(other.next_attempt_at, kStart + 5'000);
}

TEST(RetryPolicyTest, RetryAfterHttpDateWithinAndBeyondTheWindow) {
  const std::optional<std::int64_t> within = parse_retry_after_ms("Thu, 25 Feb 2021 15:04:10 GMT", kStart);
  ASSERT_EQ(within, 120'000);
  const RetryDecision retry = decide_after_attempt(RetryPolicy{}, kStart, 1, kStart, AttemptReply{429, within}, kMidpoint);
  EXPECT_EQ(retry.kind, RetryDecision::retry);
  EXPECT_EQ(retry.next_attempt_at, kStart + 120'000);

  const std::optional<std::int64_t> beyond = parse_retry_after_ms("Thu, 25 Feb 2021 16:02:11 GMT", kStart);
  ASSERT_EQ(beyond, 3'601'000);
  EXPECT_EQ(decide_after_attempt(RetryPolicy{}, kStart, 1, kStart, AttemptReply{503, beyond}, kMidpoint).kind,
            RetryDecision::dead);
}

TEST(RetryAfterTest, ParsesDelaySeconds) {
  EXPECT_EQ(parse_retry_after_ms("120", kStart), 120'000);
  EXPECT_EQ(parse_retry_after_ms("0", kStart), 0);
  EXPECT_EQ(parse_retry_after_ms(" \t7 ", kStart), 7'000);
  EXPECT_EQ(parse_retry_after_ms("9223372036854775807", kStart), kMax);
  EXPECT_EQ(parse_retry_after_ms("99999999999999999999999", kStart), kMax);
}

TEST(RetryAfterTest, ParsesHttpDates) {
  // IMF-fixdate and the two obsolete forms RFC 9110 asks recipients to accept.
  for (const char* date : {"Thu, 25 Feb 2021 15:02:40 GMT", "Thursday, 25-Feb-21 15:02:40 GMT",
                           "Thu Feb 25 15:02:40 2021"}) {
    EXPECT_EQ(parse_retry_after_ms(date, kStart), 30'000) << date;
  }
  // A date already past means "now", not garbage.
  EXPECT_EQ(parse_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", kStart), 0);
}

TEST(RetryAfterTest, RejectsNegativeFractionalAndGarbage) {
  for (const char* bad : {"", "  ", "-1", "-120", "+5", "1.5", "5x", "5 s", "0x10", "soon", "tomorrow", "Thu, 99 Foo"}) {
    EXPECT_EQ(parse_retry_after_ms(bad, kStart), std::nullopt) << bad;
  }
}

}  // namespace retry_policy_test
}  // namespace relay
