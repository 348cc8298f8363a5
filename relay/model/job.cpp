#include "relay/model/job.h"

namespace relay {

const char* job_kind_name(JobKind kind) {
  switch (kind) {
    case JobKind::replay: return "replay";
    case JobKind::dlq_retry: return "dlq_retry";
  }
  return "replay";
}

std::optional<JobKind> parse_job_kind(std::string_view name) {
  for (JobKind k : {JobKind::replay, JobKind::dlq_retry}) {
    if (name == job_kind_name(k)) return k;
  }
  return std::nullopt;
}

const char* job_state_name(JobState state) {
  switch (state) {
    case JobState::running: return "running";
    case JobState::done: return "done";
    case JobState::failed: return "failed";
    case JobState::cancelled: return "cancelled";
  }
  return "running";
}

std::optional<JobState> parse_job_state(std::string_view name) {
  for (JobState s : kJobStates) {
    if (name == job_state_name(s)) return s;
  }
  return std::nullopt;
}

}  // namespace relay
