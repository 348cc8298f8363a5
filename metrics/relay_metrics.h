#pragma once
// RelayMetrics: every metric of the contract (spec section 5), behind small typed methods so
// that callers never spell a metric name or label, and the exposition text for GET /metrics.
//
// The registry is prometheus-cpp core; relayd serves scrape() from its own Beast listener.
// Hot-path methods look up a cached series pointer (no allocation once a label set has been
// seen) and update an atomic. All methods are thread-safe: the io thread records HTTP and
// delivery metrics while the storage writer thread records commit metrics.
//
// Label values must be bounded: `route` is the route template ("/v1/events/{id}"), never the
// raw path, and `subscription` is a subscription id: add_subscription() creates all its series
// at 0 when the subscription is created (or found at startup), forget_subscription() removes
// them when it is deleted.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "relay/model/delivery.h"
#include "relay/model/job.h"

namespace relay {

class RelayMetrics {
 public:
  // `version` becomes the label of relay_build_info.
  explicit RelayMetrics(std::string_view version);
  ~RelayMetrics();
  RelayMetrics(const RelayMetrics&) = delete;
  RelayMetrics& operator=(const RelayMetrics&) = delete;

  // Ingress: one answered request. `route` is the matched route template (or a fixed word such
  // as "unmatched"); a method outside GET/HEAD/POST/PUT/PATCH/DELETE/OPTIONS is counted as "other".
  void http_request(std::string_view route, std::string_view method, int code, double seconds);
  // Ingress connections: how many are open, and those closed to stay within --max-connections or
  // the descriptor limit: refused (closed at once, never read) or evicted (the longest idle
  // keep-alive connection, closed to make room).
  void set_http_connections(std::size_t open);
  void http_connection_refused();
  void http_connection_evicted();

  void events_ingested(std::uint64_t n);
  void events_deduplicated(std::uint64_t n);
  void deliveries_created(std::uint64_t n);

  // Delivery: one finished attempt, and the terminal transitions of a delivery.
  void attempt(std::string_view subscription, AttemptOutcome outcome, double seconds);
  // `latency_seconds` runs from ingest (or redelivery) to the successful attempt's end.
  void delivery_succeeded(std::string_view subscription, double latency_seconds);
  void delivery_dead(std::string_view subscription);
  // `n` waiting deliveries of an ordering key were replaced by a newer one (coalescing).
  void deliveries_superseded(std::string_view subscription, std::uint64_t n);
  void dlq_redriven(std::uint64_t n);
  // A subscription was disabled automatically (its attempts all failed for its disable_after).
  void subscription_auto_disabled();

  // Storage: one group commit of `batch_size` writes.
  void storage_commit(double seconds, std::size_t batch_size);

  // Gauges, set from periodic snapshots of the store and the scheduler. `held`: deliveries of
  // disabled subscriptions, which are in none of the other states.
  void set_deliveries(std::uint64_t pending, std::uint64_t scheduled, std::uint64_t in_flight,
                      std::uint64_t dead, std::uint64_t held = 0);
  void set_oldest_pending_age(double seconds);
  // 0 closed, 1 half-open, 2 open.
  void set_circuit_state(std::string_view subscription, int state);
  void set_subscriptions(std::uint64_t enabled, std::uint64_t disabled);
  void set_storage_bytes(std::uint64_t sst, std::uint64_t wal);
  // relay_storage_writable: 1, or 0 while writes are refused (full disk, RocksDB error).
  void set_storage_writable(bool writable);
  // relay_jobs{state}: jobs stored in `state` (every state's series exists from the start, at 0).
  void set_jobs(JobState state, std::uint64_t count);
  // relay_jobs_finished_total{kind,state}: a job left `running` for `state` (done, failed,
  // cancelled) in this process; every series exists from the start, at 0, so that increase()
  // sees a first failure. Counted where it happened, never again from the store after a restart.
  void job_finished(JobKind kind, JobState state);

  // Cluster mode: a request this shard sent to another shard's API (relay/api/cluster_router.h),
  // relay_cluster_forwarded_requests_total{kind}. Its series exist (at 0) from
  // add_cluster_forwarding() on, so that a single node shows none; before it, nothing is counted.
  enum class ForwardKind { ingest, read, write, list };
  void add_cluster_forwarding();
  void cluster_forwarded(ForwardKind kind);
  // relay_cluster_forwarded_events_total: events sent to their owner shard, however many share
  // a request (coalesced single events, a client batch's part); from add_cluster_forwarding() on.
  void cluster_forwarded_events(std::uint64_t events);
  // Cluster mode: relay_cluster_shards{state="live"|"down"} (down: shards with a number that are
  // not live) and relay_cluster_etcd_up (1 while etcd answers). They exist from
  // add_cluster_state() on; before it the setters do nothing.
  void add_cluster_state();
  void set_cluster_shards(std::uint64_t live, std::uint64_t down);
  void set_cluster_etcd_up(bool up);

  // Creates every series labelled with this subscription id that does not exist yet, at 0
  // (circuit closed), so that rates and alerts see a subscription before its first attempt.
  void add_subscription(std::string_view subscription);
  // Drops every series labelled with this subscription id (the subscription was deleted), so
  // that deleted subscriptions do not accumulate series. A later call for the same id creates
  // fresh series.
  void forget_subscription(std::string_view subscription);

  // Prometheus text exposition format (version 0.0.4) of every relay_* and process_* metric.
  std::string scrape() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace relay
