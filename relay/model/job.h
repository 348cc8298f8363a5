#pragma once
// A job: a long bulk operation (a subscription's replay, a large dead-letter redrive) that runs
// in the background in chunks and survives restarts (spec section 6, "Replay and jobs"). Its
// cursor says how far it got: everything before it was handled in the same commit that moved
// the cursor, so a resumed job never handles anything twice.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "relay/core/clock.h"

namespace relay {

// New kinds and states go last: stored records hold the enumerator's name, but keep the order.
enum class JobKind { replay, dlq_retry };
enum class JobState { running, done, failed, cancelled };

const char* job_kind_name(JobKind kind);
std::optional<JobKind> parse_job_kind(std::string_view name);
const char* job_state_name(JobState state);
std::optional<JobState> parse_job_state(std::string_view name);
inline constexpr JobState kJobStates[] = {JobState::running, JobState::done, JobState::failed, JobState::cancelled};

// POST /v1/subscriptions/{id}/replay: events created in [since, until) whose type matches
// `event_types` (the subscription's own patterns when the request named none), its tenant and
// its payload filter; with only_failed, only events whose latest delivery to it is dead.
struct ReplayParams {
  std::string subscription_id;
  UnixMillis since = 0;
  UnixMillis until = 0;
  std::vector<std::string> event_types;  // empty: the subscription's patterns at each chunk
  bool only_failed = false;
};

// POST /v1/dlq/retry beyond its inline bound: the dead letters that died in [since, until)
// matching the filters, newest first, at most `limit`.
struct DlqRetryParams {
  std::string subscription_id;  // empty: any
  std::string event_type;       // empty: any
  UnixMillis since = 0;
  UnixMillis until = 0;         // fixed when the job is made, so what dies later is not included
  std::uint64_t limit = 0;
  std::string tenant = {};      // empty: any
};

struct Job {
  std::string id;  // "job_..."
  JobKind kind = JobKind::replay;
  JobState state = JobState::running;
  ReplayParams replay;   // kind replay
  DlqRetryParams dlq;    // kind dlq_retry
  std::uint64_t matched = 0;  // events (replay) or dead letters (dlq_retry) that qualified so far
  std::uint64_t created = 0;  // deliveries created (replay) or redriven (dlq_retry) so far
  UnixMillis created_at = 0;
  UnixMillis finished_at = 0;  // 0 while running
  std::string error;           // why it failed
  // Where the next chunk starts; empty: at the beginning. Replay: the last event id visited
  // (events ascend from `since`). dlq_retry: the DLQ list cursor of the last dead letter
  // visited (dead letters descend from `until`).
  std::string cursor;
};

}  // namespace relay
