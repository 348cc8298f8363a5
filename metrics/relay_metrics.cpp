// Over 450 lines on purpose: every family relayd exports, with its labels and help text, stays
// in one file, so the list of names can be read (and diffed against the spec) in one place.

#include "metrics/relay_metrics.h"

#include <array>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "metrics/process_collector.h"

namespace relay {
namespace {

using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;
using prometheus::Histogram;

// Ingress handlers answer in about a millisecond; commits are fsync-bound; attempts are capped
// by --attempt-timeout (15s by default, up to a minute in practice); ingest-to-success spans the
// whole one-hour retry window.
const Histogram::BucketBoundaries kHttpBuckets{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                               0.1,    0.25,  0.5,    1,     2.5,   5,     10};
const Histogram::BucketBoundaries kAttemptBuckets{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                  1,     2.5,  5,     10,   15,  30,   60};
const Histogram::BucketBoundaries kLatencyBuckets{0.01, 0.05, 0.1, 0.25, 0.5,  1,    2.5,  5,   10,
                                                  30,   60,   120, 300,  600,  1200, 1800, 3600};
const Histogram::BucketBoundaries kCommitBuckets{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                 0.025,  0.05,    0.1,    0.25,  0.5,    1};
const Histogram::BucketBoundaries kBatchBuckets{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096};

constexpr std::array kOutcomes{AttemptOutcome::success,      AttemptOutcome::http_4xx,
                               AttemptOutcome::http_5xx,     AttemptOutcome::timeout,
                               AttemptOutcome::connect_error, AttemptOutcome::dns_error,
                               AttemptOutcome::tls_error,    AttemptOutcome::blocked_destination,
                               AttemptOutcome::other};

std::size_t outcome_index(AttemptOutcome outcome) {
  for (std::size_t i = 0; i < kOutcomes.size(); ++i) {
    if (kOutcomes[i] == outcome) return i;
  }
  return kOutcomes.size() - 1;  // `other`
}

// Clients choose the method string, so anything outside the standard set shares one series.
std::string_view method_label(std::string_view method) {
  for (std::string_view known : {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}) {
    if (method == known) return known;
  }
  return "other";
}

template <typename T>
Family<T>& family(prometheus::detail::Builder<T> builder, const char* name, const char* help,
                  prometheus::Registry& registry) {
  return builder.Name(name).Help(help).Register(registry);
}

// The series of one route; a route sees a handful of (method, code) pairs, so a vector suffices.
struct RouteSeries {
  Histogram* duration = nullptr;
  struct Requests {
    std::string method;
    int code;
    Counter* counter;
  };
  std::vector<Requests> requests;
};

// The series of one subscription, created as they are first needed.
struct SubscriptionSeries {
  std::array<Counter*, kOutcomes.size()> attempts{};
  Histogram* attempt_duration = nullptr;
  Counter* succeeded = nullptr;
  Counter* dead = nullptr;
  Counter* superseded = nullptr;
  Gauge* circuit = nullptr;
};

}  // namespace

struct RelayMetrics::Impl {
  explicit Impl(std::string_view version);

  Counter& requests_series(std::string_view route, std::string_view method, int code, Histogram*& duration);
  // Call with sub_mutex held.
  SubscriptionSeries& subscription_series(std::string_view id);

  prometheus::Registry registry;
  ProcessCollector process;

