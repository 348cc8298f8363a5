#include "relay/delivery/job_runner.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <algorithm>
#include <exception>
#include <nlohmann/json.hpp>

#include "metrics/relay_metrics.h"
#include "relay/core/async_bridge.h"
#include "relay/delivery/delivery_scheduler.h"
#include "relay/model/event_type.h"
#include "relay/routing/payload_filter.h"
#include "storage/async_commit.h"
#include "storage/job_mutations.h"
#include "storage/job_queries.h"

namespace relay {

namespace asio = boost::asio;

struct JobRunner::Active {
  Job job;
  // The subscription's filter, compiled once per job and again only when its text changes.
  std::string filter_text;
  std::shared_ptr<const PayloadFilter> filter;
};

namespace {

// The wait of an idle runner; submit() cuts it short.
constexpr std::chrono::hours kIdleWait{1};

bool replay_matches(const Event& event, const ReplayParams& params, const Subscription& sub,
                    const PayloadFilter* filter) {
  if (!sub.tenant.empty() && sub.tenant != event.tenant) return false;
  if (std::none_of(params.event_types.begin(), params.event_types.end(),
                   [&](const std::string& pattern) { return pattern_matches(pattern, event.type); })) {
    return false;
  }
  if (filter == nullptr) return true;
  FilterSubject subject(event.type, event.payload ? std::string_view(*event.payload) : std::string_view("null"));
  return filter->matches(subject);
}

}  // namespace

JobRunner::JobRunner(asio::io_context& io, JobRunnerOptions options, const Clock& clock, Logger& logger, Store& store,
                     CommitPipeline& pipeline, SubscriptionRegistry& subscriptions, keys::IdGenerator& ids,
                     DeliveryScheduler& scheduler, RelayMetrics& metrics, asio::thread_pool& blocking_pool)
    : io_(io),
      options_(options),
      clock_(clock),
      logger_(logger),
      store_(store),
      pipeline_(pipeline),
      subscriptions_(subscriptions),
      ids_(ids),
      scheduler_(scheduler),
      metrics_(metrics),
      blocking_pool_(blocking_pool),
      retention_(io, options.retention, clock, logger, store, pipeline, blocking_pool,
                 [this](const std::vector<JobState>& states) { removed(states); }),
      turns_task_(io, [this] { return take_turn(); }) {
  options_.chunk = std::max<std::size_t>(options_.chunk, 1);
}

JobRunner::~JobRunner() = default;

void JobRunner::start() {
  asio::co_spawn(io_, resume_stored(), [](const std::exception_ptr& error) {
    if (error) std::rethrow_exception(error);
  });
}

void JobRunner::stop() {
  stopped_ = true;
  turns_task_.stop();
  retention_.stop();
}

void JobRunner::submit(Job job) {
  const std::string id = job.id;
  if (active_.contains(id) || job.state != JobState::running) return;
  active_.emplace(id, std::make_shared<Active>(Active{std::move(job), {}, nullptr}));
  turns_.push_back(id);
  ++counts_[static_cast<std::size_t>(JobState::running)];
  publish_counts();
  if (idle_) turns_task_.wake();
}

void JobRunner::cancelled(const Job& job) { finished(job.id, JobState::cancelled); }

void JobRunner::took_chunk(Active& active, Job after) {
  active.job = std::move(after);
  if (active.job.state == JobState::running) return;
  logger_.info("job finished", {{"job", active.job.id},
                                {"state", job_state_name(active.job.state)},
                                {"matched", active.job.matched},
                                {"created", active.job.created}});
  finished(active.job.id, active.job.state);
}

void JobRunner::finished(std::string job_id, JobState state) {
  const auto found = active_.find(job_id);
  if (found == active_.end()) return;  // counted already (a cancel racing the job's last chunk)
  // Counted here, after the commit that ended the job and once per job (it leaves active_), so a
  // restart neither counts it again (a finished job is never active again) nor loses it, but for
  // a crash between the commit and this line.
  metrics_.job_finished(found->second->job.kind, state);
  active_.erase(found);
  std::erase(turns_, job_id);
  --counts_[static_cast<std::size_t>(JobState::running)];
  ++counts_[static_cast<std::size_t>(state)];
  publish_counts();
}

void JobRunner::removed(const std::vector<JobState>& states) {
  for (JobState state : states) {
    auto& count = counts_[static_cast<std::size_t>(state)];
    if (count > 0) --count;  // a miscount must not wrap around to 2^64
  }
  publish_counts();
}

void JobRunner::publish_counts() {
  for (JobState state : kJobStates) metrics_.set_jobs(state, counts_[static_cast<std::size_t>(state)]);
}

asio::awaitable<void> JobRunner::resume_stored() {
  const auto read = [&store = store_] { return queries::all_jobs(store); };
  std::vector<Job> stored = co_await run_blocking(blocking_pool_, read, asio::use_awaitable);
  for (auto& job : stored) {
    if (active_.contains(job.id)) continue;  // submitted while the read ran: counted then
    if (job.state == JobState::running) {
      logger_.info("job resumes", {{"job", job.id}, {"kind", job_kind_name(job.kind)}, {"created", job.created}});
      submit(std::move(job));
    } else {
      ++counts_[static_cast<std::size_t>(job.state)];
    }
  }
  publish_counts();
  if (stopped_) co_return;
  retention_.start();  // counted first: see the header
  turns_task_.start();
}

asio::awaitable<std::chrono::milliseconds> JobRunner::take_turn() {
  idle_ = false;
  std::chrono::milliseconds delay = kIdleWait;
  if (!turns_.empty()) {
    const std::string id = turns_.front();
    turns_.pop_front();
    turns_.push_back(id);  // its next turn comes after the others'; finished() drops it
    const std::shared_ptr<Active> active = active_.at(id);
    const auto began = std::chrono::steady_clock::now();
    delay = co_await run_chunk(*active);
    if (stopped_) co_return delay;  // no turn follows
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - began);
    delay = std::max(delay, took * options_.rest_per_work);
  }
  idle_ = turns_.empty();  // submit() wakes an idle runner
  co_return delay;
}

