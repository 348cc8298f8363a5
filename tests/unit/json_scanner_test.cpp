// JsonScanner: accepts exactly what nlohmann::json::accept accepts (edge cases of every token),
// bounds nesting, and compacts a value to its text without whitespace between tokens.

#include "relay/api/json_scanner.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace relay {
namespace json_scanner_test {

// The whole text as one value, as nlohmann::json::accept reads it.
bool scans(std::string_view text, int max_depth = JsonScanner::kDepthLimit) {
  JsonScanner scanner(text);
  std::string compact;
  return scanner.value(max_depth, compact).has_value() && scanner.at_end();
}

std::string compacted(std::string_view text) {
  JsonScanner scanner(text);
  std::string compact;
  const auto value = scanner.value(JsonScanner::kDepthLimit, compact);
  EXPECT_TRUE(value.has_value() && scanner.at_end()) << text;
  return compact;
}

TEST(JsonScannerTest, AcceptsExactlyWhatNlohmannAccepts) {
  const std::vector<std::string> texts = {
      // Literals and structure.
      "true", "false", "null", "tru", "nul", "True", "nulll", "[]", "{}", " [ ] ", "[1,]", "[,1]", "{\"a\":1,}",
      "{\"a\"}", "{\"a\":}", "{1:2}", "{\"a\" 1}", "[1 2]", "[1,,2]", "{\"a\":1 \"b\":2}", "]", "}", "[}", "{]",
      "[[[]]]", "[[[]]", "1 2", "", " ", "\t\r\n 0 \t\r\n", "\v0", "\f0", "[1]x", "{}{}",
      // Numbers.
      "0", "-0", "-", "01", "-01", "1.", ".5", "1.5", "1e5", "1E5", "1e+5", "1e-5", "1e", "1e+", "+1", "0x10",
      "1.5e308", "1.7976931348623157e308", "1.7976931348623158e308", "1.7976931348623159e308", "1.8e308",
      "-1.7976931348623159e308", "1e308", "1e309", "10e307", "100e307", "0.1e309", "0.01e310", "0.001e310",
      "1e-400", "-1e-400", "0e99999999999999999999", "0.000e99999", "1e2147483648", "1e-2147483649",
      "1e0000000000000000000000000000005", std::string(308, '9'), std::string(309, '9'), "-" + std::string(309, '1'),
      std::string(308, '1') + ".99e0", "0." + std::string(400, '0') + "1e400", "0." + std::string(400, '0') + "1e712",
      "18446744073709551615", "18446744073709551616", "-9223372036854775809", "Infinity", "NaN", "-Infinity",
      // Strings.
      "\"\"", "\"abc\"", "\"abc", "\"a\\\"b\"", "\"\\\\\"", "\"\\/\"", "\"\\b\\f\\n\\r\\t\"", "\"\\x\"", "\"\\'\"",
      "\"\\u0041\"", "\"\\u004\"", "\"\\u00G1\"", "\"\\uABCD\"", "\"\\uabcd\"", "\"\\u0000\"", "\"\\ud83c\\udf89\"",
      "\"\\ud83c\"", "\"\\ud83c x\"", "\"\\ud83c\\u0041\"", "\"\\ud83c\\ud83c\"", "\"\\udf89\"", "\"\\udf89\\ud83c\"",
      "\"\\ud83c\\", "\"\\ud83c\\u", "\"\\ud83c\\udf8\"", "\"\\",
      std::string("\"a\0b\"", 5), "\"a\tb\"", "\"a\nb\"", "\"\x1f\"", "\"\x7f\"", "\"\x20\"",
      "\"plain ascii longer than eight bytes, with \\\"escapes\\\" in it\"",
      // UTF-8.
      "\"\xc3\xa9\"", "\"\xe4\xbc\x9a\"", "\"\xf0\x9f\x8e\x89\"", "\"\xf4\x8f\xbf\xbf\"", "\"\xf4\x90\x80\x80\"",
      "\"\xc0\xaf\"", "\"\xc1\xbf\"", "\"\xc2\x80\"", "\"\xdf\xbf\"", "\"\xe0\x80\xaf\"", "\"\xe0\xa0\x80\"",
      "\"\xed\x9f\xbf\"", "\"\xed\xa0\x80\"", "\"\xee\x80\x80\"", "\"\xef\xbf\xbf\"", "\"\xf0\x8f\xbf\xbf\"",
      "\"\xf0\x90\x80\x80\"", "\"\xf5\x80\x80\x80\"", "\"\xff\"", "\"\x80\"", "\"\xbf\"", "\"\xe4\xbc\"", "\"\xe4\"",
      "\"\xf0\x9f\x8e\"", "\"\xc3\"", "\"\xc3\x28\"", "\"\xe4\xbc\x28\"", "\xc3\xa9",
      "\"12345678\xc3\xa9 abcdefgh\xe4\xbc\x9a\"", "\"1234567\x01\"",
      // Values in containers.
      "{\"a\":[1,{\"b\":null}],\"c\":\"d\"}", "[\"a\",\"b\"", "{\"a\":\"b\"", "[true,false,null]", "[-]", "[1.e5]",
      "{\"\xff\":1}", "{\"\\ud83c\":1}",
      // A NUL byte where a token may start ends the text for nlohmann; elsewhere it is an error.
      std::string("1\0x", 3), std::string("12\0", 3), std::string("[1]\0]]", 5), std::string(" \0", 2),
      std::string("[1,\0]", 5), std::string("tr\0ue", 5), std::string("-\0", 2), std::string("\"a\0\"", 4),
      std::string("{\"a\":1}\0{", 9), std::string("\0", 1),
  };
  for (const std::string& text : texts) {
    EXPECT_EQ(scans(text), nlohmann::json::accept(text)) << "'" << text << "'";
  }
}

TEST(JsonScannerTest, ChecksEveryByteOfAStringWhateverItsPosition) {
  // Strings are read 16 bytes at a time: put each kind of byte at every offset of two blocks.
  const std::vector<std::string> specials = {
      "\"",     "\\\"", "\\n",   "\\u00e9",       "\\ud83c\\udf89", "\\x", "\x01", "\x1f", "\x7f",
      "\xc3\xa9", "\xe4\xbc\x9a", "\xc3",  "\xed\xa0\x80", "\x80", "\xff", "\\", std::string(1, '\0')};
  for (std::size_t offset = 0; offset < 40; ++offset) {
    for (const std::string& special : specials) {
      const std::string text = "[\"" + std::string(offset, 'a') + special + std::string(20, 'b') + "\"]";
      EXPECT_EQ(scans(text), nlohmann::json::accept(text)) << offset << " '" << special << "'";
    }
  }
}

TEST(JsonScannerTest, ANulByteEndsTheTextLikeForNlohmann) {
  const std::string text("{\"a\": [1, 2]} \0 ]]", 18);
  JsonScanner scanner(text);
  std::string compact;
  EXPECT_EQ(scanner.value(2, compact), "{\"a\": [1, 2]}");
  EXPECT_EQ(compact, "{\"a\":[1,2]}");
  EXPECT_TRUE(scanner.at_end());
  EXPECT_EQ(scanner.offset(), 14u);
}

TEST(JsonScannerTest, BoundsNesting) {
  EXPECT_TRUE(scans(std::string(256, '[') + std::string(256, ']')));
  EXPECT_FALSE(scans(std::string(257, '[') + std::string(257, ']')));
  EXPECT_TRUE(scans("[{\"a\":[]}]", 3));
  EXPECT_FALSE(scans("[{\"a\":[]}]", 2));
  EXPECT_TRUE(scans("[[],[],{}]", 2));  // siblings do not add up
  EXPECT_TRUE(scans("1", 0));
  EXPECT_FALSE(scans("[]", 0));
  EXPECT_FALSE(scans(std::string(300, '[') + std::string(300, ']'), 1000));  // at most kDepthLimit
}

TEST(JsonScannerTest, CompactsWithoutChangingTokens) {
  EXPECT_EQ(compacted(" { \"a\" : [ 1 , 2.50 , -1E+2 ] ,\n\t\"b c\" : \"x \\\" y\" , \"d\":{ } } "),
            "{\"a\":[1,2.50,-1E+2],\"b c\":\"x \\\" y\",\"d\":{}}");
  EXPECT_EQ(compacted("[\"\\u00e9\", \"\\ud83c\\udf89\", \"a\\tb\"]"), "[\"\\u00e9\",\"\\ud83c\\udf89\",\"a\\tb\"]");
  EXPECT_EQ(compacted("  42  "), "42");
  EXPECT_EQ(compacted("\"  spaces  inside  \""), "\"  spaces  inside  \"");
  EXPECT_EQ(compacted("{\"a\":1}"), "{\"a\":1}");
}

TEST(JsonScannerTest, ReadsMembersOneAtATime) {
  JsonScanner scanner(R"( { "type" : "t" , "payload" : [ 1, 2 ] } )");
  ASSERT_TRUE(scanner.consume('{'));
  EXPECT_EQ(scanner.string(), "\"type\"");
  ASSERT_TRUE(scanner.consume(':'));
  EXPECT_EQ(scanner.value(1), "\"t\"");
  ASSERT_TRUE(scanner.consume(','));
  EXPECT_FALSE(scanner.consume('}'));
  EXPECT_EQ(scanner.string(), "\"payload\"");
  ASSERT_TRUE(scanner.consume(':'));
  std::string compact = "replaced";
  EXPECT_EQ(scanner.value(1, compact), "[ 1, 2 ]");
  EXPECT_EQ(compact, "[1,2]");
  EXPECT_FALSE(scanner.at_end());
  ASSERT_TRUE(scanner.consume('}'));
  EXPECT_TRUE(scanner.at_end());

  JsonScanner not_a_string("  5");
  EXPECT_FALSE(not_a_string.string());
}

}  // namespace json_scanner_test
}  // namespace relay