  Family<Counter>& http_requests;
  Family<Histogram>& http_duration;
  Gauge& http_connections;
  Counter& http_connections_refused;
  Counter& http_connections_evicted;
  Counter& events_ingested;
  Counter& events_deduplicated;
  Counter& deliveries_created;
  Family<Counter>& attempts;
  Family<Histogram>& attempt_duration;
  Family<Counter>& succeeded;
  Family<Counter>& superseded;
  Family<Counter>& dead;
  Counter& dlq_redriven;
  Counter& subscriptions_auto_disabled;
  Histogram& delivery_latency;
  Histogram& commit_duration;
  Histogram& commit_batch_size;
  Family<Gauge>& deliveries;
  Gauge& deliveries_pending;
  Gauge& deliveries_scheduled;
  Gauge& deliveries_in_flight;
  Gauge& deliveries_dead;
  Gauge& deliveries_held;
  Gauge& oldest_pending_age;
  Family<Gauge>& circuit_state;
  Family<Gauge>& subscriptions_by_enabled;
  Gauge& subscriptions_enabled;
  Gauge& subscriptions_disabled;
  Family<Gauge>& storage_bytes;
  Gauge& storage_sst;
  Gauge& storage_wal;
  Gauge& storage_writable;
  std::array<Gauge*, std::size(kJobStates)> jobs{};  // relay_jobs by JobState
  // relay_jobs_finished_total by JobKind, then JobState (running's stays null: not a finish).
  std::array<std::array<Counter*, std::size(kJobStates)>, 2> jobs_finished{};
  // relay_cluster_forwarded_requests_total by ForwardKind: set once, before the first request.
  std::array<Counter*, 4> forwarded{};
  Counter* forwarded_events = nullptr;  // relay_cluster_forwarded_events_total, with `forwarded`
  // relay_cluster_shards{live, down} and relay_cluster_etcd_up: set once, at startup.
  Gauge* shards_live = nullptr;
  Gauge* shards_down = nullptr;
  Gauge* etcd_up = nullptr;

