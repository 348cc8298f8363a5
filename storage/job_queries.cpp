#include "storage/job_queries.h"

#include "storage/job_records.h"
#include "storage/keys.h"
#include "storage/records.h"

namespace relay::queries {

namespace {

// A bounded step of a pass: visits at most `budget` keys of `range` in order and answers
// whether the range ended within them (false: one more key exists). The caller keeps the last
// key it visited as the cursor of the next step.
template <typename Visit>
bool scan_budgeted(const Store& store, Family family, const ScanRange& range, std::size_t budget, Visit visit) {
  std::size_t visited = 0;
  bool reached_end = true;
  store.scan(family, range, [&](std::string_view key, std::string_view value) {
    if (visited == budget) {
      reached_end = false;
      return false;
    }
    ++visited;
    visit(key, value);
    return true;
  });
  return reached_end;
}

// The first key after `key`: where a pass that stopped at it goes on.
std::string key_after(std::string key) {
  key.push_back('\0');
  return key;
}

}  // namespace

std::optional<Job> job(const Store& store, const std::string& id) {
  if (!keys::parse_id(id, keys::kJobPrefix)) return std::nullopt;
  auto bytes = store.get(Family::jobs, keys::job_key(id));
  return bytes ? records::decode_job(*bytes) : std::nullopt;
}

Result<JobPage> list_jobs(const Store& store, std::size_t limit, const std::string& cursor) {
  JobPage page;
  ScanRange range{"", "", true};
  if (!cursor.empty()) {
    // Like the deliveries' cursor: the id of the last item, exclusive upper bound of the next page.
    const auto raw = keys::parse_id(cursor, keys::kJobPrefix);
    if (!raw) return make_error(Errc::invalid_field, "cursor is not valid");
    range.upper.assign(raw->data(), raw->size());
  }
  store.scan(Family::jobs, range, [&](auto, std::string_view value) {
    if (auto j = records::decode_job(value)) page.items.push_back(std::move(*j));
    return page.items.size() <= limit;
  });
  if (page.items.size() > limit) {
    page.items.pop_back();
    page.next_cursor = page.items.back().id;
  }
  return page;
}

std::vector<Job> all_jobs(const Store& store) {
  std::vector<Job> out;
  store.scan(Family::jobs, ScanRange{}, [&](auto, std::string_view value) {
    if (auto j = records::decode_job(value)) out.push_back(std::move(*j));
    return true;
  });
  return out;
}

EventRun events_in_range(const Store& store, UnixMillis since, UnixMillis until, const std::string& after_id,
                         std::size_t budget) {
  EventRun run;
  ScanRange range{keys::id_time_bound(since), keys::id_time_bound(until)};
  if (!after_id.empty()) {
    std::string after = key_after(keys::event_key(after_id));
    if (after > range.lower) range.lower = std::move(after);
  }
  if (range.lower >= range.upper) {
    run.reached_end = true;
    return run;
  }
  run.reached_end =
      scan_budgeted(store, Family::events, range, budget, [&](std::string_view key, std::string_view value) {
        run.last_id = keys::format_id(keys::kEventPrefix, key);
        if (auto e = records::decode_event(value)) run.events.push_back(std::move(*e));
      });
  return run;
}

FinishedJobsRun finished_jobs_before(const Store& store, UnixMillis cutoff, const std::string& after_id,
                                     std::size_t budget) {
  FinishedJobsRun run;
  ScanRange range;
  if (!after_id.empty()) range.lower = key_after(keys::job_key(after_id));
  run.reached_end =
      scan_budgeted(store, Family::jobs, range, budget, [&](std::string_view key, std::string_view value) {
        run.last_id = keys::format_id(keys::kJobPrefix, key);
        const auto job = records::decode_job(value);
        if (job && job->state != JobState::running && job->finished_at <= cutoff) run.expired.push_back(run.last_id);
      });
  return run;
}

Result<std::size_t> count_dead(const Store& store, DeliveryFilter filter, std::size_t stop_at) {
  std::size_t n = 0;
  filter.cursor.clear();
  for (;;) {
    filter.limit = stop_at - n;
    auto page = list_dead(store, filter);
    if (!page) return page.error();
    n += page->items.size();
    if (n >= stop_at || page->next_cursor.empty()) return n;
    filter.cursor = page->next_cursor;
  }
}

}  // namespace relay::queries
