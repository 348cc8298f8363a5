#include "storage/job_mutations.h"

#include "storage/job_records.h"
#include "storage/mutations.h"
#include "storage/records.h"

namespace relay::mutations {

namespace {

Result<Job> load_job(WriteTxn& txn, const std::string& job_id) {
  if (!keys::parse_id(job_id, keys::kJobPrefix)) return make_error(Errc::not_found, "no job " + job_id);
  const auto bytes = txn.get(Family::jobs, keys::job_key(job_id));
  if (!bytes) return make_error(Errc::not_found, "no job " + job_id);
  auto job = records::decode_job(*bytes);
  if (!job) return make_error(Errc::internal, "stored job " + job_id + " is unreadable");
  return std::move(*job);
}

void store_job(WriteTxn& txn, const Job& job) { txn.put(Family::jobs, keys::job_key(job.id), records::encode_record(job)); }

// Whether the chunk still applies: the job runs and has not moved since the scan. Otherwise
// `out.job` is the job as stored and nothing is written.
Result<bool> chunk_applies(WriteTxn& txn, const std::string& job_id, const std::string& from_cursor,
                           ChunkOutcome& out) {
  auto job = load_job(txn, job_id);
  if (!job) return job.error();
  out.job = std::move(*job);
  return out.job.state == JobState::running && out.job.cursor == from_cursor;
}

void advance(WriteTxn& txn, Job& job, const std::string& next_cursor, bool last, UnixMillis now) {
  job.cursor = next_cursor;
  if (last) {
    job.state = JobState::done;
    job.finished_at = now;
  }
  store_job(txn, job);
}

// Whether the newest delivery of the event to the subscription is dead (read through the txn,
// so a retry earlier in the group counts).
bool latest_delivery_dead(WriteTxn& txn, const std::string& event_id, const std::string& subscription_id) {
  const std::string prefix = keys::id_prefix(event_id);
  std::optional<Delivery> latest;
  // Links are in delivery-id order, which is creation order: the last match is the newest.
  txn.scan(Family::event_deliveries, ScanRange{prefix, keys::prefix_end(prefix)}, [&](std::string_view key, auto) {
    const auto bytes = txn.get(Family::deliveries, keys::delivery_key(keys::decode_event_delivery_key(key)));
    auto d = bytes ? records::decode_delivery(*bytes) : std::nullopt;
    if (d && d->subscription_id == subscription_id) latest = std::move(d);
    return true;
  });
  return latest && latest->state == DeliveryState::dead;
}

// The candidate events (ids in ascending order) still stored, read through the txn: retention
// may have removed one since the scan. One pass of an iterator over the candidates' range rather
// than a point read each: the writer serves ingest too, and 200 point reads were a fifth of its
// time while a replay ran (perf, benchmarks' replay scenario).
std::vector<Event> read_candidates(WriteTxn& txn, const std::vector<std::string>& event_ids) {
  std::vector<Event> found;
  if (event_ids.empty()) return found;
  std::vector<std::string> wanted;
  wanted.reserve(event_ids.size());
  for (const auto& id : event_ids) wanted.push_back(keys::event_key(id));
  std::string upper = wanted.back();
  upper.push_back('\0');  // the first key after the last candidate
  std::size_t next = 0;
  txn.scan(Family::events, ScanRange{wanted.front(), upper}, [&](std::string_view key, std::string_view value) {
    while (next < wanted.size() && wanted[next] < key) ++next;  // gone since the scan
    if (next == wanted.size()) return false;
    if (wanted[next] != key) return true;  // an event the scan did not pick
    ++next;
    if (auto event = records::decode_event(value)) found.push_back(std::move(*event));
    return next < wanted.size();
  });
  return found;
}

}  // namespace

Status create_job(WriteTxn& txn, const Job& job) {
  store_job(txn, job);
  return Ok{};
}

Status cancel_job(WriteTxn& txn, const std::string& job_id, UnixMillis now, Job& out) {
  auto job = load_job(txn, job_id);
  if (!job) return job.error();
  if (job->state != JobState::running) {
    return make_error(Errc::conflict, "job " + job_id + " is " + job_state_name(job->state));
  }
  job->state = JobState::cancelled;
  job->finished_at = now;
  store_job(txn, *job);
  out = std::move(*job);
  return Ok{};
}

Status fail_job(WriteTxn& txn, const std::string& job_id, std::string error, UnixMillis now, Job& out) {
  auto job = load_job(txn, job_id);
  if (!job) return job.error();
  if (job->state == JobState::running) {
    job->state = JobState::failed;
    job->finished_at = now;
    job->error = std::move(error);
    store_job(txn, *job);
  }
  out = std::move(*job);
  return Ok{};
}

Status remove_finished_jobs(WriteTxn& txn, const std::vector<std::string>& job_ids, UnixMillis cutoff,
                            std::vector<JobState>& removed) {
  removed.clear();
  for (const auto& id : job_ids) {
    auto job = load_job(txn, id);
    if (!job) continue;  // gone already; an unreadable record is left for an operator to see
    if (job->state == JobState::running || job->finished_at > cutoff) continue;
    txn.del(Family::jobs, keys::job_key(id));
    removed.push_back(job->state);
  }
  return Ok{};
}

Status replay_chunk(WriteTxn& txn, const ReplayChunk& chunk, const std::shared_ptr<const Subscription>& target,
                    keys::IdGenerator& ids, UnixMillis now, ChunkOutcome& out) {
  auto applies = chunk_applies(txn, chunk.job_id, chunk.from_cursor, out);
  if (!applies) return applies.error();
  if (!*applies) return Ok{};
  Job& job = out.job;
  const std::vector<std::shared_ptr<const Subscription>> targets{target};
  for (auto& event : read_candidates(txn, chunk.events)) {
    if (job.replay.only_failed && !latest_delivery_dead(txn, event.id, target->id)) continue;
    ++job.matched;
    auto created = add_deliveries(txn, event, targets, ids, now);
    job.created += created.size();
    out.delivered += created.size();
    out.groups.push_back({std::move(created), event.payload});
  }
  advance(txn, job, chunk.next_cursor, chunk.last, now);
  return Ok{};
}

Status dlq_retry_chunk(WriteTxn& txn, const DlqRetryChunk& chunk, UnixMillis now, ChunkOutcome& out) {
  auto applies = chunk_applies(txn, chunk.job_id, chunk.from_cursor, out);
  if (!applies) return applies.error();
  if (!*applies) return Ok{};
  Job& job = out.job;
  ChunkOutcome::Group redriven;
  for (const auto& ref : chunk.dead) {
    ++job.matched;
    // Still dead under the key the scan saw: not retried, discarded or expired meanwhile.
    if (!txn.get(Family::dead_letters, keys::dead_letter_key(ref.dead_at, ref.delivery_id))) continue;
    Delivery d;
    if (reschedule_now(txn, ref.delivery_id, now, d)) redriven.deliveries.push_back(std::move(d));
  }
  job.created += redriven.deliveries.size();
  out.delivered = redriven.deliveries.size();
  if (!redriven.deliveries.empty()) out.groups.push_back(std::move(redriven));
  advance(txn, job, chunk.next_cursor, chunk.last || job.matched >= job.dlq.limit, now);
  return Ok{};
}

}  // namespace relay::mutations
