// Validation of API input common to the routes: request bodies and queries (events in
// event_parsing_test.cpp, subscription fields in subscription_fields_test.cpp).

#include "relay/api/request_parsing.h"

#include <gtest/gtest.h>

#include "tests/support/json_post_request.h"

namespace relay {
namespace request_parsing_test {

HttpRequest request(std::string body, std::string content_type = "application/json") {
  return test::json_post_request(std::move(body), std::move(content_type));
}

// ---- parse_json_object

TEST(ParseJsonObjectTest, AcceptsJsonMediaTypes) {
  for (const std::string& type : std::vector<std::string>{"application/json", "application/json; charset=utf-8", "Application/JSON",
                                 "application/cloudevents+json", "application/x-www-form-urlencoded", ""}) {
    auto body = parse_json_object(request(R"({"a": 1})", type));
    ASSERT_TRUE(body.ok()) << type;
    EXPECT_EQ((*body)["a"], 1);
  }
}

TEST(ParseJsonObjectTest, RefusesOtherMediaTypesAndBadBodies) {
  for (const std::string& type : std::vector<std::string>{"text/plain", "application/xml", "multipart/form-data; boundary=x", "json"}) {
    auto body = parse_json_object(request("{}", type));
    ASSERT_FALSE(body.ok()) << type;
    EXPECT_EQ(body.error().code, Errc::unsupported_media_type) << type;
  }
  for (const std::string& text : std::vector<std::string>{"", "{", "not json", "[1, 2]", "\"string\"", "42", "null", "{} {}",
                                 "{\"a\": \"\xff\"}"}) {
    auto body = parse_json_object(request(text));
    ASSERT_FALSE(body.ok()) << text;
    EXPECT_EQ(body.error().code, Errc::invalid_json) << text;
  }
}

// The bound nlohmann's parser keeps: 256 levels of arrays and objects, the body's own
// included, and no more, wherever they are (also in a body that ends before they close).
TEST(ParseJsonObjectTest, BoundsNestingAt256Levels) {
  const auto nested = [](std::size_t levels) {
    return R"({"a": )" + std::string(levels - 1, '[') + std::string(levels - 1, ']') + "}";
  };
  ASSERT_TRUE(parse_json_object(request(nested(256))).ok());
  for (const std::string& body : {nested(257), R"({"a": 1, "b": )" + std::string(300, '['),
                                  std::string(257, '[') + std::string(257, ']')}) {
    const auto parsed = parse_json_object(request(body));
    ASSERT_FALSE(parsed.ok()) << body.substr(0, 40);
    EXPECT_EQ(parsed.error().code, Errc::invalid_json);
    EXPECT_EQ(parsed.error().message, "the request body nests deeper than 256 levels");
  }
}

// ---- parse_query

TEST(ParseQueryTest, DecodesParameters) {
  auto q = parse_query("/v1/deliveries?state=dead&limit=10&event_type=meeting%2Ecompleted"
                       "&since=2026-11-26T10%3A00%3A00Z&flag");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(*q, (std::map<std::string, std::string>{{"state", "dead"},
                                                    {"limit", "10"},
                                                    {"event_type", "meeting.completed"},
                                                    {"since", "2026-11-26T10:00:00Z"},
                                                    {"flag", ""}}));
  q = parse_query("/v1/dlq");
  ASSERT_TRUE(q.ok());
  EXPECT_TRUE(q->empty());
  q = parse_query("/v1/dlq?");
  ASSERT_TRUE(q.ok());
  q = parse_query("/v1/dlq?cursor=1700000000000.dlv_00&x=%26%3D");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->at("cursor"), "1700000000000.dlv_00");
  EXPECT_EQ(q->at("x"), "&=");
}

TEST(ParseQueryTest, RejectsMalformedTargets) {
  for (const std::string& target : std::vector<std::string>{"/v1/dlq?a=%zz", "/v1/dlq?a=%", "v1/dlq?a=1", "?a=1", "http://host/v1/dlq?a=1",
                                   "/v1/dlq?a=b c", ""}) {
    auto q = parse_query(target);
    ASSERT_FALSE(q.ok()) << target;
    EXPECT_EQ(q.error().code, Errc::invalid_field);
  }
}

}  // namespace request_parsing_test
}  // namespace relay
