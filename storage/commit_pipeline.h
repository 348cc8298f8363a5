#pragma once
// CommitPipeline: the single writer of the database. Callers submit commands; a dedicated
// thread runs them in arrival order, collects the writes of every command that is waiting into
// one WriteBatch, and commits that batch with one write (and one fsync under
// --durability=fsync). This is group commit: concurrent requests share an fsync, and the
// event loop never waits on the disk, it only receives the completion.
//
// A command sees the writes of the commands before it in the same group (WriteTxn::get reads
// through the pending batch; merge() and put_new() writes excepted, see below), so
// read-modify-write commands need no locks. A command that
// returns an error has its writes rolled back; the rest of the group still commits.
//
// A failed write (full disk, I/O error) or a RocksDB background error makes the store
// unwritable (Store::writable). Until it is writable again the thread runs no command: each
// one fails at once as unavailable, and about once a second the thread tries Store::recover(),
// which succeeds by itself once space is freed. No write reaches RocksDB in between.

#include <rocksdb/utilities/write_batch_with_index.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "relay/core/result.h"
#include "storage/store.h"

namespace relay {

// The view of one command on the database: reads see earlier writes of the same group.
class WriteTxn {
 public:
  WriteTxn(Store& store, rocksdb::WriteBatchWithIndex& batch) : store_(store), batch_(batch) {}

  std::optional<std::string> get(Family family, const std::string& key);
  void put(Family family, const std::string& key, const std::string& value);
  void del(Family family, const std::string& key);
  // A merge operand for a family that has a merge operator (see Store::open): a blind write
  // that RocksDB folds into the key's value when the key is read. Operands skip the batch's
  // index, whose cost grows with the operands of a key already in it (quadratic per group), and
  // join the batch after the group's last command: get() and scan() do not see the group's own
  // operands, and a key written with merge() is written only with merge().
  void merge(Family family, const std::string& key, std::string operand);
  // A put of a key that holds an id or number minted by this command (a new event, delivery,
  // attempt), so no earlier command of the group wrote it. It skips the batch's index (two
  // skip-list searches per indexed write, the larger part of an ingest's staging) and goes
  // straight into the batch, in order with the group's other writes: a failing command's
  // put_new() writes roll back with it, and a later put() or del() of the key still wins. But
  // get() and scan() need not see it: no command of the group may read a key after writing it
  // with put_new() (a repeat ingest reads an event found by client id, so that one is put()).
  void put_new(Family family, const std::string& key, const std::string& value);
  // Scans committed data and this group's writes together, bounded like Store::scan.
  template <typename Visit>
  void scan(Family family, const ScanRange& range, Visit&& visit);
  // For in-memory state that a command changes along with its writes (a writer-thread cache of
  // stored values): `undo` runs on the writer thread when those writes do not commit, because
  // the command fails (its writes roll back) or the group's write fails. Forgotten once the
  // group is written.
  void on_abort(std::function<void()> undo);

 private:
  friend class CommitPipeline;
  struct MergeOperand {
    Family family;
    std::string key;
    std::string operand;
  };

  // Around each command: its writes are kept, or rolled back when it fails.
  void begin_command();
  void end_command(bool keep);
  // Adds the merge operands of the kept commands to the batch; once, after the last command.
  void add_merges_to_batch();
  // After the group's write: runs the kept commands' undos when it failed; forgets them.
  void group_written(bool ok);
  void run_undos(std::size_t from);

  Store& store_;
  rocksdb::WriteBatchWithIndex& batch_;
  std::vector<MergeOperand> merges_;
  std::size_t merges_before_command_ = 0;
  std::vector<std::function<void()>> undos_;
  std::size_t undos_before_command_ = 0;
};

class CommitPipeline {
 public:
  // Runs on the writer thread and stages writes; an error rolls back its own writes.
  using Command = std::function<Status(WriteTxn&)>;
  // Runs on the writer thread once the group is durable (or failed); must not block.
  using Done = std::function<void(const Status&)>;
  // Observes each group commit: seconds spent in the write and number of commands.
  using CommitObserver = std::function<void(double seconds, std::size_t commands)>;
  // Called on the writer thread when the store becomes unwritable or writable again, with
  // the reason (the failed write's or recovery's error; empty when writable).
  using HealthObserver = std::function<void(bool writable, const std::string& reason)>;

  CommitPipeline(Store& store, CommitObserver observer, HealthObserver health = {});
  ~CommitPipeline();  // finishes queued commands, then stops
  CommitPipeline(const CommitPipeline&) = delete;
  CommitPipeline& operator=(const CommitPipeline&) = delete;

  // Which commands go first when more are queued than one group takes. Deliveries' attempt
  // records are background work: an ingest behind thousands of them would wait several group
  // commits for its answer.
  enum class Priority { foreground, background };

  void submit(Command command, Done done, Priority priority = Priority::foreground);
  // Finishes every submitted command and stops the thread; later submits fail as unavailable.
  void stop();

 private:
  struct Entry {
    Command command;
    Done done;
  };
  void run();
  void commit_group(std::deque<Entry>& group);
  // Fails the group's commands unrun: the store is not writable.
  void refuse_group(std::deque<Entry>& group);
  // Tries a recovery when one is due; reports a change of writability to the health observer.
  void check_health();

  Store& store_;
  CommitObserver observer_;
  HealthObserver health_;
  // Writer thread only.
  bool reported_writable_ = true;
  std::string unwritable_reason_;
  std::chrono::steady_clock::time_point next_recovery_{};
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Entry> queue_;             // foreground
  std::deque<Entry> background_queue_;
  bool stopping_ = false;
  std::thread thread_;
};

template <typename Visit>
void WriteTxn::scan(Family family, const ScanRange& range, Visit&& visit) {
  rocksdb::ReadOptions read_options;
  rocksdb::Slice lower(range.lower);
  rocksdb::Slice upper(range.upper);
  read_options.iterate_lower_bound = &lower;
  if (!range.upper.empty()) read_options.iterate_upper_bound = &upper;
  auto* handle = store_.handle(family);
  std::unique_ptr<rocksdb::Iterator> it(
      batch_.NewIteratorWithBase(handle, store_.db().NewIterator(read_options, handle)));
  // The batch's half of the merged iterator ignores the read bounds: position and stop by hand.
  const auto below_upper = [&] { return range.upper.empty() || it->key().ToStringView() < range.upper; };
  const auto at_or_above_lower = [&] { return it->key().ToStringView() >= range.lower; };
  if (range.reverse) {
    if (range.upper.empty()) {
      it->SeekToLast();
    } else {
      it->Seek(upper);
      if (it->Valid()) {
        it->Prev();
      } else {
        it->SeekToLast();
      }
      while (it->Valid() && !below_upper()) it->Prev();
    }
    for (; it->Valid() && at_or_above_lower(); it->Prev()) {
      if (!visit(it->key().ToStringView(), it->value().ToStringView())) return;
    }
  } else {
    for (it->Seek(lower); it->Valid() && below_upper(); it->Next()) {
      if (!visit(it->key().ToStringView(), it->value().ToStringView())) return;
    }
  }
}

}  // namespace relay
