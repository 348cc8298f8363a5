// Times as text: RFC 3339 UTC with milliseconds out, RFC 3339 or Unix milliseconds in, and what
// format_time writes parse_time reads back.

#include "relay/core/time.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace relay {
namespace time_test {

constexpr UnixMillis kT = 1'795'687'200'123;      // 2026-11-26T10:00:00.123Z
constexpr UnixMillis kNov26 = 1'795'687'200'000;  // 2026-11-26T10:00:00Z

TEST(FormatTimeTest, FormatTimeIsRfc3339UtcWithMilliseconds) {
  EXPECT_EQ(format_time(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(format_time(kT), "2026-11-26T10:00:00.123Z");
  EXPECT_EQ(format_time(951'868'799'999), "2000-02-29T23:59:59.999Z");
  for (UnixMillis t : {UnixMillis{0}, UnixMillis{1}, kT, UnixMillis{253'402'300'799'999}}) {
    EXPECT_EQ(parse_time(format_time(t)), t) << t;
  }
}

TEST(ParseTimeTest, AcceptsRfc3339UtcAndUnixMillis) {
  EXPECT_EQ(parse_time("2026-11-26T10:00:00Z"), kNov26);
  EXPECT_EQ(parse_time("2026-11-26T10:00:00.5Z"), kNov26 + 500);
  EXPECT_EQ(parse_time("2026-11-26T10:00:00.05Z"), kNov26 + 50);
  EXPECT_EQ(parse_time("2026-11-26T10:00:00.123Z"), kNov26 + 123);
  EXPECT_EQ(parse_time("2026-11-26T10:00:00.123999Z"), kNov26 + 123);  // truncated to ms
  EXPECT_EQ(parse_time("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(parse_time("2000-02-29T23:59:59Z"), 951'868'799'000);
  EXPECT_EQ(parse_time("1795687200000"), kNov26);
  EXPECT_EQ(parse_time("0"), 0);
}

TEST(ParseTimeTest, RejectsEverythingElse) {
  for (const std::string& text : std::vector<std::string>{"", "2026-11-26", "2026-11-26T10:00:00", "2026-11-26T10:00:00+01:00", "2026-11-26T10:00:00.Z",
        "2026-11-26T10:00:00ZZ", "2026-11-26T10:00Z", "2026-13-01T00:00:00Z", "2026-11-32T00:00:00Z",
        "2026-11-26T25:00:00Z", "2026-11-26 10:00:00Z", "yesterday", "-5", "1.5", "12ab", "99999999999999999999",
        "2026-11-26T10:00:00Z\n", std::string("2026-11-26T10:00:00Z\0x", 22)}) {
    EXPECT_FALSE(parse_time(text).has_value()) << text;
  }
}

}  // namespace time_test
}  // namespace relay
