#include "relay/delivery/lane.h"

#include <algorithm>

namespace relay {

bool TokenBucket::try_take(std::uint32_t rate_per_second, UnixMillis now, UnixMillis& retry_at) {
  const double rate = rate_per_second;
  if (refilled_at_ == 0) tokens_ = rate;  // start with one second of burst
  tokens_ = std::min(rate, tokens_ + static_cast<double>(now - refilled_at_) * rate / 1000.0);
  refilled_at_ = now;
  if (tokens_ < 1.0) {
    retry_at = now + static_cast<UnixMillis>((1.0 - tokens_) * 1000.0 / rate) + 1;
    return false;
  }
  tokens_ -= 1.0;
  return true;
}

bool CircuitBreaker::allows(std::uint32_t running, UnixMillis now, UnixMillis& retry_at) {
  if (state_ == CircuitState::open) {
    if (now < probe_at_) {
      retry_at = probe_at_;
      return false;
    }
    state_ = CircuitState::half_open;  // this attempt is the probe
    return true;
  }
  return state_ != CircuitState::half_open || running == 0;  // one probe at a time
}

CircuitBreaker::Change CircuitBreaker::record(bool success, UnixMillis now, const CircuitOptions& options) {
  if (success) {
    const bool was_open = state_ != CircuitState::closed;
    consecutive_failures_ = 0;
    state_ = CircuitState::closed;
    return was_open ? Change::closed : Change::none;
  }
  ++consecutive_failures_;
  if (state_ == CircuitState::half_open ||
      (state_ == CircuitState::closed && consecutive_failures_ >= options.failure_threshold)) {
    const bool opened = state_ == CircuitState::closed;
    state_ = CircuitState::open;
    probe_at_ = now + options.probe_interval_ms;
    return opened ? Change::opened : Change::reopened;
  }
  return Change::none;
}

std::size_t lane_budget(const Lane* l, const Subscription* sub, UnixMillis now, const LaneLimits& limits) {
  // How far ahead a rate-limited lane keeps deliveries: reloads take milliseconds.
  constexpr std::size_t kRateSeconds = 2;
  const std::size_t full = limits.full;
  if (!sub) return full;  // deleted: its deliveries are discarded as they come due
  if (!sub->enabled) return 0;
  const std::size_t running = l ? l->in_flight : 0;
  const std::size_t blocked = std::min(full, limits.blocked + running);
  if (l && l->circuit.state() != CircuitState::closed) return blocked;
  if (l && running >= shard_share(sub->max_in_flight, limits.shards) && now - l->last_progress_at >= limits.stall_ms) {
    return blocked;
  }
  if (const std::size_t rate = shard_share(sub->rate_limit_per_second, limits.shards); rate > 0) {
    return std::min(full, std::max<std::size_t>(limits.blocked, rate * kRateSeconds) + running);
  }
  return full;
}

std::uint32_t shard_share(std::uint32_t limit, std::size_t shards) {
  if (limit == 0 || shards <= 1) return limit;
  const std::uint64_t n = shards;
  return static_cast<std::uint32_t>((limit + n - 1) / n);
}

bool wants_reload(const Lane& l, std::size_t budget) {
  return l.parked_from && !l.reload_queued && l.held < budget && l.held <= budget / 2;
}

}  // namespace relay
