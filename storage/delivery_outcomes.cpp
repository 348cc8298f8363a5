#include "storage/delivery_outcomes.h"

namespace relay::outcomes {

namespace {

// A failed attempt that ended at `at`: the streak goes on (or starts), and a subscription whose
// streak is older than its disable_after is disabled.
void count_failure(WriteTxn& txn, const Context& ctx, const Subscription& current, UnixMillis started,
                   UnixMillis at, Recorded& out) {
  const UnixMillis since = ctx.streaks.failed(txn, current.id, started);
  const std::int64_t after = effective_disable_after(current, ctx.default_disable_after_ms);
  // The caller's copy decides whether the record is worth reading; the record decides.
  if (since == 0 || !current.enabled || after <= 0 || at - since < after) return;
  Subscription disabled;
  if (!mutations::auto_disable_subscription(txn, current.id, since, at, ctx.default_disable_after_ms, disabled)) {
    return;
  }
  operational_events::subscription_disabled(txn, ctx.publisher, disabled, since,
                                            effective_disable_after(disabled, ctx.default_disable_after_ms), at,
                                            out.published);
  out.disabled = std::move(disabled);
}

}  // namespace

Status record_attempt(WriteTxn& txn, const Context& ctx, const Delivery& attempted, Attempt attempt,
                      const mutations::Resolution& resolution, const Subscription* queue_sub,
                      const Subscription* current, Recorded& out) {
  const UnixMillis started = attempt.started_at;
  const UnixMillis ended = attempt.started_at + attempt.duration_ms;
  const bool success = attempt.outcome == AttemptOutcome::success;
  if (auto recorded = mutations::record_attempt(txn, attempted, std::move(attempt), resolution, queue_sub,
                                                out.updated, out.advance);
      !recorded) {
    return recorded;
  }
  if (current != nullptr) {
    if (success) {
      ctx.streaks.succeeded(txn, current->id);
    } else {
      count_failure(txn, ctx, *current, started, ended, out);
    }
  }
  if (out.updated.state == DeliveryState::dead) {
    const std::string skip = out.disabled ? out.disabled->id : std::string();
    operational_events::delivery_dead(txn, ctx.publisher, out.updated, ended, skip, out.published);
  }
  return Ok{};
}

Status expire_delivery(WriteTxn& txn, const Context& ctx, const Delivery& waiting, std::string reason,
                       UnixMillis now, const Subscription* queue_sub, Recorded& out) {
  if (auto expired = mutations::expire_delivery(txn, waiting, std::move(reason), now, queue_sub, out.updated,
                                                out.advance);
      !expired) {
    return expired;
  }
  operational_events::delivery_dead(txn, ctx.publisher, out.updated, now, std::string(), out.published);
  return Ok{};
}

}  // namespace relay::outcomes