asio::awaitable<std::chrono::milliseconds> JobRunner::run_chunk(Active& active) {
  if (active.job.kind == JobKind::replay) co_return co_await replay_chunk(active);
  co_return co_await dlq_retry_chunk(active);
}

asio::awaitable<void> JobRunner::fail(Active& active, std::string error) {
  const std::string id = active.job.id;
  auto stored = std::make_shared<Job>();
  const CommitPipeline::Command command = [id, error, stored, &clock = clock_](WriteTxn& txn) {
    return mutations::fail_job(txn, id, error, clock.now_ms(), *stored);
  };
  const Status status = co_await async_commit(pipeline_, command, asio::use_awaitable);
  if (!status) co_return;  // still running: the next turn tries again
  logger_.error("job failed", {{"job", id}, {"error", error}});
  if (stored->state != JobState::running) finished(id, stored->state);
}

asio::awaitable<std::chrono::milliseconds> JobRunner::replay_chunk(Active& active) {
  const Job& job = active.job;
  const auto sub = subscriptions_.find(job.replay.subscription_id);
  if (!sub) {
    // Reasons are named locals: see start_dlq_retry_job's caller on temporaries in a co_await.
    std::string reason = "subscription " + job.replay.subscription_id + " was deleted";
    co_await fail(active, std::move(reason));
    co_return options_.pause;
  }
  if (!sub->filter.empty() && sub->filter != active.filter_text) {
    auto spec = nlohmann::json::parse(sub->filter, nullptr, /*allow_exceptions=*/false);
    auto compiled = PayloadFilter::compile(spec);
    if (!compiled) {
      std::string reason = "the subscription's filter is not valid: " + compiled.error().message;
      co_await fail(active, std::move(reason));
      co_return options_.pause;
    }
    active.filter = std::move(*compiled);
    active.filter_text = sub->filter;
  } else if (sub->filter.empty()) {
    active.filter.reset();
    active.filter_text.clear();
  }

  struct Scan {
    std::vector<std::string> candidates;
    queries::EventRun run;
  };
  const auto scan = [&store = store_, params = job.replay, cursor = job.cursor, sub, filter = active.filter,
                     budget = options_.chunk] {
    Scan out;
    out.run = queries::events_in_range(store, params.since, params.until, cursor, budget);
    for (const auto& event : out.run.events) {
      if (replay_matches(event, params, *sub, filter.get())) out.candidates.push_back(event.id);
    }
    out.run.events.clear();  // the commit reads each candidate again, through its batch
    return out;
  };
  const Scan found = co_await run_blocking(blocking_pool_, scan, asio::use_awaitable);
  if (stopped_) co_return options_.pause;

  mutations::ReplayChunk chunk{job.id, job.cursor, found.candidates,
                               found.run.last_id.empty() ? job.cursor : found.run.last_id, found.run.reached_end};
  auto outcome = std::make_shared<mutations::ChunkOutcome>();
  const CommitPipeline::Command command = [&chunk, sub, outcome, &ids = ids_, &clock = clock_](WriteTxn& txn) {
    return mutations::replay_chunk(txn, chunk, sub, ids, clock.now_ms(), *outcome);
  };
  const Status status = co_await async_commit(pipeline_, command, asio::use_awaitable);
  if (!status) {
    if (status.error().code == Errc::not_found) {
      finished(job.id, JobState::failed);  // the record is gone: nothing left to run
      co_return options_.pause;
    }
    logger_.warn("job chunk not committed; retrying", {{"job", job.id}, {"error", status.error().message}});
    co_return options_.retry;
  }
  if (outcome->delivered > 0) {
    metrics_.deliveries_created(outcome->delivered);
    for (auto& group : outcome->groups) scheduler_.enqueue(std::move(group.deliveries), group.payload);
  }
  took_chunk(active, std::move(outcome->job));
  co_return options_.pause;
}

