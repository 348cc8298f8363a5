#pragma once
// Ordering queues (spec section 6): for a subscription with `ordering: "key"`, the unfinished
// deliveries of each ordering key, in the order they joined, in the `ordering_queues` family.
// Only a queue's first entry, its *head*, is scheduled (has a `schedule` key) and attempted; the
// others are pending but `waiting` (Delivery::waiting, no schedule key), so the scheduler never
// loads them and a key with 100,000 waiting deliveries costs disk, not memory.
//
// A delivery joins at the tail when it is created (ingest, redelivery) and when a dead one is
// retried or redriven (its old place may be ahead of the current head). It leaves when it
// reaches a final state; when the head leaves, the queue advances in the same batch: the next
// entry is scheduled due now, or, with `coalesce`, the newest one while the older ones end
// `superseded`. All of it is staged in the caller's WriteTxn, so it commits or rolls back with
// the transition that caused it, and survives kill -9. Queue entries are written with put(), not
// put_new(): a later command of the same group must see them (two events of one key in one group).
//
// Every step is bounded by kAdvanceBatch entries. A queue whose subscription was deleted or no
// longer orders by key is *released*: up to kAdvanceBatch waiting entries are scheduled as
// unordered deliveries and the next one becomes the head, whose end releases the next batch. A
// coalescing step that meets more than kAdvanceBatch older entries supersedes that many and
// leaves the queue without a head (Advance::unfinished): the caller runs advance() again in a
// following batch, and after a crash in between, survey() finds the queue at startup.

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "relay/model/delivery.h"
#include "relay/model/subscription.h"
#include "storage/commit_pipeline.h"
#include "storage/store.h"

namespace relay::ordering_queue {

// Waiting entries one advance() step handles at most.
inline constexpr std::size_t kAdvanceBatch = 1'000;

struct QueueRef {
  std::string subscription_id;
  std::string ordering_key;
  friend bool operator==(const QueueRef&, const QueueRef&) = default;
};

// Whether a new (or retried) pending delivery of `sub` goes through its key's queue.
bool applies(const Subscription& sub, const Delivery& delivery);

// Appends `d` to the tail of its queue and sets d.queue_seq. True when the queue was empty: `d`
// is its head and the caller schedules it as usual. Otherwise `d` waits (waiting = true,
// next_attempt_at = 0). The caller writes d's record.
bool join(WriteTxn& txn, Delivery& d);

// What a step of a queue set off, for the scheduler and the metrics.
struct Advance {
  std::vector<Delivery> promoted;  // scheduled due now in this batch
  std::string subscription_id;     // of the superseded ones
  std::size_t superseded = 0;
  std::optional<QueueRef> unfinished;  // coalescing stopped at its bound: advance() again
};

// `d` (its state before the transition the caller stages, so unfinished) leaves its queue. When it
// was the head the queue advances. `sub`: the subscription as it is now, nullptr when deleted.
void leave(WriteTxn& txn, const Delivery& d, const Subscription* sub, UnixMillis now, Advance& out);

// Schedules the queue's next head (see the top of the file) unless it has one. A no-op on an empty
// queue or one whose first entry is scheduled, so it may be called again safely.
void advance(WriteTxn& txn, const QueueRef& queue, const Subscription* sub, UnixMillis now, Advance& out);

// Read side (blocking pool). The delivery `d` waits behind: its queue's head; nullopt unless it waits.
std::optional<std::string> blocked_by(const Store& store, const Delivery& d);
// What the queues hold, counted at startup: every entry is visited once, and each queue's first
// entry's delivery is read.
struct Survey {
  // Queues whose first entry waits: left so by a crash between the steps of a long coalescing.
  std::vector<QueueRef> headless;
  // Entries not scheduled (behind their queue's head, or every entry of a headless queue), by
  // subscription: the `waiting` deliveries, unfinished but without a schedule key.
  std::unordered_map<std::string, std::uint64_t> waiting_by_subscription;
};
Survey survey(const Store& store);

}  // namespace relay::ordering_queue
