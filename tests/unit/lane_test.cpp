// The scheduler's per-subscription lane: token bucket, circuit breaker and budget rule, with time
// as plain millisecond values from a ManualClock.
#include "relay/delivery/lane.h"

#include <gtest/gtest.h>

#include "relay/core/clock.h"

namespace relay {
namespace lane_test {

constexpr UnixMillis kStart = 1'614'265'330'000;

TEST(TokenBucket, StartsWithOneSecondOfBurstThenRefillsAtItsRate) {
  ManualClock clock(kStart);
  TokenBucket bucket;
  UnixMillis retry_at = 0;
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(bucket.try_take(4, clock.now_ms(), retry_at)) << i;
  EXPECT_FALSE(bucket.try_take(4, clock.now_ms(), retry_at));
  EXPECT_EQ(retry_at, kStart + 251) << "a token comes back after 1/rate, plus the millisecond rounded off";
  clock.advance(250);
  EXPECT_TRUE(bucket.try_take(4, clock.now_ms(), retry_at));
  EXPECT_FALSE(bucket.try_take(4, clock.now_ms(), retry_at));
}

TEST(TokenBucket, NeverHoldsMoreThanOneSecondOfTokens) {
  ManualClock clock(kStart);
  TokenBucket bucket;
  UnixMillis retry_at = 0;
  EXPECT_TRUE(bucket.try_take(2, clock.now_ms(), retry_at));
  clock.advance(60'000);
  EXPECT_TRUE(bucket.try_take(2, clock.now_ms(), retry_at));
  EXPECT_TRUE(bucket.try_take(2, clock.now_ms(), retry_at));
  EXPECT_FALSE(bucket.try_take(2, clock.now_ms(), retry_at));
}

TEST(CircuitBreaker, OpensAfterTheThresholdOfConsecutiveFailuresAndProbesOncePerInterval) {
  const CircuitOptions options{3, 30'000};
  ManualClock clock(kStart);
  CircuitBreaker circuit;
  EXPECT_EQ(circuit.record(false, clock.now_ms(), options), CircuitBreaker::Change::none);
  EXPECT_EQ(circuit.record(true, clock.now_ms(), options), CircuitBreaker::Change::none) << "a success resets the count";
  EXPECT_EQ(circuit.record(false, clock.now_ms(), options), CircuitBreaker::Change::none);
  EXPECT_EQ(circuit.record(false, clock.now_ms(), options), CircuitBreaker::Change::none);
  EXPECT_EQ(circuit.record(false, clock.now_ms(), options), CircuitBreaker::Change::opened);
  EXPECT_EQ(circuit.state(), CircuitState::open);
  EXPECT_EQ(circuit.probe_at(), kStart + 30'000);

  UnixMillis retry_at = 0;
  EXPECT_FALSE(circuit.allows(0, clock.now_ms(), retry_at));
  EXPECT_EQ(retry_at, kStart + 30'000);
  clock.advance(30'000);
  EXPECT_TRUE(circuit.allows(0, clock.now_ms(), retry_at)) << "the probe";
  EXPECT_EQ(circuit.state(), CircuitState::half_open);
  EXPECT_FALSE(circuit.allows(1, clock.now_ms(), retry_at)) << "one probe at a time";

  EXPECT_EQ(circuit.record(false, clock.now_ms(), options), CircuitBreaker::Change::reopened);
  EXPECT_EQ(circuit.probe_at(), kStart + 60'000);
  clock.advance(30'000);
  EXPECT_TRUE(circuit.allows(0, clock.now_ms(), retry_at));
  EXPECT_EQ(circuit.record(true, clock.now_ms(), options), CircuitBreaker::Change::closed);
  EXPECT_EQ(circuit.state(), CircuitState::closed);
  EXPECT_TRUE(circuit.allows(5, clock.now_ms(), retry_at));
}

class LaneBudget : public ::testing::Test {
 protected:
  LaneBudget() {
    sub_.id = "sub_1";
    sub_.max_in_flight = 4;
  }
  const LaneLimits limits_{4'000, 32, 1'000};
  Subscription sub_;
  Lane lane_;
};

TEST_F(LaneBudget, AFreeLaneMayHoldItsFullShareAndADeletedSubscriptionToo) {
  EXPECT_EQ(lane_budget(&lane_, &sub_, kStart, limits_), 4'000u);
  EXPECT_EQ(lane_budget(nullptr, &sub_, kStart, limits_), 4'000u) << "no lane yet, as after a restart";
  EXPECT_EQ(lane_budget(&lane_, nullptr, kStart, limits_), 4'000u) << "deleted: discarded as they come due";
}

TEST_F(LaneBudget, ADisabledSubscriptionHoldsNothing) {
  sub_.enabled = false;
  EXPECT_EQ(lane_budget(&lane_, &sub_, kStart, limits_), 0u);
}

TEST_F(LaneBudget, AnOpenCircuitHoldsTheBlockedAmountBeyondWhatRuns) {
  const CircuitOptions options{1, 30'000};
  lane_.circuit.record(false, kStart, options);
  lane_.in_flight = 1;
  EXPECT_EQ(lane_budget(&lane_, &sub_, kStart, limits_), 33u);
}

TEST_F(LaneBudget, AStalledLaneHoldsTheBlockedAmountOnceNothingAnsweredForStallMs) {
  lane_.in_flight = 4;
  lane_.last_progress_at = kStart;
  EXPECT_EQ(lane_budget(&lane_, &sub_, kStart + 999, limits_), 4'000u);
  EXPECT_EQ(lane_budget(&lane_, &sub_, kStart + 1'000, limits_), 36u);
}

TEST_F(LaneBudget, ARateLimitedLaneHoldsAboutTwoSecondsOfItsRate) {
  sub_.rate_limit_per_second = 100;
  lane_.in_flight = 2;
  EXPECT_EQ(lane_budget(&lane_, &sub_, kStart, limits_), 202u);
  sub_.rate_limit_per_second = 1;
  EXPECT_EQ(lane_budget(&lane_, &sub_, kStart, limits_), 34u) << "never less than the blocked amount";
  sub_.rate_limit_per_second = 10'000;
  EXPECT_EQ(lane_budget(&lane_, &sub_, kStart, limits_), 4'000u) << "never more than the full share";
}

TEST_F(LaneBudget, AParkedLaneWantsAReloadOnceDrainedToHalfItsBudget) {
  lane_.parked_from = keys::ScheduleKey{kStart, "dlv_0"};
  lane_.held = 51;
  EXPECT_FALSE(wants_reload(lane_, 100));
  lane_.held = 50;
  EXPECT_TRUE(wants_reload(lane_, 100));
  lane_.reload_queued = true;
  EXPECT_FALSE(wants_reload(lane_, 100)) << "queued once";
  lane_.reload_queued = false;
  EXPECT_FALSE(wants_reload(lane_, 0)) << "no budget, no reload";
  lane_.parked_from.reset();
  EXPECT_FALSE(wants_reload(lane_, 100));
}

TEST(LaneTest, ShardShareIsTheCeilingOfAnEvenShare) {
  EXPECT_EQ(shard_share(64, 3), 22u);
  EXPECT_EQ(shard_share(64, 4), 16u);
  EXPECT_EQ(shard_share(1, 3), 1u);  // never below 1: each shard still delivers
  EXPECT_EQ(shard_share(10, 1), 10u);
  EXPECT_EQ(shard_share(0, 3), 0u);  // unlimited stays unlimited
  EXPECT_EQ(shard_share(7, 0), 7u);  // no shard count yet: the whole limit
  EXPECT_EQ(shard_share(4'294'967'295u, 2), 2'147'483'648u);
}

}  // namespace lane_test
}  // namespace relay
