// Adding up a bulk call's answers from every shard (relay/cluster/bulk_merge.h): redrive counts,
// jobs, and shards without a usable answer.

#include "relay/cluster/bulk_merge.h"

#include <gtest/gtest.h>

namespace relay::cluster {
namespace bulk_merge_test {

using nlohmann::json;

ShardAnswer retried(std::string shard, std::uint64_t n) {
  return {std::move(shard), true, 200, json{{"retried", n}}.dump()};
}
json job(std::string id) { return {{"id", std::move(id)}, {"kind", "dlq_retry"}, {"state", "running"}}; }
ShardAnswer started(std::string shard, const json& j) { return {std::move(shard), true, 202, json{{"job", j}}.dump()}; }

TEST(BulkMergeTest, InlineRedrivesAddUp) {
  const auto merged = merge_redrive({retried("a", 3), retried("b", 0), retried("c", 7)});
  ASSERT_TRUE(merged);
  EXPECT_EQ(merged->status, 200);
  EXPECT_EQ(merged->body, (json{{"retried", 10}}));
}

TEST(BulkMergeTest, ARedriveThatStartedJobsAnswersThemAllAndWhatWasRedrivenInline) {
  const auto merged = merge_redrive({started("a", job("job_a")), retried("b", 4), started("c", job("job_c"))});
  ASSERT_TRUE(merged);
  EXPECT_EQ(merged->status, 202);
  EXPECT_EQ(merged->body["job"], job("job_a"));
  EXPECT_EQ(merged->body["jobs"], json::array({job("job_a"), job("job_c")}));
  EXPECT_EQ(merged->body["retried"], 4);
  EXPECT_FALSE(merged->body.contains("incomplete"));
}

TEST(BulkMergeTest, ShardsWithoutAUsableAnswerAreIncomplete) {
  const auto merged = merge_redrive({retried("a", 2), ShardAnswer::missing("b"),
                                     ShardAnswer{"c", true, 503, R"({"error":{"code":"unavailable","message":"x"}})"},
                                     ShardAnswer{"d", true, 200, R"({"retried":-1})"}});
  ASSERT_TRUE(merged);
  EXPECT_EQ(merged->body, (json{{"retried", 2}, {"incomplete", {"b", "c", "d"}}}));
  EXPECT_FALSE(merge_redrive({ShardAnswer::missing("b")}));
}

TEST(BulkMergeTest, ReplaysListEveryShardsJob) {
  const json a = job("job_a"), b = job("job_b");
  const auto merged = merge_replay({started("a", a), ShardAnswer{"x", true, 404, "{}"}, started("b", b)});
  ASSERT_TRUE(merged);
  EXPECT_EQ(merged->status, 202);
  EXPECT_EQ(merged->body, (json{{"job", a}, {"jobs", {a, b}}, {"incomplete", {"x"}}}));
  EXPECT_FALSE(merge_replay({retried("a", 1)}));
}

}  // namespace bulk_merge_test
}  // namespace relay::cluster
