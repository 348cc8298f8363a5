#pragma once
// FailureStreaks: since when each subscription's attempts have all failed, the clock of
// automatic disabling (spec section 6). A key of the `failure_streaks` family exists only while a
// subscription's streak runs and holds the start of its first failed attempt. It is written only
// on transitions, in the batch of the attempt that causes them: the first failure after a
// success (or since the streak was cleared) puts the key, the first success after failures
// deletes it. A steady state, succeeding or failing, writes nothing beyond the attempt itself.
//
// Not part of the subscription record: that record is written rarely (in cluster mode it lives
// in etcd, shared by every shard), while a streak changes with each shard's own attempts. Each
// shard keeps the streaks of its own attempts.
//
// The writer thread remembers what it read or wrote (a cache by subscription id), so that
// steady-state attempts read nothing either. An entry is forgotten when the writes that set it
// do not commit (WriteTxn::on_abort) and is then read again through the batch. Writer thread
// only: every method takes the WriteTxn of the command it is part of.

#include <string>
#include <unordered_map>

#include "relay/core/clock.h"
#include "storage/commit_pipeline.h"
#include "storage/store.h"

namespace relay {

class FailureStreaks {
 public:
  // A failed attempt (a probe of an open circuit is one too) of the subscription, started at
  // `at`: starts a streak at `at` unless one runs. Answers the streak's start; 0, and nothing
  // written, when the subscription is not stored (deleted meanwhile: no key is left behind).
  UnixMillis failed(WriteTxn& txn, const std::string& subscription_id, UnixMillis at);
  // A successful attempt: ends the streak, if one runs.
  void succeeded(WriteTxn& txn, const std::string& subscription_id);
  // Ends the streak, if one runs: the subscription was enabled again, or deleted.
  void clear(WriteTxn& txn, const std::string& subscription_id);
  // The start of the subscription's running streak; 0 when none runs.
  UnixMillis since(WriteTxn& txn, const std::string& subscription_id);

 private:
  void remember(WriteTxn& txn, const std::string& subscription_id, UnixMillis since);

  std::unordered_map<std::string, UnixMillis> known_;  // 0: no streak runs
};

// Read side (any thread): the start of the subscription's streak as stored; 0 when none runs.
UnixMillis stored_streak_start(const Store& store, const std::string& subscription_id);

}  // namespace relay