asio::awaitable<std::chrono::milliseconds> JobRunner::dlq_retry_chunk(Active& active) {
  const Job& job = active.job;
  queries::DeliveryFilter filter;
  filter.subscription_id = job.dlq.subscription_id;
  filter.event_type = job.dlq.event_type;
  filter.tenant = job.dlq.tenant;
  filter.since = job.dlq.since;
  filter.until = job.dlq.until;
  filter.cursor = job.cursor;
  filter.limit = static_cast<std::size_t>(std::min<std::uint64_t>(options_.chunk, job.dlq.limit - std::min(job.dlq.limit, job.matched)));
  mutations::DlqRetryChunk chunk{job.id, job.cursor, {}, job.cursor, true};
  if (filter.limit > 0) {
    const auto read = [&store = store_, filter] { return queries::list_dead(store, filter); };
    auto page = co_await run_blocking(blocking_pool_, read, asio::use_awaitable);
    if (stopped_) co_return options_.pause;
    if (!page) {
      std::string reason = page.error().message;
      co_await fail(active, std::move(reason));
      co_return options_.pause;
    }
    for (const auto& d : page->items) chunk.dead.push_back({d.completed_at, d.id});
    chunk.last = page->next_cursor.empty();
    if (!chunk.last) chunk.next_cursor = page->next_cursor;
  }
  auto outcome = std::make_shared<mutations::ChunkOutcome>();
  const CommitPipeline::Command command = [&chunk, outcome, &clock = clock_](WriteTxn& txn) {
    return mutations::dlq_retry_chunk(txn, chunk, clock.now_ms(), *outcome);
  };
  const Status status = co_await async_commit(pipeline_, command, asio::use_awaitable);
  if (!status) {
    if (status.error().code == Errc::not_found) {
      finished(job.id, JobState::failed);
      co_return options_.pause;
    }
    logger_.warn("job chunk not committed; retrying", {{"job", job.id}, {"error", status.error().message}});
    co_return options_.retry;
  }
  if (outcome->delivered > 0) {
    metrics_.dlq_redriven(outcome->delivered);
    for (auto& group : outcome->groups) {
      scheduler_.enqueue(std::move(group.deliveries), nullptr, DeliveryScheduler::Origin::redriven_dead);
    }
  }
  took_chunk(active, std::move(outcome->job));
  co_return options_.pause;
}

}  // namespace relay
