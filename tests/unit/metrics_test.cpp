// RelayMetrics: the exposition carries every metric of spec section 5 under its exact name and
// labels, passes `promtool check metrics`, and stays consistent under concurrent recording.

#include "metrics/relay_metrics.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace relay {
namespace metrics_test {

// Every series of a scrape, keyed by `name{labels}` exactly as exposed (prometheus-cpp sorts
// labels by name), mapped to its value.
std::map<std::string, double> samples(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto space = line.rfind(' ');
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

// The `# TYPE` of every family of a scrape.
std::map<std::string, std::string> types(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string hash, keyword, name, type;
    words >> hash >> keyword >> name >> type;
    if (hash == "#" && keyword == "TYPE") out[name] = type;
  }
  return out;
}

// Records at least one sample in every labelled family, so that all families are exposed.
void record_everything(RelayMetrics& metrics) {
  metrics.http_request("/v1/events", "POST", 202, 0.002);
  metrics.events_ingested(3);
  metrics.events_deduplicated(1);
  metrics.deliveries_created(6);
  metrics.attempt("sub_a", AttemptOutcome::success, 0.05);
  metrics.attempt("sub_b", AttemptOutcome::http_5xx, 0.2);
  metrics.delivery_succeeded("sub_a", 1.5);
  metrics.delivery_dead("sub_b");
  metrics.dlq_redriven(2);
  metrics.subscription_auto_disabled();
  metrics.storage_commit(0.004, 12);
  metrics.set_deliveries(4, 5, 6, 7);
  metrics.set_oldest_pending_age(8.5);
  metrics.set_circuit_state("sub_b", 2);
  metrics.set_subscriptions(9, 1);
  metrics.set_storage_bytes(4096, 512);
}

// Runs `promtool check metrics` over the text; returns its exit status and output.
std::pair<int, std::string> promtool_check(const std::string& text) {
  char path[] = "/tmp/relay_metrics_test_XXXXXX";
  const int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  {
    std::ofstream out(path);
    out << text;
  }
  close(fd);
  const std::string command = std::string("promtool check metrics < ") + path + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  std::string output;
  char buffer[4096];
  std::size_t n = 0;
  while (pipe != nullptr && (n = fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
  const int status = pipe != nullptr ? pclose(pipe) : -1;
  unlink(path);
  return {status, output};
}

bool promtool_available() { return std::system("command -v promtool > /dev/null 2>&1") == 0; }

TEST(MetricsTest, ScrapeExposesEveryContractMetricWithItsType) {
  RelayMetrics metrics("1.2.3");
  record_everything(metrics);
  const auto exposed = types(metrics.scrape());
  const std::map<std::string, std::string> expected{
      {"relay_http_requests_total", "counter"},
      {"relay_events_ingested_total", "counter"},
      {"relay_events_deduplicated_total", "counter"},
      {"relay_deliveries_created_total", "counter"},
      {"relay_delivery_attempts_total", "counter"},
      {"relay_deliveries_succeeded_total", "counter"},
      {"relay_deliveries_dead_total", "counter"},
      {"relay_dlq_redriven_total", "counter"},
      {"relay_subscriptions_auto_disabled_total", "counter"},
      {"relay_http_request_duration_seconds", "histogram"},
      {"relay_delivery_attempt_duration_seconds", "histogram"},
      {"relay_delivery_latency_seconds", "histogram"},
      {"relay_storage_commit_duration_seconds", "histogram"},
      {"relay_storage_commit_batch_size", "histogram"},
      {"relay_deliveries", "gauge"},
      {"relay_oldest_pending_age_seconds", "gauge"},
      {"relay_circuit_state", "gauge"},
      {"relay_subscriptions", "gauge"},
      {"relay_storage_bytes", "gauge"},
      {"relay_build_info", "gauge"},
      {"process_cpu_seconds_total", "counter"},
      {"process_resident_memory_bytes", "gauge"},
      {"process_virtual_memory_bytes", "gauge"},
      {"process_open_fds", "gauge"},
      {"process_max_fds", "gauge"},
      {"process_start_time_seconds", "gauge"},
  };
  for (const auto& [name, type] : expected) {
    ASSERT_TRUE(exposed.count(name)) << name << " missing";
    EXPECT_EQ(exposed.at(name), type) << name;
  }
}

TEST(MetricsTest, FreshInstanceExposesUnlabelledSeriesAtZero) {
  RelayMetrics metrics("1.2.3");
  const auto s = samples(metrics.scrape());
  EXPECT_EQ(s.at("relay_events_ingested_total"), 0);
  EXPECT_EQ(s.at("relay_dlq_redriven_total"), 0);
  EXPECT_EQ(s.at("relay_subscriptions_auto_disabled_total"), 0);
  EXPECT_EQ(s.at("relay_deliveries{state=\"pending\"}"), 0);
  EXPECT_EQ(s.at("relay_deliveries{state=\"dead\"}"), 0);
  EXPECT_EQ(s.at("relay_subscriptions{enabled=\"false\"}"), 0);
  EXPECT_EQ(s.at("relay_storage_bytes{kind=\"wal\"}"), 0);
  EXPECT_EQ(s.at("relay_storage_writable"), 1);
  EXPECT_EQ(s.at("relay_oldest_pending_age_seconds"), 0);
  EXPECT_EQ(s.at("relay_build_info{version=\"1.2.3\"}"), 1);
  EXPECT_EQ(s.at("relay_jobs_finished_total{kind=\"replay\",state=\"failed\"}"), 0);
  EXPECT_EQ(s.at("relay_jobs_finished_total{kind=\"dlq_retry\",state=\"cancelled\"}"), 0);
}

TEST(MetricsTest, FinishedJobsCountByKindAndStateAndRunningIsNoFinish) {
  RelayMetrics metrics("1.2.3");
  metrics.job_finished(JobKind::replay, JobState::failed);
  metrics.job_finished(JobKind::replay, JobState::failed);
  metrics.job_finished(JobKind::dlq_retry, JobState::done);
  metrics.job_finished(JobKind::dlq_retry, JobState::running);  // not a finish: no series
  const auto s = samples(metrics.scrape());
  EXPECT_EQ(s.at("relay_jobs_finished_total{kind=\"replay\",state=\"failed\"}"), 2);
  EXPECT_EQ(s.at("relay_jobs_finished_total{kind=\"replay\",state=\"done\"}"), 0);
  EXPECT_EQ(s.at("relay_jobs_finished_total{kind=\"dlq_retry\",state=\"done\"}"), 1);
  EXPECT_EQ(s.count("relay_jobs_finished_total{kind=\"dlq_retry\",state=\"running\"}"), 0u);
}

TEST(MetricsTest, PromtoolCheckMetricsPasses) {
  if (!promtool_available()) GTEST_SKIP() << "promtool not on PATH (Debian package prometheus)";
  RelayMetrics metrics("1.2.3");
  record_everything(metrics);
  for (AttemptOutcome outcome : {AttemptOutcome::timeout, AttemptOutcome::tls_error, AttemptOutcome::other}) {
    metrics.attempt("sub_c", outcome, 15);
  }
  metrics.http_request("/v1/subscriptions/{id}", "GET", 404, 0.001);
  const auto [status, output] = promtool_check(metrics.scrape());
  EXPECT_EQ(status, 0) << output;
  EXPECT_EQ(output, "") << "promtool lint findings";
}

TEST(MetricsTest, PromtoolRejectsBrokenExposition) {
  // Guards the test above against a promtool that accepts anything.
  if (!promtool_available()) GTEST_SKIP() << "promtool not on PATH (Debian package prometheus)";
  const auto [status, output] = promtool_check("# TYPE relay_requests counter\nrelay_requests 1\n");
  EXPECT_NE(status, 0);
  EXPECT_NE(output.find("_total"), std::string::npos) << output;
}

TEST(MetricsTest, HttpRequestsAreLabelledByRouteMethodAndCode) {
  RelayMetrics metrics("1.2.3");
  metrics.http_request("/v1/events", "POST", 202, 0.002);
  metrics.http_request("/v1/events", "POST", 202, 0.003);
  metrics.http_request("/v1/events", "POST", 400, 0.001);
  metrics.http_request("/v1/subscriptions/{id}", "DELETE", 204, 0.004);
  const auto s = samples(metrics.scrape());
  EXPECT_EQ(s.at("relay_http_requests_total{code=\"202\",method=\"POST\",route=\"/v1/events\"}"), 2);
  EXPECT_EQ(s.at("relay_http_requests_total{code=\"400\",method=\"POST\",route=\"/v1/events\"}"), 1);
  EXPECT_EQ(s.at("relay_http_requests_total{code=\"204\",method=\"DELETE\",route=\"/v1/subscriptions/{id}\"}"), 1);
  EXPECT_EQ(s.at("relay_http_request_duration_seconds_count{route=\"/v1/events\"}"), 3);
  EXPECT_DOUBLE_EQ(s.at("relay_http_request_duration_seconds_sum{route=\"/v1/events\"}"), 0.006);
  EXPECT_EQ(s.at("relay_http_request_duration_seconds_bucket{route=\"/v1/events\",le=\"0.0025\"}"), 2);
  EXPECT_EQ(s.at("relay_http_request_duration_seconds_count{route=\"/v1/subscriptions/{id}\"}"), 1);
}

TEST(MetricsTest, NonStandardMethodsShareOneSeries) {
  RelayMetrics metrics("1.2.3");
  metrics.http_request("unmatched", "BREW", 405, 0.001);
  metrics.http_request("unmatched", "PROPFIND", 405, 0.001);
  metrics.http_request("rejected", "", 400, 0);
  const auto s = samples(metrics.scrape());
  EXPECT_EQ(s.at("relay_http_requests_total{code=\"405\",method=\"other\",route=\"unmatched\"}"), 2);
  EXPECT_EQ(s.at("relay_http_requests_total{code=\"400\",method=\"other\",route=\"rejected\"}"), 1);
  EXPECT_EQ(s.count("relay_http_requests_total{code=\"405\",method=\"BREW\",route=\"unmatched\"}"), 0u);
}

TEST(MetricsTest, AttemptsAreLabelledBySubscriptionAndOutcomeName) {
  RelayMetrics metrics("1.2.3");
  const std::vector<std::pair<AttemptOutcome, std::string>> outcomes{
      {AttemptOutcome::success, "success"},
      {AttemptOutcome::http_4xx, "http_4xx"},
      {AttemptOutcome::http_5xx, "http_5xx"},
      {AttemptOutcome::timeout, "timeout"},
      {AttemptOutcome::connect_error, "connect_error"},
      {AttemptOutcome::dns_error, "dns_error"},
      {AttemptOutcome::tls_error, "tls_error"},
      {AttemptOutcome::blocked_destination, "blocked_destination"},
      {AttemptOutcome::other, "other"},
  };
  for (const auto& [outcome, name] : outcomes) metrics.attempt("sub_x", outcome, 0.1);
  metrics.attempt("sub_x", AttemptOutcome::http_5xx, 0.1);
  const auto s = samples(metrics.scrape());
  for (const auto& [outcome, name] : outcomes) {
    const double expected = outcome == AttemptOutcome::http_5xx ? 2 : 1;
    EXPECT_EQ(s.at("relay_delivery_attempts_total{outcome=\"" + name + "\",subscription=\"sub_x\"}"), expected)
        << name;
  }
  EXPECT_EQ(s.at("relay_delivery_attempt_duration_seconds_count{subscription=\"sub_x\"}"), 10);
}

TEST(MetricsTest, TerminalTransitionsCountPerSubscriptionAndLatencyReachesAnHour) {
  RelayMetrics metrics("1.2.3");
  metrics.delivery_succeeded("sub_a", 0.5);
  metrics.delivery_succeeded("sub_a", 3000);
  metrics.delivery_dead("sub_b");
  metrics.dlq_redriven(5);
  const auto s = samples(metrics.scrape());
  EXPECT_EQ(s.at("relay_deliveries_succeeded_total{subscription=\"sub_a\"}"), 2);
  EXPECT_EQ(s.at("relay_deliveries_dead_total{subscription=\"sub_b\"}"), 1);
  EXPECT_EQ(s.count("relay_deliveries_dead_total{subscription=\"sub_a\"}"), 0u);
  EXPECT_EQ(s.at("relay_dlq_redriven_total"), 5);
  EXPECT_EQ(s.at("relay_delivery_latency_seconds_bucket{le=\"1800\"}"), 1);
  EXPECT_EQ(s.at("relay_delivery_latency_seconds_bucket{le=\"3600\"}"), 2);
  EXPECT_EQ(s.at("relay_delivery_latency_seconds_bucket{le=\"+Inf\"}"), 2);
}

TEST(MetricsTest, GaugesHoldTheLastSnapshot) {
  RelayMetrics metrics("1.2.3");
  metrics.set_deliveries(1, 2, 3, 4);
  metrics.set_deliveries(10, 20, 30, 40);
  metrics.set_oldest_pending_age(12.5);
  metrics.set_subscriptions(3, 2);
  metrics.set_storage_bytes(1000, 200);
  metrics.set_storage_writable(false);
  metrics.set_circuit_state("sub_a", 2);
  metrics.set_circuit_state("sub_a", 1);
  metrics.set_circuit_state("sub_b", 0);
  const auto s = samples(metrics.scrape());
  EXPECT_EQ(s.at("relay_deliveries{state=\"pending\"}"), 10);
  EXPECT_EQ(s.at("relay_deliveries{state=\"scheduled\"}"), 20);
  EXPECT_EQ(s.at("relay_deliveries{state=\"in_flight\"}"), 30);
  EXPECT_EQ(s.at("relay_deliveries{state=\"dead\"}"), 40);
  EXPECT_EQ(s.at("relay_oldest_pending_age_seconds"), 12.5);
  EXPECT_EQ(s.at("relay_subscriptions{enabled=\"true\"}"), 3);
  EXPECT_EQ(s.at("relay_subscriptions{enabled=\"false\"}"), 2);
  EXPECT_EQ(s.at("relay_storage_bytes{kind=\"sst\"}"), 1000);
  EXPECT_EQ(s.at("relay_storage_bytes{kind=\"wal\"}"), 200);
  EXPECT_EQ(s.at("relay_storage_writable"), 0);
  EXPECT_EQ(s.at("relay_circuit_state{subscription=\"sub_a\"}"), 1);
  EXPECT_EQ(s.at("relay_circuit_state{subscription=\"sub_b\"}"), 0);
}

TEST(MetricsTest, StorageCommitsRecordDurationAndBatchSize) {
  RelayMetrics metrics("1.2.3");
  metrics.storage_commit(0.002, 1);
  metrics.storage_commit(0.02, 100);
  const auto s = samples(metrics.scrape());
  EXPECT_EQ(s.at("relay_storage_commit_duration_seconds_count"), 2);
  EXPECT_EQ(s.at("relay_storage_commit_duration_seconds_bucket{le=\"0.0025\"}"), 1);
  EXPECT_EQ(s.at("relay_storage_commit_batch_size_sum"), 101);
  EXPECT_EQ(s.at("relay_storage_commit_batch_size_bucket{le=\"1\"}"), 1);
  EXPECT_EQ(s.at("relay_storage_commit_batch_size_bucket{le=\"128\"}"), 2);
}

TEST(MetricsTest, ForgetSubscriptionRemovesOnlyItsSeries) {
  RelayMetrics metrics("1.2.3");
  for (const char* sub : {"sub_gone", "sub_kept"}) {
    metrics.attempt(sub, AttemptOutcome::success, 0.1);
    metrics.attempt(sub, AttemptOutcome::timeout, 15);
    metrics.delivery_succeeded(sub, 1);
    metrics.delivery_dead(sub);
    metrics.set_circuit_state(sub, 2);
  }
  metrics.forget_subscription("sub_gone");
  metrics.forget_subscription("sub_never_seen");
  const std::string text = metrics.scrape();
  EXPECT_EQ(text.find("sub_gone"), std::string::npos) << text;
  const auto s = samples(text);
  EXPECT_EQ(s.at("relay_delivery_attempts_total{outcome=\"timeout\",subscription=\"sub_kept\"}"), 1);
  EXPECT_EQ(s.at("relay_deliveries_dead_total{subscription=\"sub_kept\"}"), 1);
  EXPECT_EQ(s.at("relay_circuit_state{subscription=\"sub_kept\"}"), 2);

  // A later event for the same id starts from fresh series.
  metrics.attempt("sub_gone", AttemptOutcome::success, 0.1);
  const auto after = samples(metrics.scrape());
  EXPECT_EQ(after.at("relay_delivery_attempts_total{outcome=\"success\",subscription=\"sub_gone\"}"), 1);
  EXPECT_EQ(after.count("relay_delivery_attempts_total{outcome=\"timeout\",subscription=\"sub_gone\"}"), 0u);
}

TEST(MetricsTest, ASubscriptionsSeriesExistAtZeroFromItsCreationAndGoWithIt) {
  // Before: relay_deliveries_dead_total{subscription} appeared only with the first death, so
  // rate() and alerts over it saw nothing for a new subscription.
  RelayMetrics metrics("1.2.3");
  metrics.add_subscription("sub_new");
  metrics.add_subscription("sub_new");  // idempotent
  auto s = samples(metrics.scrape());
  EXPECT_EQ(s.at("relay_deliveries_dead_total{subscription=\"sub_new\"}"), 0);
  EXPECT_EQ(s.at("relay_deliveries_succeeded_total{subscription=\"sub_new\"}"), 0);
  EXPECT_EQ(s.at("relay_circuit_state{subscription=\"sub_new\"}"), 0);
  EXPECT_EQ(s.at("relay_delivery_attempt_duration_seconds_count{subscription=\"sub_new\"}"), 0);
  for (const char* outcome : {"success", "http_4xx", "http_5xx", "timeout", "connect_error", "dns_error", "tls_error",
                              "blocked_destination", "other"}) {
    const std::string series =
        std::string("relay_delivery_attempts_total{outcome=\"") + outcome + "\",subscription=\"sub_new\"}";
    EXPECT_EQ(s.count(series), 1u) << series;
  }
  // Recording keeps counting in the same series.
  metrics.delivery_dead("sub_new");
  metrics.attempt("sub_new", AttemptOutcome::timeout, 1);
  s = samples(metrics.scrape());
  EXPECT_EQ(s.at("relay_deliveries_dead_total{subscription=\"sub_new\"}"), 1);
  EXPECT_EQ(s.at("relay_delivery_attempts_total{outcome=\"timeout\",subscription=\"sub_new\"}"), 1);
  metrics.forget_subscription("sub_new");
  const std::string text = metrics.scrape();
  EXPECT_EQ(text.find("sub_new"), std::string::npos) << text;
}

TEST(MetricsTest, HeldDeliveriesAreAStateOfTheirOwn) {
  RelayMetrics metrics("1.2.3");
  metrics.set_deliveries(1, 2, 3, 4, 5);
  const auto s = samples(metrics.scrape());
  EXPECT_EQ(s.at("relay_deliveries{state=\"pending\"}"), 1);
  EXPECT_EQ(s.at("relay_deliveries{state=\"held\"}"), 5);
}

TEST(MetricsTest, ProcessMetricsDescribeThisProcess) {
  RelayMetrics metrics("1.2.3");
  const auto s = samples(metrics.scrape());
  EXPECT_GT(s.at("process_resident_memory_bytes"), 0);
  EXPECT_GE(s.at("process_virtual_memory_bytes"), s.at("process_resident_memory_bytes"));
  EXPECT_GE(s.at("process_open_fds"), 3);  // at least stdin, stdout, stderr
  EXPECT_GE(s.at("process_max_fds"), s.at("process_open_fds"));
  EXPECT_GE(s.at("process_cpu_seconds_total"), 0);
  // Started after 2020-01-01 and not after now.
  EXPECT_GT(s.at("process_start_time_seconds"), 1577836800);
  EXPECT_LE(s.at("process_start_time_seconds"), static_cast<double>(std::time(nullptr)) + 1);
}

TEST(MetricsTest, ConcurrentRecordingFromSeveralThreadsLosesNothing) {
  RelayMetrics metrics("1.2.3");
  constexpr int kThreads = 4;
  constexpr int kPerThread = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&metrics, t] {
      const std::string sub = "sub_" + std::to_string(t % 2);
      for (int i = 0; i < kPerThread; ++i) {
        metrics.http_request("/v1/events", "POST", 202, 0.001);
        metrics.attempt(sub, AttemptOutcome::success, 0.01);
        metrics.storage_commit(0.001, 4);
        if (i % 100 == 0) metrics.forget_subscription("sub_churn_" + std::to_string(t));
        metrics.set_circuit_state("sub_churn_" + std::to_string(t), 1);
        if (i % 500 == 0) (void)metrics.scrape();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  const auto s = samples(metrics.scrape());
  EXPECT_EQ(s.at("relay_http_requests_total{code=\"202\",method=\"POST\",route=\"/v1/events\"}"),
            kThreads * kPerThread);
  EXPECT_EQ(s.at("relay_delivery_attempts_total{outcome=\"success\",subscription=\"sub_0\"}") +
                s.at("relay_delivery_attempts_total{outcome=\"success\",subscription=\"sub_1\"}"),
            kThreads * kPerThread);
  EXPECT_EQ(s.at("relay_storage_commit_batch_size_count"), kThreads * kPerThread);
}

}  // namespace metrics_test
}  // namespace relay
