#include "storage/failure_streaks.h"

#include "storage/keys.h"

namespace relay {

UnixMillis FailureStreaks::since(WriteTxn& txn, const std::string& subscription_id) {
  if (const auto it = known_.find(subscription_id); it != known_.end()) return it->second;
  const auto value = txn.get(Family::failure_streaks, keys::failure_streak_key(subscription_id));
  const UnixMillis start = value ? keys::decode_streak_start(*value).value_or(0) : 0;
  // What the batch shows: committed, or written by a kept command of this group, whose undo
  // forgets this entry too if the group's write fails.
  known_.emplace(subscription_id, start);
  return start;
}

UnixMillis FailureStreaks::failed(WriteTxn& txn, const std::string& subscription_id, UnixMillis at) {
  if (const UnixMillis start = since(txn, subscription_id); start != 0) return start;
  // Only at a transition, so at most once per streak: a deleted subscription gets no key.
  if (!txn.get(Family::subscriptions, keys::subscription_key(subscription_id))) return 0;
  txn.put(Family::failure_streaks, keys::failure_streak_key(subscription_id), keys::encode_streak_start(at));
  remember(txn, subscription_id, at);
  return at;
}

void FailureStreaks::succeeded(WriteTxn& txn, const std::string& subscription_id) {
  if (since(txn, subscription_id) == 0) return;
  txn.del(Family::failure_streaks, keys::failure_streak_key(subscription_id));
  remember(txn, subscription_id, 0);
}

void FailureStreaks::clear(WriteTxn& txn, const std::string& subscription_id) {
  txn.del(Family::failure_streaks, keys::failure_streak_key(subscription_id));
  // No entry: the next command reads the key through the batch. What it caches from that read
  // must go too if this delete never commits.
  known_.erase(subscription_id);
  txn.on_abort([this, subscription_id] { known_.erase(subscription_id); });
}

void FailureStreaks::remember(WriteTxn& txn, const std::string& subscription_id, UnixMillis start) {
  known_[subscription_id] = start;
  txn.on_abort([this, subscription_id] { known_.erase(subscription_id); });
}

UnixMillis stored_streak_start(const Store& store, const std::string& subscription_id) {
  const auto value = store.get(Family::failure_streaks, keys::failure_streak_key(subscription_id));
  return value ? keys::decode_streak_start(*value).value_or(0) : 0;
}

}  // namespace relay
