#include "storage/commit_pipeline.h"

#include <chrono>

namespace relay {

namespace {

// Bounds one group so that a flood of commands cannot build an unbounded batch.
constexpr std::size_t kMaxGroupCommands = 2048;
// How often the writer thread checks the store's health and, while it is unwritable, tries to
// recover. Idle waits end this often too, so that a background error is noticed when idle.
constexpr auto kHealthInterval = std::chrono::seconds(1);

}  // namespace

std::optional<std::string> WriteTxn::get(Family family, const std::string& key) {
  std::string value;
  const rocksdb::Status status =
      batch_.GetFromBatchAndDB(&store_.db(), rocksdb::ReadOptions(), store_.handle(family), key, &value);
  if (!status.ok()) return std::nullopt;
  return value;
}

void WriteTxn::put(Family family, const std::string& key, const std::string& value) {
  batch_.Put(store_.handle(family), key, value).PermitUncheckedError();
}

void WriteTxn::del(Family family, const std::string& key) {
  batch_.Delete(store_.handle(family), key).PermitUncheckedError();
}

void WriteTxn::put_new(Family family, const std::string& key, const std::string& value) {
  // The save point of the command covers the underlying batch: RollbackToSavePoint truncates
  // it and rebuilds the index from what is left, so these writes roll back like indexed ones.
  batch_.GetWriteBatch()->Put(store_.handle(family), key, value).PermitUncheckedError();
}

void WriteTxn::merge(Family family, const std::string& key, std::string operand) {
  merges_.push_back({family, key, std::move(operand)});
}

void WriteTxn::on_abort(std::function<void()> undo) { undos_.push_back(std::move(undo)); }

void WriteTxn::begin_command() {
  batch_.SetSavePoint();
  merges_before_command_ = merges_.size();
  undos_before_command_ = undos_.size();
}

void WriteTxn::end_command(bool keep) {
  if (keep) {
    batch_.PopSavePoint().PermitUncheckedError();
  } else {
    batch_.RollbackToSavePoint().PermitUncheckedError();
    merges_.erase(merges_.begin() + static_cast<std::ptrdiff_t>(merges_before_command_), merges_.end());
    run_undos(undos_before_command_);
  }
}

void WriteTxn::run_undos(std::size_t from) {
  // Latest first, so that several changes of one entry end at its state before the first.
  for (std::size_t i = undos_.size(); i > from; --i) undos_[i - 1]();
  undos_.resize(from);
}

void WriteTxn::group_written(bool ok) {
  if (!ok) run_undos(0);
  undos_.clear();
}

void WriteTxn::add_merges_to_batch() {
  // Straight into the underlying WriteBatch: no command reads through the index any more.
  rocksdb::WriteBatch& batch = *batch_.GetWriteBatch();
  for (const MergeOperand& m : merges_) batch.Merge(store_.handle(m.family), m.key, m.operand).PermitUncheckedError();
  merges_.clear();
}

CommitPipeline::CommitPipeline(Store& store, CommitObserver observer, HealthObserver health)
    : store_(store), observer_(std::move(observer)), health_(std::move(health)), thread_([this] { run(); }) {}

CommitPipeline::~CommitPipeline() { stop(); }

void CommitPipeline::submit(Command command, Done done, Priority priority) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      (priority == Priority::foreground ? queue_ : background_queue_).push_back({std::move(command), std::move(done)});
      wake_.notify_one();
      return;
    }
  }
  done(make_error(Errc::unavailable, "relay is shutting down"));
}

void CommitPipeline::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    wake_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
}

void CommitPipeline::run() {
  std::deque<Entry> group;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, kHealthInterval, [&] { return stopping_ || !queue_.empty() || !background_queue_.empty(); });
      if (stopping_ && queue_.empty() && background_queue_.empty()) return;  // drained
      for (auto* source : {&queue_, &background_queue_}) {
        while (!source->empty() && group.size() < kMaxGroupCommands) {
          group.push_back(std::move(source->front()));
          source->pop_front();
        }
      }
    }
    check_health();
    if (group.empty()) continue;
    if (store_.writable()) {
      commit_group(group);
    } else {
      refuse_group(group);
    }
    group.clear();
  }
}

void CommitPipeline::check_health() {
  bool writable = store_.writable();
  const auto now = std::chrono::steady_clock::now();
  if (!writable && now >= next_recovery_) {
    next_recovery_ = now + kHealthInterval;
    const Status recovered = store_.recover();
    writable = recovered.ok();
    if (!recovered) unwritable_reason_ = recovered.error().message;
  }
  if (writable == reported_writable_) return;
  reported_writable_ = writable;
  if (writable) unwritable_reason_.clear();
  if (unwritable_reason_.empty() && !writable) unwritable_reason_ = "RocksDB reported a background error";
  if (health_) health_(writable, unwritable_reason_);
}

void CommitPipeline::refuse_group(std::deque<Entry>& group) {
  const Status refused = make_error(Errc::unavailable, "storage is not writable (" + unwritable_reason_ + ")");
  for (Entry& entry : group) entry.done(refused);
}

void CommitPipeline::commit_group(std::deque<Entry>& group) {
  rocksdb::WriteBatchWithIndex batch(rocksdb::BytewiseComparator(), 0, /*overwrite_key=*/true);
  WriteTxn txn(store_, batch);
  std::vector<Status> results;
  results.reserve(group.size());
  for (Entry& entry : group) {
    txn.begin_command();
    Status result = make_error(Errc::internal, "command failed");
    try {
      result = entry.command(txn);
    } catch (const std::exception& e) {
      result = make_error(Errc::internal, e.what());
    }
    txn.end_command(result.ok());
    results.push_back(std::move(result));
  }
  txn.add_merges_to_batch();

  const auto started = std::chrono::steady_clock::now();
  const rocksdb::Status written =
      batch.GetWriteBatch()->Count() == 0 ? rocksdb::Status::OK() : store_.write(*batch.GetWriteBatch());
  if (observer_) {
    observer_(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(), group.size());
  }
  txn.group_written(written.ok());
  if (!written.ok()) {
    // The store is unwritable now (Store::write): the next group is refused, not written.
    unwritable_reason_ = written.ToString();
    next_recovery_ = std::chrono::steady_clock::now() + kHealthInterval;
    check_health();
  }
  for (std::size_t i = 0; i < group.size(); ++i) {
    if (!written.ok() && results[i].ok()) {
      results[i] = make_error(Errc::unavailable, "storage write failed: " + written.ToString());
    }
    group[i].done(results[i]);
  }
}

}  // namespace relay
