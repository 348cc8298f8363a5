#include "relay/cluster/bulk_merge.h"

namespace relay::cluster {

using nlohmann::json;

namespace {

// The job of a 202 {"job": {...}} answer.
std::optional<json> job_of(const ShardAnswer& answer) {
  if (!answer.answered || answer.status != 202) return std::nullopt;
  json body = json::parse(answer.body, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) return std::nullopt;
  auto job = body.find("job");
  if (job == body.end() || !job->is_object() || !job->contains("id")) return std::nullopt;
  return std::move(*job);
}

}  // namespace

std::optional<RedriveOutcome> parse_redrive(const ShardAnswer& answer) {
  if (!answer.answered) return std::nullopt;
  if (answer.status == 202) {
    auto job = job_of(answer);
    if (!job) return std::nullopt;
    return RedriveOutcome{0, std::move(job)};
  }
  if (answer.status != 200) return std::nullopt;
  const json body = json::parse(answer.body, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) return std::nullopt;
  const auto retried = body.find("retried");
  if (retried == body.end() || !retried->is_number_unsigned()) return std::nullopt;
  return RedriveOutcome{retried->get<std::uint64_t>(), std::nullopt};
}

std::optional<BulkAnswer> merge_redrive(const std::vector<ShardAnswer>& answers) {
  std::uint64_t retried = 0;
  json jobs = json::array();
  std::vector<std::string> incomplete;
  bool any = false;
  for (const auto& answer : answers) {
    auto outcome = parse_redrive(answer);
    if (!outcome) {
      incomplete.push_back(answer.shard);
      continue;
    }
    any = true;
    retried += outcome->retried;
    if (outcome->job) jobs.push_back(std::move(*outcome->job));
  }
  if (!any) return std::nullopt;
  BulkAnswer out;
  if (jobs.empty()) {
    out.body = {{"retried", retried}};
  } else {
    out.status = 202;
    out.body = {{"job", jobs.front()}, {"jobs", std::move(jobs)}, {"retried", retried}};
  }
  if (!incomplete.empty()) out.body["incomplete"] = std::move(incomplete);
  return out;
}

std::optional<BulkAnswer> merge_replay(const std::vector<ShardAnswer>& answers) {
  json jobs = json::array();
  std::vector<std::string> incomplete;
  for (const auto& answer : answers) {
    auto job = job_of(answer);
    if (!job) {
      incomplete.push_back(answer.shard);
      continue;
    }
    jobs.push_back(std::move(*job));
  }
  if (jobs.empty()) return std::nullopt;
  BulkAnswer out;
  out.status = 202;
  out.body = {{"job", jobs.front()}, {"jobs", std::move(jobs)}};
  if (!incomplete.empty()) out.body["incomplete"] = std::move(incomplete);
  return out;
}

}  // namespace relay::cluster