  // The io thread and the storage writer thread both record; these guard the label caches.
  // Subscription series can be removed, so they are updated under sub_mutex; route series live
  // as long as the registry, so a pointer read under http_mutex stays valid after unlocking.
  std::mutex http_mutex;
  std::map<std::string, RouteSeries, std::less<>> routes;
  std::mutex sub_mutex;
  std::map<std::string, SubscriptionSeries, std::less<>> subscriptions;
};

RelayMetrics::Impl::Impl(std::string_view version)
    : http_requests(family(prometheus::BuildCounter(), "relay_http_requests_total",
                           "HTTP requests answered, by route template, method and status code.", registry)),
      http_duration(family(prometheus::BuildHistogram(), "relay_http_request_duration_seconds",
                           "Time from request read to response written, by route template.", registry)),
      http_connections(family(prometheus::BuildGauge(), "relay_http_connections",
                              "Open ingress HTTP connections.", registry)
                           .Add({})),
      http_connections_refused(family(prometheus::BuildCounter(), "relay_http_connections_refused_total",
                                      "Ingress connections closed unread: at --max-connections with none idle, "
                                      "or out of file descriptors.",
                                      registry)
                                   .Add({})),
      http_connections_evicted(family(prometheus::BuildCounter(), "relay_http_connections_evicted_total",
                                      "Idle keep-alive connections closed to make room for new ones.", registry)
                                   .Add({})),
      events_ingested(family(prometheus::BuildCounter(), "relay_events_ingested_total",
                             "Events accepted and persisted (excluding deduplicated repeats).", registry)
                          .Add({})),
      events_deduplicated(family(prometheus::BuildCounter(), "relay_events_deduplicated_total",
                                 "Events answered from an earlier event with the same client id.", registry)
                              .Add({})),
      deliveries_created(family(prometheus::BuildCounter(), "relay_deliveries_created_total",
                                "Deliveries created: by ingest, redelivery, replay and operational events.", registry)
                             .Add({})),
      attempts(family(prometheus::BuildCounter(), "relay_delivery_attempts_total",
                      "Delivery attempts finished, by subscription and outcome.", registry)),
      attempt_duration(family(prometheus::BuildHistogram(), "relay_delivery_attempt_duration_seconds",
                              "Duration of delivery attempts, by subscription.", registry)),
      succeeded(family(prometheus::BuildCounter(), "relay_deliveries_succeeded_total",
                       "Deliveries that reached the succeeded state, by subscription.", registry)),
      superseded(family(prometheus::BuildCounter(), "relay_deliveries_superseded_total",
                        "Waiting deliveries of an ordering key replaced by a newer one (coalescing), by subscription.",
                        registry)),
      dead(family(prometheus::BuildCounter(), "relay_deliveries_dead_total",
                  "Deliveries moved to the dead-letter queue, by subscription.", registry)),
      dlq_redriven(family(prometheus::BuildCounter(), "relay_dlq_redriven_total",
                          "Dead deliveries redriven from the dead-letter queue.", registry)
                       .Add({})),
      subscriptions_auto_disabled(family(prometheus::BuildCounter(), "relay_subscriptions_auto_disabled_total",
                                         "Subscriptions disabled by relay because all their attempts failed for "
                                         "their disable_after.",
                                         registry)
                                      .Add({})),
      delivery_latency(family(prometheus::BuildHistogram(), "relay_delivery_latency_seconds",
                              "Time from ingest to the successful attempt of a delivery.", registry)
                           .Add({}, kLatencyBuckets)),
      commit_duration(family(prometheus::BuildHistogram(), "relay_storage_commit_duration_seconds",
                             "Duration of storage group commits, including fsync when enabled.", registry)
                          .Add({}, kCommitBuckets)),
      commit_batch_size(family(prometheus::BuildHistogram(), "relay_storage_commit_batch_size",
                               "Writes per storage group commit.", registry)
                            .Add({}, kBatchBuckets)),
      deliveries(family(prometheus::BuildGauge(), "relay_deliveries",
                        "Unfinished and dead deliveries on disk, by state: pending (due), scheduled (awaiting a retry), in_flight, dead, held (of a disabled subscription).", registry)),
      deliveries_pending(deliveries.Add({{"state", "pending"}})),
      deliveries_scheduled(deliveries.Add({{"state", "scheduled"}})),
      deliveries_in_flight(deliveries.Add({{"state", "in_flight"}})),
      deliveries_dead(deliveries.Add({{"state", "dead"}})),
      deliveries_held(deliveries.Add({{"state", "held"}})),
      oldest_pending_age(family(prometheus::BuildGauge(), "relay_oldest_pending_age_seconds",
                                "Age of the oldest delivery that is due and not yet attempted, of enabled subscriptions.", registry)
                             .Add({})),
      circuit_state(family(prometheus::BuildGauge(), "relay_circuit_state",
                           "Circuit breaker state by subscription: 0 closed, 1 half-open, 2 open.", registry)),
      subscriptions_by_enabled(family(prometheus::BuildGauge(), "relay_subscriptions",
                                      "Subscriptions, by whether they are enabled.", registry)),
      subscriptions_enabled(subscriptions_by_enabled.Add({{"enabled", "true"}})),
      subscriptions_disabled(subscriptions_by_enabled.Add({{"enabled", "false"}})),
      storage_bytes(family(prometheus::BuildGauge(), "relay_storage_bytes",
                           "Bytes on disk used by the store, by kind.", registry)),
      storage_sst(storage_bytes.Add({{"kind", "sst"}})),
      storage_wal(storage_bytes.Add({{"kind", "wal"}})),
      storage_writable(family(prometheus::BuildGauge(), "relay_storage_writable",
                              "1 while the store accepts writes; 0 while they are refused (full disk, RocksDB "
                              "background error) until it recovers.",
                              registry)
                           .Add({})) {
  storage_writable.Set(1);
  auto& jobs_family = family(prometheus::BuildGauge(), "relay_jobs",
                             "Replay and DLQ-retry jobs stored, by state: running, done, failed, cancelled.", registry);
  for (JobState state : kJobStates) jobs[static_cast<std::size_t>(state)] = &jobs_family.Add({{"state", job_state_name(state)}});
  auto& finished_family = family(prometheus::BuildCounter(), "relay_jobs_finished_total",
                                 "Replay and DLQ-retry jobs finished since relayd started, by kind and by the state "
                                 "they finished in: done, failed, cancelled.",
                                 registry);
  for (JobKind kind : {JobKind::replay, JobKind::dlq_retry}) {
    for (JobState state : {JobState::done, JobState::failed, JobState::cancelled}) {
      jobs_finished[static_cast<std::size_t>(kind)][static_cast<std::size_t>(state)] =
          &finished_family.Add({{"kind", job_kind_name(kind)}, {"state", job_state_name(state)}});
    }
  }
  family(prometheus::BuildGauge(), "relay_build_info", "Build information; the value is always 1.", registry)
      .Add({{"version", std::string(version)}})
      .Set(1);
}

Counter& RelayMetrics::Impl::requests_series(std::string_view route, std::string_view method, int code,
                                             Histogram*& duration) {
  std::lock_guard lock(http_mutex);
  auto it = routes.find(route);
  if (it == routes.end()) {
    it = routes.emplace(std::string(route), RouteSeries{}).first;
    it->second.duration = &http_duration.Add({{"route", std::string(route)}}, kHttpBuckets);
  }
  RouteSeries& series = it->second;
  duration = series.duration;
  for (const auto& r : series.requests) {
    if (r.code == code && r.method == method) return *r.counter;
  }
  Counter& counter = http_requests.Add(
      {{"route", std::string(route)}, {"method", std::string(method)}, {"code", std::to_string(code)}});
  series.requests.push_back({std::string(method), code, &counter});
  return counter;
}

SubscriptionSeries& RelayMetrics::Impl::subscription_series(std::string_view id) {
  auto it = subscriptions.find(id);
  if (it == subscriptions.end()) it = subscriptions.emplace(std::string(id), SubscriptionSeries{}).first;
  return it->second;
}

RelayMetrics::RelayMetrics(std::string_view version) : impl_(std::make_unique<Impl>(version)) {}

RelayMetrics::~RelayMetrics() = default;

void RelayMetrics::http_request(std::string_view route, std::string_view method, int code, double seconds) {
  Histogram* duration = nullptr;
  impl_->requests_series(route, method_label(method), code, duration).Increment();
  duration->Observe(seconds);
}

void RelayMetrics::set_http_connections(std::size_t open) { impl_->http_connections.Set(static_cast<double>(open)); }

void RelayMetrics::http_connection_refused() { impl_->http_connections_refused.Increment(); }

void RelayMetrics::http_connection_evicted() { impl_->http_connections_evicted.Increment(); }

void RelayMetrics::events_ingested(std::uint64_t n) { impl_->events_ingested.Increment(static_cast<double>(n)); }

void RelayMetrics::events_deduplicated(std::uint64_t n) {
  impl_->events_deduplicated.Increment(static_cast<double>(n));
}

void RelayMetrics::deliveries_created(std::uint64_t n) {
  impl_->deliveries_created.Increment(static_cast<double>(n));
}

void RelayMetrics::attempt(std::string_view subscription, AttemptOutcome outcome, double seconds) {
  std::lock_guard lock(impl_->sub_mutex);
  SubscriptionSeries& series = impl_->subscription_series(subscription);
  Counter*& counter = series.attempts[outcome_index(outcome)];
  if (counter == nullptr) {
    counter = &impl_->attempts.Add(
        {{"subscription", std::string(subscription)}, {"outcome", attempt_outcome_name(outcome)}});
  }
  counter->Increment();
  if (series.attempt_duration == nullptr) {
    series.attempt_duration =
        &impl_->attempt_duration.Add({{"subscription", std::string(subscription)}}, kAttemptBuckets);
  }
  series.attempt_duration->Observe(seconds);
}

void RelayMetrics::delivery_succeeded(std::string_view subscription, double latency_seconds) {
  impl_->delivery_latency.Observe(latency_seconds);
  std::lock_guard lock(impl_->sub_mutex);
  SubscriptionSeries& series = impl_->subscription_series(subscription);
  if (series.succeeded == nullptr) {
    series.succeeded = &impl_->succeeded.Add({{"subscription", std::string(subscription)}});
  }
  series.succeeded->Increment();
}

void RelayMetrics::delivery_dead(std::string_view subscription) {
  std::lock_guard lock(impl_->sub_mutex);
  SubscriptionSeries& series = impl_->subscription_series(subscription);
  if (series.dead == nullptr) series.dead = &impl_->dead.Add({{"subscription", std::string(subscription)}});
  series.dead->Increment();
}

void RelayMetrics::deliveries_superseded(std::string_view subscription, std::uint64_t n) {
  std::lock_guard lock(impl_->sub_mutex);
  SubscriptionSeries& series = impl_->subscription_series(subscription);
  if (series.superseded == nullptr) {
    series.superseded = &impl_->superseded.Add({{"subscription", std::string(subscription)}});
  }
  series.superseded->Increment(static_cast<double>(n));
}

void RelayMetrics::add_cluster_forwarding() {
  if (impl_->forwarded[0] != nullptr) return;
  auto& forwarded = family(prometheus::BuildCounter(), "relay_cluster_forwarded_requests_total",
                           "Requests sent to another shard, by kind: ingest (events to their key's shard: one "
                           "event, or a batch of them), read and write (a call naming another shard's id; write also "
                           "a bulk call's part), list (a list call's part).",
                           impl_->registry);
  constexpr std::array<const char*, 4> kKinds{"ingest", "read", "write", "list"};
  for (std::size_t i = 0; i < kKinds.size(); ++i) impl_->forwarded[i] = &forwarded.Add({{"kind", kKinds[i]}});
  impl_->forwarded_events = &family(prometheus::BuildCounter(), "relay_cluster_forwarded_events_total",
                                    "Events sent to the shard that owns their key, however many shared a request.",
                                    impl_->registry)
                                 .Add({});
}

void RelayMetrics::cluster_forwarded(ForwardKind kind) {
  if (Counter* counter = impl_->forwarded[static_cast<std::size_t>(kind)]) counter->Increment();
}

void RelayMetrics::cluster_forwarded_events(std::uint64_t events) {
  if (impl_->forwarded_events != nullptr) impl_->forwarded_events->Increment(static_cast<double>(events));
}

void RelayMetrics::add_cluster_state() {
  if (impl_->etcd_up != nullptr) return;
  auto& shards = family(prometheus::BuildGauge(), "relay_cluster_shards",
                        "Shards of the cluster as this shard sees them: live (registered on a lease etcd keeps), "
                        "down (given a number, not live).",
                        impl_->registry);
  impl_->shards_live = &shards.Add({{"state", "live"}});
  impl_->shards_down = &shards.Add({{"state", "down"}});
  impl_->etcd_up = &family(prometheus::BuildGauge(), "relay_cluster_etcd_up",
                           "1 while etcd answers this shard, 0 while it does not (ingest and delivery go on; "
                           "subscription writes answer 503).",
                           impl_->registry)
                        .Add({});
}

void RelayMetrics::set_cluster_shards(std::uint64_t live, std::uint64_t down) {
  if (impl_->shards_live == nullptr) return;
  impl_->shards_live->Set(static_cast<double>(live));
  impl_->shards_down->Set(static_cast<double>(down));
}

void RelayMetrics::set_cluster_etcd_up(bool up) {
  if (impl_->etcd_up != nullptr) impl_->etcd_up->Set(up ? 1 : 0);
}

void RelayMetrics::dlq_redriven(std::uint64_t n) { impl_->dlq_redriven.Increment(static_cast<double>(n)); }

void RelayMetrics::subscription_auto_disabled() { impl_->subscriptions_auto_disabled.Increment(); }

void RelayMetrics::storage_commit(double seconds, std::size_t batch_size) {
  impl_->commit_duration.Observe(seconds);
  impl_->commit_batch_size.Observe(static_cast<double>(batch_size));
}

void RelayMetrics::set_deliveries(std::uint64_t pending, std::uint64_t scheduled, std::uint64_t in_flight,
                                  std::uint64_t dead, std::uint64_t held) {
  impl_->deliveries_pending.Set(static_cast<double>(pending));
  impl_->deliveries_scheduled.Set(static_cast<double>(scheduled));
  impl_->deliveries_in_flight.Set(static_cast<double>(in_flight));
  impl_->deliveries_dead.Set(static_cast<double>(dead));
  impl_->deliveries_held.Set(static_cast<double>(held));
}

void RelayMetrics::set_oldest_pending_age(double seconds) { impl_->oldest_pending_age.Set(seconds); }

void RelayMetrics::set_circuit_state(std::string_view subscription, int state) {
  std::lock_guard lock(impl_->sub_mutex);
  SubscriptionSeries& series = impl_->subscription_series(subscription);
  if (series.circuit == nullptr) {
    series.circuit = &impl_->circuit_state.Add({{"subscription", std::string(subscription)}});
  }
  series.circuit->Set(state);
}

void RelayMetrics::set_subscriptions(std::uint64_t enabled, std::uint64_t disabled) {
  impl_->subscriptions_enabled.Set(static_cast<double>(enabled));
  impl_->subscriptions_disabled.Set(static_cast<double>(disabled));
}

void RelayMetrics::set_storage_bytes(std::uint64_t sst, std::uint64_t wal) {
  impl_->storage_sst.Set(static_cast<double>(sst));
  impl_->storage_wal.Set(static_cast<double>(wal));
}

void RelayMetrics::set_storage_writable(bool writable) { impl_->storage_writable.Set(writable ? 1 : 0); }

void RelayMetrics::set_jobs(JobState state, std::uint64_t count) {
  impl_->jobs[static_cast<std::size_t>(state)]->Set(static_cast<double>(count));
}

void RelayMetrics::job_finished(JobKind kind, JobState state) {
  if (Counter* counter = impl_->jobs_finished[static_cast<std::size_t>(kind)][static_cast<std::size_t>(state)]) {
    counter->Increment();
  }
}

void RelayMetrics::add_subscription(std::string_view subscription) {
  std::lock_guard lock(impl_->sub_mutex);
  SubscriptionSeries& series = impl_->subscription_series(subscription);
  const std::string id(subscription);
  for (std::size_t i = 0; i < kOutcomes.size(); ++i) {
    if (series.attempts[i] == nullptr) {
      series.attempts[i] = &impl_->attempts.Add({{"subscription", id}, {"outcome", attempt_outcome_name(kOutcomes[i])}});
    }
  }
  if (series.attempt_duration == nullptr) {
    series.attempt_duration = &impl_->attempt_duration.Add({{"subscription", id}}, kAttemptBuckets);
  }
  if (series.succeeded == nullptr) series.succeeded = &impl_->succeeded.Add({{"subscription", id}});
  if (series.dead == nullptr) series.dead = &impl_->dead.Add({{"subscription", id}});
  if (series.superseded == nullptr) series.superseded = &impl_->superseded.Add({{"subscription", id}});
  if (series.circuit == nullptr) series.circuit = &impl_->circuit_state.Add({{"subscription", id}});
}

void RelayMetrics::forget_subscription(std::string_view subscription) {
  std::lock_guard lock(impl_->sub_mutex);
  auto it = impl_->subscriptions.find(subscription);
  if (it == impl_->subscriptions.end()) return;
  SubscriptionSeries& series = it->second;
  for (Counter* counter : series.attempts) {
    if (counter != nullptr) impl_->attempts.Remove(counter);
  }
  if (series.attempt_duration != nullptr) impl_->attempt_duration.Remove(series.attempt_duration);
  if (series.succeeded != nullptr) impl_->succeeded.Remove(series.succeeded);
  if (series.dead != nullptr) impl_->dead.Remove(series.dead);
  if (series.superseded != nullptr) impl_->superseded.Remove(series.superseded);
  if (series.circuit != nullptr) impl_->circuit_state.Remove(series.circuit);
  impl_->subscriptions.erase(it);
}

std::string RelayMetrics::scrape() const {
  std::vector<prometheus::MetricFamily> families = impl_->registry.Collect();
  std::vector<prometheus::MetricFamily> process = impl_->process.Collect();
  families.insert(families.end(), std::make_move_iterator(process.begin()),
                  std::make_move_iterator(process.end()));
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace relay
