#include "relay/core/duration.h"

#include <gtest/gtest.h>

namespace relay {
namespace duration_test {

TEST(DurationTest, ParsesEverySuffix) {
  EXPECT_EQ(parse_duration_ms("1500ms"), 1'500);
  EXPECT_EQ(parse_duration_ms("5s"), 5'000);
  EXPECT_EQ(parse_duration_ms("10m"), 600'000);
  EXPECT_EQ(parse_duration_ms("1h"), 3'600'000);
  EXPECT_EQ(parse_duration_ms("72h"), 259'200'000);
  EXPECT_EQ(parse_duration_ms("7d"), 604'800'000);
  EXPECT_EQ(parse_duration_ms("0s"), 0);
  EXPECT_EQ(parse_duration_ms("0ms"), 0);
  EXPECT_EQ(parse_duration_ms("007s"), 7'000);
}

TEST(DurationTest, RejectsMalformedText) {
  for (const char* bad : {"", "5", "s", "ms", "-1s", "+1s", "1.5s", "5x", "5 s", " 5s", "5s ", "5S", "5sec",
                          "1e3s", "5m5s", "h1"}) {
    EXPECT_EQ(parse_duration_ms(bad), std::nullopt) << bad;
  }
}

TEST(DurationTest, RejectsOverflow) {
  // INT64_MAX / 86400000 = 106751991167.
  EXPECT_EQ(parse_duration_ms("106751991167d"), 106'751'991'167 * 86'400'000);
  EXPECT_EQ(parse_duration_ms("106751991168d"), std::nullopt);
  EXPECT_EQ(parse_duration_ms("999999999999999d"), std::nullopt);
  EXPECT_EQ(parse_duration_ms("99999999999999999999999ms"), std::nullopt);
}

TEST(DurationTest, FormatsTheShortestExactSpelling) {
  EXPECT_EQ(format_duration(0), "0s");
  EXPECT_EQ(format_duration(1), "1ms");
  EXPECT_EQ(format_duration(1'500), "1500ms");
  EXPECT_EQ(format_duration(1'000), "1s");
  EXPECT_EQ(format_duration(90'000), "90s");
  EXPECT_EQ(format_duration(600'000), "10m");
  EXPECT_EQ(format_duration(3'600'000), "1h");
  EXPECT_EQ(format_duration(5'400'000), "90m");
  EXPECT_EQ(format_duration(86'400'000), "1d");
  EXPECT_EQ(format_duration(604'800'000), "7d");
}

TEST(DurationTest, FormatAndParseRoundTrip) {
  for (std::int64_t ms : {std::int64_t{0}, std::int64_t{1}, std::int64_t{999}, std::int64_t{1'000},
                          std::int64_t{1'500}, std::int64_t{59'999}, std::int64_t{60'000}, std::int64_t{3'599'000},
                          std::int64_t{86'400'001}, std::int64_t{999'999'999'999'999}}) {
    EXPECT_EQ(parse_duration_ms(format_duration(ms)), ms) << ms;
  }
  for (const char* text : {"5s", "10m", "1h", "7d", "1500ms", "120s", "25h", "106751991167d"}) {
    const std::optional<std::int64_t> ms = parse_duration_ms(text);
    ASSERT_TRUE(ms.has_value()) << text;
    EXPECT_EQ(parse_duration_ms(format_duration(*ms)), ms) << text;
  }
  EXPECT_EQ(format_duration(*parse_duration_ms("120s")), "2m");
  EXPECT_EQ(format_duration(*parse_duration_ms("24h")), "1d");
}

}  // namespace duration_test
}  // namespace relay
