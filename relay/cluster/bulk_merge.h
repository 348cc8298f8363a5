#pragma once
// Adding up the answers of a bulk call that ran on every shard (spec section 7: bulk calls run
// on every shard and add up): POST /v1/dlq/retry and POST /v1/subscriptions/{id}/replay. Pure
// functions over the API's JSON forms.
//
// A shard answers a redrive with 200 {"retried": N} (redriven before the answer) or 202
// {"job": {...}} (a dlq_retry job started for more than 1,000 matches), and a replay with 202
// {"job": {...}}. The cluster's answer keeps the single node's form and adds what only a cluster
// has:
//   redrive, no job started    200 {"retried": sum}
//   redrive, some job started  202 {"job": first job, "jobs": [every job], "retried": sum of the
//                              inline redrives}
//   replay                     202 {"job": first job, "jobs": [every job]}
// Shards are given this shard first, so "job" is the entry shard's own job when it started one;
// a client written for a single node follows it and sees that shard's part, "jobs" has them all.
// Either adds "incomplete": [...] naming the shards without a usable answer.

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace relay::cluster {

struct ShardAnswer {
  std::string shard;
  bool answered = false;  // false: no answer (failed, timed out)
  int status = 0;
  std::string body;

  static ShardAnswer missing(std::string shard) { return {std::move(shard), false, 0, {}}; }
};

struct BulkAnswer {
  int status = 200;
  nlohmann::json body;
};

// What one shard's redrive did: `retried` redriven inline, or the job it started; nullopt when
// the answer is not a redrive's (an error, a failure, nonsense).
struct RedriveOutcome {
  std::uint64_t retried = 0;
  std::optional<nlohmann::json> job;
};
std::optional<RedriveOutcome> parse_redrive(const ShardAnswer& answer);

// The cluster's answer from every shard's; nullopt when no shard gave a usable answer.
std::optional<BulkAnswer> merge_redrive(const std::vector<ShardAnswer>& answers);
std::optional<BulkAnswer> merge_replay(const std::vector<ShardAnswer>& answers);

}  // namespace relay::cluster
