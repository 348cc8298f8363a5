#include "storage/ordering_queue.h"

#include "storage/keys.h"
#include "storage/records.h"

namespace relay::ordering_queue {

namespace {

struct Entry {
  std::string key;          // in ordering_queues
  std::string delivery_id;  // "dlv_..."
  std::uint64_t seq = 0;
};

ScanRange queue_range(const QueueRef& queue) {
  std::string prefix = keys::queue_prefix(queue.subscription_id, queue.ordering_key);
  std::string end = keys::prefix_end(prefix);
  return ScanRange{std::move(prefix), std::move(end)};
}

Entry make_entry(std::string_view key, std::string_view value) {
  const auto decoded = keys::decode_queue_key(key);
  return Entry{std::string(key), keys::format_id(keys::kDeliveryPrefix, value), decoded ? decoded->seq : 0};
}

// The first `limit` entries, or the last one with `reverse`. Collected before any write: the
// batch must not change under the merged iterator.
std::vector<Entry> entries(WriteTxn& txn, const QueueRef& queue, std::size_t limit, bool reverse = false) {
  ScanRange range = queue_range(queue);
  range.reverse = reverse;
  std::vector<Entry> out;
  txn.scan(Family::ordering_queues, range, [&](std::string_view key, std::string_view value) {
    out.push_back(make_entry(key, value));
    return out.size() < limit;
  });
  return out;
}

// The entry's delivery while it is unfinished in this queue; a dangling entry (its delivery gone,
// finished or elsewhere in the queue) is deleted.
std::optional<Delivery> load(WriteTxn& txn, const Entry& entry) {
  const auto bytes = txn.get(Family::deliveries, keys::delivery_key(entry.delivery_id));
  auto d = bytes ? records::decode_delivery(*bytes) : std::nullopt;
  if (!d || is_final(d->state) || d->queue_seq != entry.seq) {
    txn.del(Family::ordering_queues, entry.key);
    return std::nullopt;
  }
  return d;
}

// A waiting delivery becomes due now: the head of its queue, or (released) an unordered one.
void schedule_now(WriteTxn& txn, Delivery d, UnixMillis now, Advance& out) {
  d.waiting = false;
  d.next_attempt_at = now;
  txn.put(Family::deliveries, keys::delivery_key(d.id), records::encode_record(d));
  txn.put(Family::schedule, keys::schedule_key(now, d.id), keys::subscription_key(d.subscription_id));
  out.promoted.push_back(std::move(d));
}

void supersede(WriteTxn& txn, const Entry& entry, Delivery d, UnixMillis now) {
  d.state = DeliveryState::superseded;
  d.waiting = false;
  d.completed_at = now;
  txn.del(Family::ordering_queues, entry.key);
  txn.put(Family::deliveries, keys::delivery_key(d.id), records::encode_record(d));
  // Kept for --retention like a success.
  txn.put(Family::completed, keys::completed_key(now, keys::CompletedKind::delivery, d.id), "");
}

// Ordering turned off or subscription deleted: up to kAdvanceBatch waiting deliveries go on as
// unordered ones, and the next becomes the head whose end releases the next batch.
void release(WriteTxn& txn, const QueueRef& queue, UnixMillis now, Advance& out) {
  const auto first = entries(txn, queue, kAdvanceBatch + 1);
  std::size_t released = 0;
  for (const Entry& entry : first) {
    auto d = load(txn, entry);
    if (!d) continue;
    if (!d->waiting) return;  // it has a head
    if (released == kAdvanceBatch) {
      schedule_now(txn, std::move(*d), now, out);
      return;
    }
    txn.del(Family::ordering_queues, entry.key);
    d->queue_seq = 0;
    schedule_now(txn, std::move(*d), now, out);
    ++released;
  }
  if (first.size() > kAdvanceBatch) out.unfinished = queue;  // dangling entries took the room
}

// The first waiting entry becomes the head. Entries are read a few at a time: the first one is
// almost always live.
void promote_first(WriteTxn& txn, const QueueRef& queue, UnixMillis now, Advance& out) {
  constexpr std::size_t kReadAhead = 8;
  for (std::size_t dangling = 0; dangling < kAdvanceBatch;) {
    const auto first = entries(txn, queue, kReadAhead);
    for (const Entry& entry : first) {
      auto d = load(txn, entry);
      if (!d) {
        ++dangling;  // deleted by load(): the next read starts after it
        continue;
      }
      if (d->waiting) schedule_now(txn, std::move(*d), now, out);
      return;
    }
    if (first.size() < kReadAhead) return;
  }
  out.unfinished = queue;
}

// The newest waiting entry becomes the head; the ones before it end superseded, at most
// kAdvanceBatch per step.
void coalesce(WriteTxn& txn, const QueueRef& queue, UnixMillis now, Advance& out) {
  std::optional<Entry> newest_entry;
  std::optional<Delivery> newest;
  for (std::size_t tries = 0; !newest && tries < kAdvanceBatch; ++tries) {
    const auto last = entries(txn, queue, 1, /*reverse=*/true);
    if (last.empty()) return;
    newest_entry = last.front();
    newest = load(txn, *newest_entry);
  }
  if (!newest) {
    out.unfinished = queue;
    return;
  }
  const auto first = entries(txn, queue, kAdvanceBatch + 1);
  std::size_t superseded = 0;
  for (const Entry& entry : first) {
    if (entry.key == newest_entry->key) break;
    auto d = load(txn, entry);
    if (!d) continue;
    if (!d->waiting) return;  // it has a head
    if (superseded == kAdvanceBatch) {
      out.unfinished = queue;
      break;
    }
    supersede(txn, entry, std::move(*d), now);
    ++superseded;
  }
  if (superseded != 0) {
    out.subscription_id = queue.subscription_id;
    out.superseded += superseded;
  }
  if (out.unfinished) return;
  if (newest->waiting) schedule_now(txn, std::move(*newest), now, out);
}

}  // namespace

bool applies(const Subscription& sub, const Delivery& delivery) {
  return sub.ordering == Ordering::key && !delivery.ordering_key.empty();
}

bool join(WriteTxn& txn, Delivery& d) {
  const QueueRef queue{d.subscription_id, d.ordering_key};
  const auto last = entries(txn, queue, 1, /*reverse=*/true);
  d.queue_seq = last.empty() ? 1 : last.front().seq + 1;
  // put(), not put_new(): the next delivery of this key in the same group must find it.
  txn.put(Family::ordering_queues, keys::queue_key(d.subscription_id, d.ordering_key, d.queue_seq),
          keys::delivery_key(d.id));
  if (last.empty()) {
    d.waiting = false;
    return true;
  }
  d.waiting = true;
  d.next_attempt_at = 0;
  return false;
}

void leave(WriteTxn& txn, const Delivery& d, const Subscription* sub, UnixMillis now, Advance& out) {
  if (d.queue_seq == 0) return;
  txn.del(Family::ordering_queues, keys::queue_key(d.subscription_id, d.ordering_key, d.queue_seq));
  if (!d.waiting) advance(txn, QueueRef{d.subscription_id, d.ordering_key}, sub, now, out);
}

void advance(WriteTxn& txn, const QueueRef& queue, const Subscription* sub, UnixMillis now, Advance& out) {
  if (sub == nullptr || sub->ordering != Ordering::key) {
    release(txn, queue, now, out);
  } else if (sub->coalesce) {
    coalesce(txn, queue, now, out);
  } else {
    promote_first(txn, queue, now, out);
  }
}

std::optional<std::string> blocked_by(const Store& store, const Delivery& d) {
  if (!d.waiting || d.queue_seq == 0) return std::nullopt;
  std::optional<std::string> head;
  store.scan(Family::ordering_queues, queue_range(QueueRef{d.subscription_id, d.ordering_key}),
             [&](std::string_view, std::string_view value) {
               head = keys::format_id(keys::kDeliveryPrefix, value);
               return false;
             });
  if (head == d.id) return std::nullopt;  // a queue between two steps of coalescing
  return head;
}

Survey survey(const Store& store) {
  Survey out;
  std::optional<QueueRef> queue;  // the queue of the entries being visited
  store.scan(Family::ordering_queues, ScanRange{"", ""}, [&](std::string_view key, std::string_view value) {
    const auto decoded = keys::decode_queue_key(key);
    if (!decoded) return true;  // not a key relay writes: step over it
    if (!queue || queue->subscription_id != decoded->subscription_id ||
        queue->ordering_key != decoded->ordering_key) {
      queue = QueueRef{std::string(decoded->subscription_id), std::string(decoded->ordering_key)};
      const Entry first = make_entry(key, value);
      const auto bytes = store.get(Family::deliveries, keys::delivery_key(first.delivery_id));
      const auto d = bytes ? records::decode_delivery(*bytes) : std::nullopt;
      if (d && !d->waiting && !is_final(d->state)) return true;  // a scheduled head is counted with the schedule
      out.headless.push_back(*queue);
    }
    ++out.waiting_by_subscription[queue->subscription_id];
    return true;
  });
  return out;
}

}  // namespace relay::ordering_queue
