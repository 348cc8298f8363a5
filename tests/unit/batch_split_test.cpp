// Splitting an event batch by shard and putting the answers back (relay/cluster/batch_split.h).

#include "relay/cluster/batch_split.h"

#include <gtest/gtest.h>

namespace relay::cluster {
namespace batch_split_test {

TEST(BatchSplitTest, ASubBatchHoldsTheChosenEventsAsWritten) {
  const std::vector<std::string_view> texts{R"({"type":"a","payload":1})", R"({ "type" : "b", "payload" : [1, 2] })",
                                            R"({"type":"c","payload":null})"};
  EXPECT_EQ(sub_batch_body(texts, {2, 0}), R"({"events":[{"type":"c","payload":null},{"type":"a","payload":1}]})");
  EXPECT_EQ(sub_batch_body(texts, {1}), R"({"events":[{ "type" : "b", "payload" : [1, 2] }]})");
}

TEST(BatchSplitTest, ASubBatchAnswerGivesOneResultPerEvent) {
  const auto results = sub_batch_results(
      200, R"({"results":[{"deliveries":1,"id":"evt_1"},{"error":{"code":"invalid_field","message":"m"}}]})", 2);
  ASSERT_TRUE(results);
  EXPECT_EQ(*results, (std::vector<std::string>{R"({"deliveries":1,"id":"evt_1"})",
                                                R"({"error":{"code":"invalid_field","message":"m"}})"}));
  EXPECT_FALSE(sub_batch_results(200, R"({"results":[{"deliveries":1,"id":"evt_1"}]})", 2));  // one short
  EXPECT_FALSE(sub_batch_results(503, R"({"results":[]})", 0));
  EXPECT_FALSE(sub_batch_results(200, "nonsense", 1));
  EXPECT_FALSE(sub_batch_results(200, R"({"results":[1]})", 1));
}

TEST(BatchSplitTest, ARefusedSubBatchGivesItsErrorToEachEvent) {
  EXPECT_EQ(error_object(R"({"error": {"code": "unavailable", "message": "relay is shutting down"}})"),
            R"({"error":{"code":"unavailable","message":"relay is shutting down"}})");
  EXPECT_FALSE(error_object(R"({"results": []})"));
  EXPECT_FALSE(error_object("<html>"));
}

TEST(BatchSplitTest, TheAnswerListsResultsInOrder) {
  EXPECT_EQ(batch_answer({R"({"a":1})", R"({"b":2})"}), R"({"results":[{"a":1},{"b":2}]})");
}

}  // namespace batch_split_test
}  // namespace relay::cluster
