#pragma once
// The read side of jobs: the API's views of them, and the scans that feed a job's chunks. They
// run on the blocking pool, bounded like every scan of storage/queries.h.

#include <optional>
#include <string>
#include <vector>

#include "relay/core/result.h"
#include "relay/model/event.h"
#include "relay/model/job.h"
#include "storage/queries.h"
#include "storage/store.h"

namespace relay::queries {

std::optional<Job> job(const Store& store, const std::string& id);

struct JobPage {
  std::vector<Job> items;
  std::string next_cursor;  // the last item's id; empty on the last page
};
// Newest first; `cursor` is a previous page's next_cursor (invalid_field when it is not one).
Result<JobPage> list_jobs(const Store& store, std::size_t limit, const std::string& cursor);
// Every stored job (startup: the running ones resume, all are counted for relay_jobs).
std::vector<Job> all_jobs(const Store& store);

// Stored events created in [since, until), in id order, after the event `after_id` (empty: from
// `since`), at most `budget` of them: a replay's scan. The events family is keyed by id, and an
// id starts with its creation time, so this is a seek, not an index.
struct EventRun {
  std::vector<Event> events;
  std::string last_id;      // the last event visited; empty when none was
  bool reached_end = false;  // nothing is left in the range after last_id
};
EventRun events_in_range(const Store& store, UnixMillis since, UnixMillis until, const std::string& after_id,
                         std::size_t budget);

// A bounded step of a pass of job retention: among at most `budget` stored jobs after the job
// `after_id` (empty: from the first), oldest first, those finished (done, failed, cancelled) at
// or before `cutoff`. Jobs are keyed by id, so a pass visits every job once, whatever its state.
struct FinishedJobsRun {
  std::vector<std::string> expired;  // "job_..."
  std::string last_id;               // the last job visited; empty when none was
  bool reached_end = false;          // no job is left after last_id
};
FinishedJobsRun finished_jobs_before(const Store& store, UnixMillis cutoff, const std::string& after_id,
                                     std::size_t budget);

// How many dead letters match `filter` (its limit and cursor ignored), counting no further than
// `stop_at`: enough to tell a small redrive from a large one without counting the whole queue.
Result<std::size_t> count_dead(const Store& store, DeliveryFilter filter, std::size_t stop_at);

}  // namespace relay::queries
