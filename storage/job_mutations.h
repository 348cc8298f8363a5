#pragma once
// The write side of jobs (spec section 6, "Replay and jobs"), staged into one WriteTxn like
// every other state change (storage/mutations.h). A chunk of a job is one command: the
// deliveries it creates or redrives, through the same mutations that redeliver and redrive use
// (mutations::add_deliveries, mutations::reschedule_now), and the job's advanced cursor and
// counters commit together, so after a crash the job resumes exactly where its last durable
// chunk ended.
//
// A chunk names the cursor its scan started from. The job is read through the txn: when it is
// no longer running (cancelled meanwhile) or its cursor has moved, the chunk writes nothing and
// answers the job as stored, so a stale or repeated chunk can never create anything twice.

#include <memory>
#include <string>
#include <vector>

#include "relay/core/result.h"
#include "relay/model/delivery.h"
#include "relay/model/event.h"
#include "relay/model/job.h"
#include "relay/model/subscription.h"
#include "storage/commit_pipeline.h"
#include "storage/keys.h"

namespace relay::mutations {

// Stores a new job; its id was minted by the caller.
Status create_job(WriteTxn& txn, const Job& job);

// A running job ends cancelled at `now`. not_found when absent; conflict when it has finished.
Status cancel_job(WriteTxn& txn, const std::string& job_id, UnixMillis now, Job& out);

// A running job ends failed with `error`; a finished one stays as it is. not_found when absent.
Status fail_job(WriteTxn& txn, const std::string& job_id, std::string error, UnixMillis now, Job& out);

// Job retention: removes each job of `job_ids` that is finished at or before `cutoff`, read
// through the txn (a job still running, finished later or gone stays as it is); `removed` gets
// the state of each job removed, for relay_jobs{state}.
Status remove_finished_jobs(WriteTxn& txn, const std::vector<std::string>& job_ids, UnixMillis cutoff,
                            std::vector<JobState>& removed);

// What a replay's scan found past the job's cursor: events of the range whose type, tenant and
// payload filter match, in id order.
struct ReplayChunk {
  std::string job_id;
  std::string from_cursor;          // the job's cursor when the scan started
  std::vector<std::string> events;  // "evt_..." candidates
  std::string next_cursor;          // the last event the scan visited; from_cursor if none
  bool last = false;                // the scan reached the end of the range
};

struct ChunkOutcome {
  Job job;  // as stored after the command
  // Replay: the new deliveries with their event's payload; dlq_retry: the redriven
  // deliveries (payload null), one group. For the scheduler.
  struct Group {
    std::vector<Delivery> deliveries;
    std::shared_ptr<const std::string> payload;
  };
  std::vector<Group> groups;
  std::size_t delivered = 0;  // deliveries in `groups`
};

// One delivery to `target` per candidate event still stored (and, with the job's only_failed,
// whose latest delivery to `target` is dead), the cursor moved to next_cursor and the counters
// added to; the job is done when the chunk is the last.
Status replay_chunk(WriteTxn& txn, const ReplayChunk& chunk, const std::shared_ptr<const Subscription>& target,
                    keys::IdGenerator& ids, UnixMillis now, ChunkOutcome& out);

struct DeadLetterRef {
  UnixMillis dead_at = 0;
  std::string delivery_id;
};

// What a DLQ retry's scan found past the job's cursor: matching dead letters, newest first.
struct DlqRetryChunk {
  std::string job_id;
  std::string from_cursor;
  std::vector<DeadLetterRef> dead;
  std::string next_cursor;
  bool last = false;
};

// Each dead letter still in the queue under the same key is redriven (reschedule_now: pending,
// due now, fresh window), the cursor moved and the counters added to.
Status dlq_retry_chunk(WriteTxn& txn, const DlqRetryChunk& chunk, UnixMillis now, ChunkOutcome& out);

}  // namespace relay::mutations
