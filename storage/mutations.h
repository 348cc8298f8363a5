#pragma once
// Every state change of relay's data, each staged into one WriteTxn so that it commits as a
// single atomic batch through CommitPipeline. These functions run on the writer thread.
//
// A delivery waiting for an attempt has exactly one key in `schedule` (its next_attempt_at);
// a dead one exactly one in `dead_letters`; a succeeded one one in `completed`. Attempts in
// flight are not written: after a crash they are simply attempted again (at least once).
// A pending delivery's record never changes without its schedule key moving (or going), so a
// schedule key that is still there proves a copy with that next_attempt_at current.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "relay/core/result.h"
#include "relay/model/delivery.h"
#include "relay/model/event.h"
#include "relay/model/subscription.h"
#include "storage/commit_pipeline.h"
#include "storage/keys.h"
#include "storage/ordering_queue.h"

namespace relay::mutations {

struct NewEvent {
  std::string client_id;  // empty: no idempotency
  std::string type;
  std::shared_ptr<const std::string> payload;  // compact JSON
  std::string tenant = {};        // empty: none
  std::string ordering_key = {};  // empty: none
};

struct IngestedEvent {
  Event event;
  bool created = false;             // false: an earlier event with the same client id answered
  std::size_t delivery_count = 0;   // of the stored event (also for repeats)
  std::vector<Delivery> deliveries; // created now, for the scheduler
};

// Stores the event, one pending delivery due `now` per target, its schedule keys and the
// idempotency key; or, when client_id was seen before, finds the first event and writes nothing.
// A delivery to a subscription that orders by key, of an event with an ordering key, joins its
// key's queue: scheduled when it is the head, else `waiting` (in `deliveries` all the same; the
// scheduler skips it).
Status ingest(WriteTxn& txn, const NewEvent& input, const std::vector<std::shared_ptr<const Subscription>>& targets,
              keys::IdGenerator& ids, UnixMillis now, IngestedEvent& out);

// New pending deliveries of a stored event (redeliver), due now with a fresh window.
std::vector<Delivery> add_deliveries(WriteTxn& txn, const Event& event,
                                     const std::vector<std::shared_ptr<const Subscription>>& targets,
                                     keys::IdGenerator& ids, UnixMillis now);

// The subscriptions a redelivery goes to, chosen once the event is read (they depend on its
// type); an error refuses the redelivery and writes nothing.
using RedeliveryTargets =
    std::function<Result<std::vector<std::shared_ptr<const Subscription>>>(const Event& event)>;

struct Redelivery {
  Event event;                       // as stored
  std::vector<Delivery> deliveries;  // created now, for the scheduler
};

// POST /v1/events/{id}/redeliver: reads the stored event through the txn and adds a delivery
// to each of `targets(event)` (add_deliveries). not_found when there is no such event.
Status redeliver_event(WriteTxn& txn, const std::string& event_id, const RedeliveryTargets& targets,
                       keys::IdGenerator& ids, UnixMillis now, Redelivery& out);

Status put_subscription(WriteTxn& txn, const Subscription& subscription);
// not_found when absent. The subscription's deliveries stay; the scheduler discards them
// when they come due (see DeliveryScheduler).
Status delete_subscription(WriteTxn& txn, const std::string& id);

// Changes of a stored subscription are read-modify-writes done here, on the writer thread:
// the record is read through the txn, so each change applies to the state that the changes
// before it (in this group too) left, and a deleted subscription answers not_found instead of
// coming back. An error from `change` writes nothing. `out` is the stored result.
using SubscriptionChange = std::function<Status(Subscription&)>;
Status update_subscription(WriteTxn& txn, const std::string& id, const SubscriptionChange& change, Subscription& out);

// Automatic disabling (spec section 6), the one place where relay disables a subscription by
// itself (in cluster mode, where subscriptions live in etcd, this is the call to route there).
// Reads the stored subscription through the txn: when it is still enabled and its own
// disable_after (else `default_disable_after_ms`, --disable-after; 0: never) has passed from
// `failing_since` to `now`, it is disabled at `now` with reason failing, and `out` is the stored
// result. false, writing nothing, when it is gone, disabled already, or not due.
bool auto_disable_subscription(WriteTxn& txn, const std::string& id, UnixMillis failing_since, UnixMillis now,
                               std::int64_t default_disable_after_ms, Subscription& out);

// What the retry policy decided after an attempt.
struct Resolution {
  DeliveryState state = DeliveryState::pending;  // pending (retry), succeeded or dead
  UnixMillis next_attempt_at = 0;                // for pending
  std::int64_t window_pause_mark = 0;            // the subscription's paused_ms() at the attempt's start
};

// Stores the attempt and moves the delivery to its next state. `out` is the updated delivery.
// A delivery that finishes leaves its ordering queue, whose next head is scheduled in the same
// batch (`advance`; ordering_queue.h); `sub` is its subscription now (nullptr: deleted), read only
// for a delivery in a queue.
// `attempted` is the caller's copy of the delivery that was attempted: while its schedule key
// exists, the update is built from it without reading the stored record. Otherwise the stored
// record is read: not_found when the delivery was removed meanwhile; conflict when it is no
// longer pending; still pending (retried while in flight) and the attempt counts against it.
// A retry lands at least 1 ms after the current due time (see above).
Status record_attempt(WriteTxn& txn, const Delivery& attempted, Attempt attempt, const Resolution& resolution,
                      const Subscription* sub, Delivery& out, ordering_queue::Advance& advance);

// A pending or dead delivery becomes due `now` (now + 1 when it is due exactly now: see above)
// with a fresh retry window (retry / redrive). conflict when it succeeded or was superseded, or
// when it waits behind the head of its ordering queue; not_found when absent. A dead delivery
// with an ordering key of a subscription that orders by key joins the tail of its key's queue
// (its old place may be ahead of the current head): scheduled if the queue is empty, else
// waiting (`out.waiting`, not for the scheduler).
Status reschedule_now(WriteTxn& txn, const std::string& delivery_id, UnixMillis now, Delivery& out);

struct RetriedDelivery {
  Delivery delivery;      // as stored now
  bool was_dead = false;  // it left the dead-letter queue (counted as a redrive)
};
// POST /v1/deliveries/{id}/retry: reschedule_now, telling what state the delivery left.
Status retry_delivery(WriteTxn& txn, const std::string& delivery_id, UnixMillis now, RetriedDelivery& out);

// Removes a delivery with its attempts and index keys, and its event with the event's
// idempotency key when no other delivery of the event is left. not_found when absent. An
// unfinished one (its subscription was deleted) leaves its ordering queue, which advances
// (`advance`, required then: what it schedules is for the scheduler).
Status remove_delivery(WriteTxn& txn, const std::string& delivery_id, UnixMillis now = 0,
                       ordering_queue::Advance* advance = nullptr);

// Removes a dead delivery (DELETE /v1/dlq/{id}); conflict when it is not dead.
Status discard_dead(WriteTxn& txn, const std::string& delivery_id);

// Removes an event that never had deliveries, once its retention is over.
Status remove_event_if_orphan(WriteTxn& txn, const std::string& event_id);

// A waiting pending delivery whose retry window ended without a further attempt (its circuit
// was open) becomes dead with `reason` as its last error: the delivery record, its schedule key
// and its dead-letter key in one batch. conflict when it moved or went since `waiting` was read.
// It leaves its ordering queue like a finished attempt (record_attempt).
Status expire_delivery(WriteTxn& txn, const Delivery& waiting, std::string reason, UnixMillis now,
                       const Subscription* sub, Delivery& out, ordering_queue::Advance& advance);

}  // namespace relay::mutations
