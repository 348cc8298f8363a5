#include "storage/mutations.h"

#include <algorithm>

#include "storage/records.h"

namespace relay::mutations {

namespace {

std::optional<Delivery> load_delivery(WriteTxn& txn, const std::string& id) {
  auto bytes = txn.get(Family::deliveries, keys::delivery_key(id));
  if (!bytes) return std::nullopt;
  return records::decode_delivery(*bytes);
}

// Drops whichever index key holds the delivery in its current state. A waiting one has none.
void remove_state_key(WriteTxn& txn, const Delivery& d) {
  if (d.waiting) return;
  switch (d.state) {
    case DeliveryState::pending:
    case DeliveryState::in_flight:
      txn.del(Family::schedule, keys::schedule_key(d.next_attempt_at, d.id));
      break;
    case DeliveryState::dead:
      txn.del(Family::dead_letters, keys::dead_letter_key(d.completed_at, d.id));
      break;
    case DeliveryState::succeeded:
    case DeliveryState::superseded:  // kept for --retention like a success
      txn.del(Family::completed, keys::completed_key(d.completed_at, keys::CompletedKind::delivery, d.id));
      break;
  }
}

// put(), or put_new() for a key the rest of the group cannot reach (see WriteTxn::put_new).
void put_maybe_new(WriteTxn& txn, bool reachable, Family family, const std::string& key, const std::string& value) {
  if (reachable) {
    txn.put(family, key, value);
  } else {
    txn.put_new(family, key, value);
  }
}

// Writes the index key of the delivery's current state. `reachable`: false for a delivery
// minted by this command.
void put_state_key(WriteTxn& txn, const Delivery& d, bool reachable = true) {
  if (d.waiting) return;
  switch (d.state) {
    case DeliveryState::pending:
    case DeliveryState::in_flight:
      put_maybe_new(txn, reachable, Family::schedule, keys::schedule_key(d.next_attempt_at, d.id),
                    keys::subscription_key(d.subscription_id));
      break;
    case DeliveryState::dead:
      txn.put(Family::dead_letters, keys::dead_letter_key(d.completed_at, d.id), keys::subscription_key(d.subscription_id));
      break;
    case DeliveryState::succeeded:
    case DeliveryState::superseded:
      txn.put(Family::completed, keys::completed_key(d.completed_at, keys::CompletedKind::delivery, d.id), "");
      break;
  }
}

// A blind merge, not a read-modify-write: see storage/event_type_merge.h.
void count_event_type(WriteTxn& txn, const std::string& type, UnixMillis now) {
  const EventTypeStats one_more{.type = {}, .count = 1, .last_seen = now};
  txn.merge(Family::event_types, type, records::encode_record(one_more));
}

bool event_has_deliveries(WriteTxn& txn, const std::string& event_id) {
  const std::string prefix = keys::id_prefix(event_id);
  bool any = false;
  txn.scan(Family::event_deliveries, ScanRange{prefix, keys::prefix_end(prefix)}, [&](auto, auto) {
    any = true;
    return false;
  });
  return any;
}

void remove_event(WriteTxn& txn, const std::string& event_id) {
  if (auto bytes = txn.get(Family::events, keys::event_key(event_id))) {
    if (auto event = records::decode_event(*bytes); event && !event->client_id.empty()) {
      txn.del(Family::idempotency, event->client_id);
    }
  }
  txn.del(Family::events, keys::event_key(event_id));
}

std::size_t count_deliveries(WriteTxn& txn, const std::string& event_id) {
  const std::string prefix = keys::id_prefix(event_id);
  std::size_t n = 0;
  txn.scan(Family::event_deliveries, ScanRange{prefix, keys::prefix_end(prefix)}, [&](auto, auto) {
    ++n;
    return true;
  });
  return n;
}

// Whether other commands of the group can reach the event's records (its record, its
// event_deliveries keys) while it is staged: a stored event by its id, a new one only through
// its client id (a repeat ingest reads the event and counts its deliveries). What they cannot
// reach is written with WriteTxn::put_new.
enum class EventOrigin { stored, minted };

bool group_can_reach(const Event& event, EventOrigin origin) {
  return origin == EventOrigin::stored || !event.client_id.empty();
}

// New pending deliveries, due now. Their ids are minted here, so the delivery records and
// schedule keys are unreachable by the rest of the group (the scheduler learns of them after
// the commit).
std::vector<Delivery> stage_deliveries(WriteTxn& txn, const Event& event,
                                       const std::vector<std::shared_ptr<const Subscription>>& targets,
                                       keys::IdGenerator& ids, UnixMillis now, EventOrigin origin) {
  const bool event_reachable = group_can_reach(event, origin);
  std::vector<Delivery> created;
  created.reserve(targets.size());
  for (const auto& sub : targets) {
    Delivery d;
    d.id = ids.next(keys::kDeliveryPrefix);
    d.event_id = event.id;
    d.subscription_id = sub->id;
    d.event_type = event.type;
    d.tenant = event.tenant;
    d.ordering_key = event.ordering_key;
    d.state = DeliveryState::pending;
    d.created_at = now;
    d.next_attempt_at = now;
    d.window_pause_mark = paused_ms(*sub, now);
    // A delivery in an ordering queue is reachable by the rest of the group through its queue
    // entry: a head finishing later in the group promotes (or supersedes) it by its record.
    const bool queued = ordering_queue::applies(*sub, d);
    if (queued) ordering_queue::join(txn, d);
    put_maybe_new(txn, queued, Family::deliveries, keys::delivery_key(d.id), records::encode_record(d));
    put_state_key(txn, d, /*reachable=*/false);
    // Other commands scan a reachable event's links: to count its deliveries, or to learn that
    // a removed delivery was not its last.
    put_maybe_new(txn, event_reachable, Family::event_deliveries, keys::event_delivery_key(event.id, d.id), "");
    created.push_back(std::move(d));
  }
  return created;
}

}  // namespace

std::vector<Delivery> add_deliveries(WriteTxn& txn, const Event& event,
                                     const std::vector<std::shared_ptr<const Subscription>>& targets,
                                     keys::IdGenerator& ids, UnixMillis now) {
  return stage_deliveries(txn, event, targets, ids, now, EventOrigin::stored);
}

Status redeliver_event(WriteTxn& txn, const std::string& event_id, const RedeliveryTargets& targets,
                       keys::IdGenerator& ids, UnixMillis now, Redelivery& out) {
  // An id of another kind names no event (and no key of the family).
  auto bytes = keys::parse_id(event_id, keys::kEventPrefix) ? txn.get(Family::events, keys::event_key(event_id))
                                                             : std::nullopt;
  auto stored = bytes ? records::decode_event(*bytes) : std::nullopt;
  if (!stored) return make_error(Errc::not_found, "no event " + event_id);
  auto chosen = targets(*stored);
  if (!chosen) return chosen.error();
  out.deliveries = add_deliveries(txn, *stored, *chosen, ids, now);
  out.event = std::move(*stored);
  return Ok{};
}

Status ingest(WriteTxn& txn, const NewEvent& input, const std::vector<std::shared_ptr<const Subscription>>& targets,
              keys::IdGenerator& ids, UnixMillis now, IngestedEvent& out) {
  if (!input.client_id.empty()) {
    if (auto existing_id = txn.get(Family::idempotency, input.client_id)) {
      auto bytes = txn.get(Family::events, *existing_id);
      auto event = bytes ? records::decode_event(*bytes) : std::nullopt;
      if (event) {
        out.event = std::move(*event);
        out.created = false;
        out.delivery_count = count_deliveries(txn, out.event.id);
        return Ok{};
      }
      // A dangling idempotency key (its event expired): fall through and ingest anew.
    }
  }
  Event& event = out.event;
  event.id = ids.next(keys::kEventPrefix);
  event.client_id = input.client_id;
  event.type = input.type;
  event.tenant = input.tenant;
  event.ordering_key = input.ordering_key;
  event.payload = input.payload;
  event.created_at = now;
  put_maybe_new(txn, group_can_reach(event, EventOrigin::minted), Family::events, keys::event_key(event.id),
                records::encode_record(event));
  // Indexed: a repeat later in the group must find it.
  if (!event.client_id.empty()) txn.put(Family::idempotency, event.client_id, keys::event_key(event.id));
  count_event_type(txn, event.type, now);
  out.deliveries = stage_deliveries(txn, event, targets, ids, now, EventOrigin::minted);
  if (out.deliveries.empty()) {
    // Nothing will ever complete for this event: retention starts now.
    txn.put(Family::completed, keys::completed_key(now, keys::CompletedKind::event, event.id), "");
  }
  out.created = true;
  out.delivery_count = out.deliveries.size();
  return Ok{};
}

Status put_subscription(WriteTxn& txn, const Subscription& subscription) {
  txn.put(Family::subscriptions, keys::subscription_key(subscription.id), records::encode_record(subscription));
  return Ok{};
}

Status delete_subscription(WriteTxn& txn, const std::string& id) {
  if (!txn.get(Family::subscriptions, keys::subscription_key(id))) {
    return make_error(Errc::not_found, "no subscription " + id);
  }
  txn.del(Family::subscriptions, keys::subscription_key(id));
  return Ok{};
}

Status update_subscription(WriteTxn& txn, const std::string& id, const SubscriptionChange& change, Subscription& out) {
  const std::string key = keys::subscription_key(id);
  const auto bytes = txn.get(Family::subscriptions, key);
  if (!bytes) return make_error(Errc::not_found, "no subscription " + id);
  auto stored = records::decode_subscription(*bytes);
  if (!stored) return make_error(Errc::internal, "stored subscription " + id + " is unreadable");
  if (auto changed = change(*stored); !changed) return changed;
  txn.put(Family::subscriptions, key, records::encode_record(*stored));
  out = std::move(*stored);
  return Ok{};
}

bool auto_disable_subscription(WriteTxn& txn, const std::string& id, UnixMillis failing_since, UnixMillis now,
                               std::int64_t default_disable_after_ms, Subscription& out) {
  const auto disable = [&](Subscription& sub) -> Status {
    const std::int64_t after = effective_disable_after(sub, default_disable_after_ms);
    if (!sub.enabled || after <= 0 || now - failing_since < after) return make_error(Errc::conflict, "not due");
    set_enabled(sub, false, now, DisabledReason::failing);
    sub.updated_at = now;
    return Ok{};
  };
  return update_subscription(txn, id, disable, out).ok();
}

Status record_attempt(WriteTxn& txn, const Delivery& attempted, Attempt attempt, const Resolution& resolution,
                      const Subscription* sub, Delivery& out, ordering_queue::Advance& advance) {
  std::optional<Delivery> current;
  if (txn.get(Family::schedule, keys::schedule_key(attempted.next_attempt_at, attempted.id))) {
    // Still pending with the same due time, so unchanged (see the header): no record to read.
    current = attempted;
  } else {
    // Moved since the copy was taken, or gone. Retried through the API while in flight, it is
    // still pending and the attempt counts against its stored state.
    current = load_delivery(txn, attempted.id);
    if (!current) return make_error(Errc::not_found, "no delivery " + attempted.id);
    if (current->state != DeliveryState::pending || current->waiting) {
      return make_error(Errc::conflict, "delivery " + attempted.id + " is " + delivery_state_name(current->state));
    }
  }
  Delivery d = std::move(*current);
  const Delivery before = d;
  remove_state_key(txn, d);
  attempt.number = d.attempts + 1;
  d.attempts = attempt.number;
  if (d.window_start == 0) {
    d.window_start = attempt.started_at;
    d.window_pause_mark = resolution.window_pause_mark;
  }
  d.last_error = attempt.outcome == AttemptOutcome::success ? "" : attempt_outcome_name(attempt.outcome);
  d.state = resolution.state;
  if (d.state == DeliveryState::pending) {
    // A changed pending record always gets a new schedule key, even for a zero backoff.
    d.next_attempt_at = std::max(resolution.next_attempt_at, d.next_attempt_at + 1);
  } else {
    d.completed_at = attempt.started_at + attempt.duration_ms;
    ordering_queue::leave(txn, before, sub, d.completed_at, advance);
  }
  txn.put_new(Family::attempts, keys::attempt_key(d.id, attempt.number), records::encode_record(attempt));
  txn.put(Family::deliveries, keys::delivery_key(d.id), records::encode_record(d));
  put_state_key(txn, d);
  out = std::move(d);
  return Ok{};
}

namespace {

std::optional<Subscription> load_subscription(WriteTxn& txn, const std::string& id) {
  const auto bytes = txn.get(Family::subscriptions, keys::subscription_key(id));
  return bytes ? records::decode_subscription(*bytes) : std::nullopt;
}

// reschedule_now of the stored record `d`.
Status reschedule_stored(WriteTxn& txn, Delivery d, UnixMillis now, Delivery& out) {
  if (d.state == DeliveryState::succeeded) return make_error(Errc::conflict, "delivery " + d.id + " already succeeded");
  if (d.state == DeliveryState::superseded) {
    return make_error(Errc::conflict, "delivery " + d.id + " was superseded by a newer one of its ordering key");
  }
  if (d.waiting) {
    return make_error(Errc::conflict, "delivery " + d.id + " waits behind an earlier delivery of its ordering key");
  }
  remove_state_key(txn, d);
  // The key must move even when the delivery is already due this millisecond: record_attempt
  // trusts a copy whose schedule key still exists, and this changes the record (window, state).
  const UnixMillis due = d.next_attempt_at == now ? now + 1 : now;
  const bool was_dead = d.state == DeliveryState::dead;
  d.state = DeliveryState::pending;
  d.next_attempt_at = due;
  d.window_start = 0;  // a fresh retry window starts with the next attempt
  d.completed_at = 0;
  if (was_dead) {
    // A dead delivery left its queue when it died; it comes back at the tail (see the header).
    d.queue_seq = 0;
    if (!d.ordering_key.empty()) {
      if (const auto sub = load_subscription(txn, d.subscription_id); sub && ordering_queue::applies(*sub, d)) {
        ordering_queue::join(txn, d);
      }
    }
  }
  txn.put(Family::deliveries, keys::delivery_key(d.id), records::encode_record(d));
  put_state_key(txn, d);
  out = std::move(d);
  return Ok{};
}

}  // namespace

Status reschedule_now(WriteTxn& txn, const std::string& delivery_id, UnixMillis now, Delivery& out) {
  auto current = load_delivery(txn, delivery_id);
  if (!current) return make_error(Errc::not_found, "no delivery " + delivery_id);
  return reschedule_stored(txn, std::move(*current), now, out);
}

Status retry_delivery(WriteTxn& txn, const std::string& delivery_id, UnixMillis now, RetriedDelivery& out) {
  auto current = load_delivery(txn, delivery_id);
  if (!current) return make_error(Errc::not_found, "no delivery " + delivery_id);
  const bool was_dead = current->state == DeliveryState::dead;
  if (auto status = reschedule_stored(txn, std::move(*current), now, out.delivery); !status) return status;
  out.was_dead = was_dead;
  return Ok{};
}

Status remove_delivery(WriteTxn& txn, const std::string& delivery_id, UnixMillis now,
                       ordering_queue::Advance* advance) {
  auto current = load_delivery(txn, delivery_id);
  if (!current) return make_error(Errc::not_found, "no delivery " + delivery_id);
  const Delivery& d = *current;
  if (d.queue_seq != 0 && !is_final(d.state)) {
    if (!advance) return make_error(Errc::internal, "delivery " + delivery_id + " is in an ordering queue");
    const auto sub = load_subscription(txn, d.subscription_id);
    ordering_queue::leave(txn, d, sub ? &*sub : nullptr, now, *advance);
  }
  remove_state_key(txn, d);
  for (std::uint32_t n = 1; n <= d.attempts; ++n) txn.del(Family::attempts, keys::attempt_key(d.id, n));
  txn.del(Family::deliveries, keys::delivery_key(d.id));
  txn.del(Family::event_deliveries, keys::event_delivery_key(d.event_id, d.id));
  if (!event_has_deliveries(txn, d.event_id)) remove_event(txn, d.event_id);
  return Ok{};
}

Status discard_dead(WriteTxn& txn, const std::string& delivery_id) {
  auto current = load_delivery(txn, delivery_id);
  if (!current) return make_error(Errc::not_found, "no delivery " + delivery_id);
  if (current->state != DeliveryState::dead) {
    return make_error(Errc::conflict, "delivery " + delivery_id + " is not dead");
  }
  return remove_delivery(txn, delivery_id);
}

Status remove_event_if_orphan(WriteTxn& txn, const std::string& event_id) {
  if (!event_has_deliveries(txn, event_id)) remove_event(txn, event_id);
  return Ok{};
}

// Unchanged since the scheduler's copy exactly when its schedule key still exists (see the
// header), so no record is read.
Status expire_delivery(WriteTxn& txn, const Delivery& waiting, std::string reason, UnixMillis now,
                       const Subscription* sub, Delivery& out, ordering_queue::Advance& advance) {
  if (!txn.get(Family::schedule, keys::schedule_key(waiting.next_attempt_at, waiting.id))) {
    return make_error(Errc::conflict, "delivery " + waiting.id + " moved");
  }
  Delivery d = waiting;
  remove_state_key(txn, d);
  d.state = DeliveryState::dead;
  d.completed_at = now;
  d.last_error = std::move(reason);
  ordering_queue::leave(txn, waiting, sub, now, advance);
  txn.put(Family::deliveries, keys::delivery_key(d.id), records::encode_record(d));
  put_state_key(txn, d);
  out = std::move(d);
  return Ok{};
}

}  // namespace relay::mutations
