// Events as published: the tree reference (parse_new_event), the ingest hot path
// (parse_event_body) and the batch body, with the same rules and errors.

#include "relay/api/event_parsing.h"

#include <gtest/gtest.h>

#include <cstdlib>

#include "relay/api/request_parsing.h"

#include "tests/support/json_post_request.h"

namespace relay {
namespace event_parsing_test {

using nlohmann::json;

HttpRequest request(std::string body, std::string content_type = "application/json") {
  return test::json_post_request(std::move(body), std::move(content_type));
}

// ---- parse_new_event

TEST(ParseNewEventTest, AcceptsAnEventAndCompactsThePayload) {
  auto event = parse_new_event(json::parse(R"({"type": "meeting.completed", "payload": {"a": [1, 2], "b": "x"},
                                               "id": "client-1"})"),
                               "");
  ASSERT_TRUE(event.ok()) << event.error().message;
  EXPECT_EQ(event->type, "meeting.completed");
  EXPECT_EQ(*event->payload, R"({"a":[1,2],"b":"x"})");
  EXPECT_EQ(event->client_id, "client-1");

  for (const std::string& payload : std::vector<std::string>{"null", "0", "\"text\"", "[]", "{}", "true"}) {
    auto e = parse_new_event(json::parse(R"({"type": "t", "payload": )" + payload + "}"), "");
    ASSERT_TRUE(e.ok()) << payload;
    EXPECT_EQ(*e->payload, payload);
    EXPECT_TRUE(e->client_id.empty());
  }
}

TEST(ParseNewEventTest, IdempotencyKeyHeaderIsTheClientId) {
  const json body = json::parse(R"({"type": "t", "payload": 1})");
  auto e = parse_new_event(body, "key-1");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->client_id, "key-1");

  json with_id = body;
  with_id["id"] = "key-1";
  e = parse_new_event(with_id, "key-1");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->client_id, "key-1");

  with_id["id"] = nullptr;
  e = parse_new_event(with_id, "");
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(e->client_id.empty());

  with_id["id"] = std::string(256, 'k');
  EXPECT_TRUE(parse_new_event(with_id, "").ok());
  EXPECT_TRUE(parse_new_event(body, std::string(256, 'k')).ok());
}

TEST(ParseNewEventTest, RejectsBadEvents) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"([])", ""},
      {R"("event")", ""},
      {R"({})", ""},
      {R"({"payload": 1})", ""},
      {R"({"type": 5, "payload": 1})", ""},
      {R"({"type": null, "payload": 1})", ""},
      {R"({"type": "", "payload": 1})", ""},
      {R"({"type": "has space", "payload": 1})", ""},
      {R"({"type": "meeting.*", "payload": 1})", ""},
      {R"({"type": ")" + std::string(129, 'x') + R"(", "payload": 1})", ""},
      {R"({"type": "t"})", ""},
      {R"({"type": "t", "payload": 1, "extra": true})", ""},
      {R"({"type": "t", "payload": 1, "id": 5})", ""},
      {R"({"type": "t", "payload": 1, "id": ""})", ""},
      {R"({"type": "t", "payload": 1, "id": ")" + std::string(257, 'k') + R"("})", ""},
      {R"({"type": "t", "payload": 1, "id": "a"})", "b"},
      {R"({"type": "t", "payload": 1})", std::string(257, 'k')},
  };
  for (const auto& [body, header] : cases) {
    auto e = parse_new_event(json::parse(body), header);
    ASSERT_FALSE(e.ok()) << body << " / " << header;
    EXPECT_EQ(e.error().code, Errc::invalid_field) << body;
    EXPECT_FALSE(e.error().message.empty());
  }
}

TEST(ParseNewEventTest, ADeeplyNestedPayloadDoesNotCrash) {
  // Well under --max-body (1 MiB): an ingest key must not be able to take relayd down. Either
  // answer is fine, a crash is not. Run in a child so that a stack overflow fails only this test.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  constexpr std::size_t kDepth = 400'000;
  const std::string body = R"({"type": "t", "payload": )" + std::string(kDepth, '[') + std::string(kDepth, ']') + "}";
  auto ingest = [&] {
    auto parsed = parse_json_object(request(body));
    if (parsed.ok()) {
      auto event = parse_new_event(*parsed, "");
      if (event.ok() && event->payload->size() != 2 * kDepth) std::_Exit(3);
    }
    std::_Exit(0);
  };
  EXPECT_EXIT(ingest(), ::testing::ExitedWithCode(0), "");
}

// ---- parse_event_body (the ingest hot path: no tree, the same rules and errors)

// What the tree parser makes of the same request.
Result<mutations::NewEvent> parse_with_tree(const HttpRequest& req, std::string_view idempotency_key) {
  auto body = parse_json_object(req);
  if (!body.ok()) return body.error();
  return parse_new_event(*body, idempotency_key);
}

TEST(ParseEventBodyTest, KeepsThePayloadAsWrittenWithoutWhitespace) {
  auto event = parse_event_body(request(R"( {"type" : "meeting.completed",
      "payload": { "a" : [1, 2.50, -1E+2, true, null], "b": "x y\t\u00e9\"", "c" : {} },
      "id": "client-1"} )"),
                                "");
  ASSERT_TRUE(event.ok()) << event.error().message;
  EXPECT_EQ(event->type, "meeting.completed");
  EXPECT_EQ(*event->payload, R"({"a":[1,2.50,-1E+2,true,null],"b":"x y\t\u00e9\"","c":{}})");
  EXPECT_EQ(event->client_id, "client-1");

  for (const std::string& payload : std::vector<std::string>{"null", "0", "\"text\"", "[]", "{}", "true", "-0.5e-7"}) {
    auto e = parse_event_body(request(R"({"type": "t", "payload": )" + payload + "}"), "");
    ASSERT_TRUE(e.ok()) << payload;
    EXPECT_EQ(*e->payload, payload);
    EXPECT_TRUE(e->client_id.empty());
  }
}

// Tenant and ordering key (1.1): optional, null is none, both parsers agree on value and error.
TEST(ParseEventBodyTest, TakesTenantAndOrderingKey) {
  const auto both = [](const std::string& body) {
    auto fast = parse_event_body(request(body), "");
    auto tree = parse_with_tree(request(body), "");
    EXPECT_EQ(fast.ok(), tree.ok()) << body;
    if (fast.ok() && tree.ok()) {
      EXPECT_EQ(fast->tenant, tree->tenant) << body;
      EXPECT_EQ(fast->ordering_key, tree->ordering_key) << body;
    } else if (!fast.ok() && !tree.ok()) {
      EXPECT_EQ(fast.error().message, tree.error().message) << body;
    }
    return fast;
  };
  auto event = both(R"({"type":"t","payload":1,"tenant":"customer_42","ordering_key":"cal 7 é"})");
  ASSERT_TRUE(event.ok()) << event.error().message;
  EXPECT_EQ(event->tenant, "customer_42");
  EXPECT_EQ(event->ordering_key, "cal 7 \xc3\xa9");
  event = both(R"({"type":"t","payload":1,"tenant":null,"ordering_key":null})");
  ASSERT_TRUE(event.ok());
  EXPECT_TRUE(event->tenant.empty());
  EXPECT_TRUE(event->ordering_key.empty());

  for (const std::string& tenant :
       std::vector<std::string>{R"("")", R"("a b")", R"("é")", "1", "[]", '"' + std::string(129, 'a') + '"'}) {
    event = both(R"({"type":"t","payload":1,"tenant":)" + tenant + "}");
    ASSERT_FALSE(event.ok()) << tenant;
    EXPECT_EQ(event.error().message, "field 'tenant' must be 1-128 characters of [A-Za-z0-9._:-]");
  }
  for (const std::string& key : std::vector<std::string>{R"("")", "7", '"' + std::string(257, 'k') + '"'}) {
    event = both(R"({"type":"t","payload":1,"ordering_key":)" + key + "}");
    ASSERT_FALSE(event.ok()) << key;
    EXPECT_EQ(event.error().message, "field 'ordering_key' must be a string of 1-256 characters");
  }
  EXPECT_TRUE(both(R"({"type":"t","payload":1,"ordering_key":")" + std::string(256, 'k') + R"("})").ok());
}

TEST(ParseEventBodyTest, AcceptsWhatTheTreeParserAccepts) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"type":"t","payload":1})", ""},
      {R"({"payload":{"k":[{"x":"y"}]},"id":"a","type":"a.b"})", ""},
      {R"({"type":"t","payload":1,"id":null})", "key-1"},
      {R"({"type":"t","payload":1,"id":"key-1"})", "key-1"},
      {R"({"type":"t","payload":1,"type":"u","payload":[2],"id":"x","id":null})", ""},  // the last one counts
      {R"({"\u0074ype":"meeting\u002ecompleted","pay\u006coad":"\ud83c\udf89","\u0069d":"c\u0031"})", ""},
      {R"({"type":"t","payload":"r\u00e9union \u4f1a\u8bae"})", ""},
      {"{\"type\":\"t\",\"payload\":\"r\xc3\xa9union \xe4\xbc\x9a\xe8\xae\xae \xf0\x9f\x8e\x89\"}", ""},
      {R"({"type":"t","payload":[1.7976931348623157e308,1e-400,0e999999999999999999999,)" + std::string(308, '9') + "]}", ""},
      {R"({"type":"t","payload":)" + std::string(255, '[') + std::string(255, ']') + "}", ""},
  };
  for (const auto& [body, header] : cases) {
    auto fast = parse_event_body(request(body), header);
    auto tree = parse_with_tree(request(body), header);
    ASSERT_TRUE(tree.ok()) << body << ": " << tree.error().message;
    ASSERT_TRUE(fast.ok()) << body << ": " << fast.error().message;
    EXPECT_EQ(fast->type, tree->type) << body;
    EXPECT_EQ(fast->client_id, tree->client_id) << body;
    EXPECT_EQ(json::parse(*fast->payload), json::parse(*tree->payload)) << body;
  }
}

TEST(ParseEventBodyTest, RefusesWithTheTreeParsersErrors) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      // Not JSON, or not an object.
      {"", ""},
      {"{", ""},
      {"not json", ""},
      {"{} {}", ""},
      {R"({"type": "t", "payload": 1,})", ""},
      {R"({"type": "t", "payload": 1} trailing)", ""},
      {R"({"type" "t", "payload": 1})", ""},
      {R"({type: "t", "payload": 1})", ""},
      {"{\"type\": \"t\", \"payload\": \"\xff\"}", ""},
      {"{\"type\": \"t\", \"payload\": \"\xed\xa0\x80\"}", ""},      // a surrogate in UTF-8
      {"{\"type\": \"t\", \"payload\": \"\xc0\xaf\"}", ""},          // overlong
      {"{\"type\": \"t\", \"payload\": \"\xf4\x90\x80\x80\"}", ""},  // above U+10FFFF
      {"{\"type\": \"t\", \"payload\": \"a\tb\"}", ""},              // a raw control character
      {R"({"type": "t", "payload": "\ud83c"})", ""},
      {R"({"type": "t", "payload": "\udf89"})", ""},
      {R"({"type": "t", "payload": "\x41"})", ""},
      {R"({"type": "t", "payload": 1.7976931348623159e308})", ""},  // rounds to infinity
      {R"({"type": "t", "payload": -1e309})", ""},
      {R"({"type": "t", "payload": )" + std::string(309, '9') + "}", ""},
      {R"({"type": "t", "payload": 01})", ""},
      {R"({"type": "t", "payload": 1.})", ""},
      {R"({"type": "t", "payload": tru})", ""},
      {R"({"type": "t", "payload": // no comments
          1})", ""},
      {"[]", ""},
      {std::string("\"5s\"\0", 5), ""},
      {std::string("\0{}", 3), ""},
      {R"({"type": "t", "payload": "a)" + std::string("\0", 1) + R"("})", ""},
      // nlohmann stops reading at a NUL byte; both refuse one like any other trailing byte.
      {R"({"type":"t","payload":1})" + std::string("\0", 1), ""},
      {R"({"type":"t","payload":1})" + std::string("\0 not read", 10), ""},
      {R"({"type":"t","payload":12} )" + std::string("\0}}", 3), ""},
      {R"([{"type": "t", "payload": 1}])", ""},
      {"\"a.b\"", ""},
      {"42", ""},
      {"null", ""},
      {std::string(300, '['), ""},
      {"x" + std::string(300, '['), ""},
      {R"({"type": "t", "payload": )" + std::string(256, '[') + std::string(256, ']') + "}", ""},
      // Not an event.
      {"{}", ""},
      {R"({"payload": 1})", ""},
      {R"({"type": 5, "payload": 1})", ""},
      {R"({"type": null, "payload": 1})", ""},
      {R"({"type": "", "payload": 1})", ""},
      {R"({"type": "has space", "payload": 1})", ""},
      {R"({"type": "meeting.*", "payload": 1})", ""},
      {R"({"type": "meeting\n", "payload": 1})", ""},
      {R"({"type": ")" + std::string(129, 'x') + R"(", "payload": 1})", ""},
      {R"({"type": "t"})", ""},
      {R"({"type": "t", "payload": 1, "extra": true})", ""},
      {R"({"type": "t", "payload": 1, "id": 5})", ""},
      {R"({"type": "t", "payload": 1, "id": ""})", ""},
      {R"({"type": "t", "payload": 1, "id": ")" + std::string(257, 'k') + R"("})", ""},
      {R"({"type": "t", "payload": 1, "id": "a"})", "b"},
      {R"({"type": "t", "payload": 1})", std::string(257, 'k')},
  };
  for (const auto& [body, header] : cases) {
    auto fast = parse_event_body(request(body), header);
    auto tree = parse_with_tree(request(body), header);
    ASSERT_FALSE(tree.ok()) << body;
    ASSERT_FALSE(fast.ok()) << body;
    EXPECT_EQ(fast.error().code, tree.error().code) << body;
    EXPECT_EQ(fast.error().message, tree.error().message) << body;
  }
  EXPECT_EQ(parse_event_body(request("{]"), "").error().message, "the request body is not valid JSON");
  // nlohmann ends the text at a NUL byte, but the depth check reads all of the body.
  const std::string deep_after_nul =
      R"({"type": "t", "payload": 1})" + std::string(1, '\0') + std::string(257, '[');
  EXPECT_EQ(parse_event_body(request(deep_after_nul), "").error().message,
            "the request body nests deeper than 256 levels");
  EXPECT_EQ(parse_with_tree(request(deep_after_nul), "").error().message,
            "the request body nests deeper than 256 levels");
  EXPECT_EQ(parse_event_body(request("[1]"), "").error().message, "the request body must be a JSON object");
  EXPECT_EQ(parse_event_body(request(std::string(257, '[')), "").error().message,
            "the request body nests deeper than 256 levels");
}

// A NUL byte after the JSON text was accepted (202) where any other trailing byte is refused.
TEST(ParseEventBodyTest, RefusesATrailingNulByte) {
  for (const std::string& body : {R"({"type":"t","payload":1})" + std::string(1, '\0'),
                                  R"({"type":"t","payload":1} )" + std::string("\0}}", 3)}) {
    for (const auto& error : {parse_event_body(request(body), "").error(), parse_json_object(request(body)).error()}) {
      EXPECT_EQ(error.code, Errc::invalid_json);
      EXPECT_EQ(error.message, "the request body is not valid JSON");
    }
  }
}

// A client id must be UTF-8 text, as the `id` member is by JSON's rules: a header of other
// bytes was stored and shown back with U+FFFD in their place.
TEST(ParseEventBodyTest, RefusesAnIdempotencyKeyThatIsNotUtf8) {
  const std::string body = R"({"type": "t", "payload": 1})";
  for (const std::string& key : std::vector<std::string>{"key-\xff", "\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                                         "a\xe2\x82", "\x80"}) {
    auto e = parse_event_body(request(body), key);
    ASSERT_FALSE(e.ok()) << key;
    EXPECT_EQ(e.error().code, Errc::invalid_field) << key;
    EXPECT_EQ(e.error().message, "header 'Idempotency-Key' must be UTF-8 text") << key;
  }
  for (const std::string& key : std::vector<std::string>{"cl\xc3\xa9-\xe2\x82\xac-\xf0\x9f\x8e\x89", "plain-key"}) {
    auto e = parse_event_body(request(body), key);
    ASSERT_TRUE(e.ok()) << key << ": " << e.error().message;
    EXPECT_EQ(e->client_id, key);
  }
}

TEST(ParseEventBodyTest, NamesTheFirstUnknownMemberAsWritten) {
  auto e = parse_event_body(request(R"({"zeta": 1, "type": "t", "alpha": 2, "payload": 3})"), "");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().code, Errc::invalid_field);
  EXPECT_EQ(e.error().message, "field 'zeta' is not a known event field");
  e = parse_event_body(request(R"({"type": "t", "payload": 1, "caf\u00e9": 2})"), "");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().message, "field 'caf\xc3\xa9' is not a known event field");
  // A bad body is invalid_json even when a member is unknown.
  e = parse_event_body(request(R"({"zeta": 1, "type": "t", "payload": 3)"), "");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().code, Errc::invalid_json);
}

TEST(ParseEventBodyTest, ContentTypeRulesAreTheTreeParsers) {
  for (const std::string& type : std::vector<std::string>{"application/json", "application/json; charset=utf-8", "Application/JSON",
                                 "application/cloudevents+json", "APPLICATION/X-WWW-FORM-URLENCODED", ""}) {
    EXPECT_TRUE(parse_event_body(request(R"({"type": "t", "payload": 1})", type), "").ok()) << type;
  }
  for (const std::string& type : std::vector<std::string>{"text/plain", "application/xml", "multipart/form-data; boundary=x",
                                 "json", "+json", "application/json ; charset=utf-8"}) {
    auto e = parse_event_body(request(R"({"type": "t", "payload": 1})", type), "");
    ASSERT_FALSE(e.ok()) << type;
    EXPECT_EQ(e.error().code, Errc::unsupported_media_type) << type;
    EXPECT_EQ(e.error().code, parse_json_object(request("{}", type)).error().code) << type;
  }
}

TEST(ParseEventBodyTest, AByteOrderMarkIsNotAnObject) {
  // nlohmann skips a leading BOM, so the tree parser reads the object; the ingest path refuses
  // it as it always has (RFC 8259 section 8.1: senders must not add one).
  auto e = parse_event_body(request("\xEF\xBB\xBF{\"type\": \"t\", \"payload\": 1}"), "");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().code, Errc::invalid_json);
  EXPECT_EQ(e.error().message, "the request body must be a JSON object");
  e = parse_event_body(request("\xEF\xBB\xBF{\"type\": "), "");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().message, "the request body is not valid JSON");
}


// ---- parse_event_batch_body (POST /v1/events/batch: one pass like parse_event_body)

HttpRequest batch_request(const std::string& events) { return request(R"({"events": )" + events + "}"); }

// The batch stored nlohmann's dump of each payload (keys sorted, 2.0 and 1e3 rewritten, escapes
// decoded) where the single route keeps the bytes as published.
TEST(ParseEventBatchBodyTest, KeepsThePayloadBytesOfTheSingleRoute) {
  const std::string payload = R"({ "z": 1, "a": [2.0, 1e3, -0.50E+2],
      "s": "caf\u00e9 \/ \"q\"", "big": 12345678901234567890, "e": {} })";
  const std::string compact = R"({"z":1,"a":[2.0,1e3,-0.50E+2],"s":"caf\u00e9 \/ \"q\"","big":12345678901234567890,"e":{}})";
  const std::string event = R"({"type": "t", "payload": )" + payload + R"(, "id": "c-1"})";
  auto single = parse_event_body(request(event), "");
  auto batch = parse_event_batch_body(batch_request("[" + event + ", " + event + "]"));
  ASSERT_TRUE(single.ok()) << single.error().message;
  ASSERT_TRUE(batch.ok()) << batch.error().message;
  EXPECT_EQ(*single->payload, compact);
  ASSERT_EQ(batch->size(), 2u);
  for (const auto& item : *batch) {
    ASSERT_TRUE(item.ok()) << item.error().message;
    EXPECT_EQ(*item->payload, compact);
    EXPECT_EQ(item->type, "t");
    EXPECT_EQ(item->client_id, "c-1");
  }
}

TEST(ParseEventBatchBodyTest, ElementsAnswerTheirOwnErrorsInOrder) {
  auto batch = parse_event_batch_body(batch_request(
      R"([{"type": "a", "payload": 1}, 5, {"type": "b"}, {"type": "c", "payload": 1, "zeta": 0, "alpha": 0},)"
      R"( {"type": "d", "payload": null, "id": ""}, {"type": "e", "payload": [], "type": "f"}])"));
  ASSERT_TRUE(batch.ok()) << batch.error().message;
  ASSERT_EQ(batch->size(), 6u);
  const auto& items = *batch;
  ASSERT_TRUE(items[0].ok());
  EXPECT_EQ(items[0]->type, "a");
  EXPECT_EQ(items[1].error().message, "an event must be a JSON object");
  EXPECT_EQ(items[2].error().message, "field 'payload' is required (any JSON value)");
  EXPECT_EQ(items[3].error().message, "field 'zeta' is not a known event field");
  EXPECT_EQ(items[4].error().message, "field 'id' must be 1-256 characters");
  for (std::size_t i = 1; i < 5; ++i) EXPECT_EQ(items[i].error().code, Errc::invalid_field) << i;
  ASSERT_TRUE(items[5].ok());
  EXPECT_EQ(items[5]->type, "f");  // a repeated member counts with its last value
}

// The prefix "relay." is relay's own (operational events): refused on both routes, alike.
TEST(ParseEventBatchBodyTest, TheReservedRelayPrefixIsRefusedOnBothRoutes) {
  for (const std::string type : {"relay.x", "relay.delivery.dead", "relay.subscription.disabled"}) {
    const std::string body = R"({"type": ")" + type + R"(", "payload": {}})";
    auto single = parse_event_body(request(body), "");
    ASSERT_FALSE(single.ok()) << type;
    EXPECT_EQ(single.error().code, Errc::invalid_field);
    EXPECT_EQ(single.error().message,
              "field 'type' must not begin with \"relay.\": that prefix is reserved for relay's own events");
    auto tree = parse_new_event(json::parse(body), "");
    ASSERT_FALSE(tree.ok()) << type;
    EXPECT_EQ(tree.error().message, single.error().message);
    auto batch = parse_event_batch_body(batch_request("[" + body + R"(, {"type": "relayed.x", "payload": 1}])"));
    ASSERT_TRUE(batch.ok()) << batch.error().message;
    ASSERT_EQ(batch->size(), 2u);
    ASSERT_FALSE((*batch)[0].ok());
    EXPECT_EQ((*batch)[0].error().message, single.error().message);
    EXPECT_TRUE((*batch)[1].ok()) << "only the prefix \"relay.\" is reserved";
  }
  EXPECT_TRUE(parse_event_body(request(R"({"type": "relay", "payload": 1})"), "").ok());
  EXPECT_TRUE(parse_event_body(request(R"({"type": "Relay.x", "payload": 1})"), "").ok());
}

TEST(ParseEventBatchBodyTest, RefusesABadBodyAsAWhole) {
  const std::string one = R"({"type": "t", "payload": 1})";
  std::string thousand_and_one = "[";
  for (int i = 0; i < 1001; ++i) thousand_and_one += (i == 0 ? "" : ",") + one;
  thousand_and_one += "]";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "the request body is not valid JSON"},
      {R"({"events": [)" + one + "}", "the request body is not valid JSON"},
      {R"({"events": [)" + one + "]} x", "the request body is not valid JSON"},
      {R"({"events": [)" + one + "]}" + std::string(1, '\0'), "the request body is not valid JSON"},
      {R"({"events": [{"type": "t", "payload": "\xff"}]})", "the request body is not valid JSON"},
      {"[" + one + "]", "the request body must be a JSON object"},
      {"{}", "field 'events' is required and must be an array"},
      {R"({"events": {}})", "field 'events' is required and must be an array"},
      {R"({"events": [], "events": 1})", "field 'events' is required and must be an array"},
      {R"({"events": []})", "field 'events' must hold 1 to 1000 events"},
      {R"({"events": )" + thousand_and_one + "}", "field 'events' must hold 1 to 1000 events"},
      {R"({"events": [)" + one + R"(], "extra": 1})", "a batch has only the field 'events'"},
      {R"({"events": [{"type": "t", "payload": )" + std::string(254, '[') + std::string(254, ']') + "}]}",
       "the request body nests deeper than 256 levels"},
  };
  for (const auto& [body, message] : cases) {
    auto batch = parse_event_batch_body(request(body));
    ASSERT_FALSE(batch.ok()) << body.substr(0, 80);
    EXPECT_EQ(batch.error().message, message) << body.substr(0, 80);
    // The same answer as the tree parser gives for the body.
    auto tree = parse_json_object(request(body));
    if (!tree.ok()) {
      EXPECT_EQ(batch.error().message, tree.error().message) << body.substr(0, 80);
    }
  }
  EXPECT_EQ(parse_event_batch_body(request("{}", "text/plain")).error().code, Errc::unsupported_media_type);
  // The deepest payload a batch element can hold: 256 levels with the body, "events" and the event.
  auto deepest = parse_event_batch_body(
      batch_request(R"([{"type": "t", "payload": )" + std::string(253, '[') + std::string(253, ']') + "}]"));
  ASSERT_TRUE(deepest.ok()) << deepest.error().message;
  EXPECT_TRUE(deepest->at(0).ok());
  // A repeated "events" counts with its last value.
  auto last = parse_event_batch_body(request(R"({"events": 1, "events": [)" + one + "," + one + "]}"));
  ASSERT_TRUE(last.ok()) << last.error().message;
  EXPECT_EQ(last->size(), 2u);
}

TEST(ParseEventBatchBodyTest, GivesEachElementAsWritten) {
  // Cluster mode forwards these texts to other shards as sub-batches.
  const std::string first = R"({ "type" : "a", "payload" : {"x": [1, 2]}, "ordering_key": "k" })";
  const std::string second = R"(["not", "an", "event"])";
  const std::string third = R"({"type":"c","payload":"}"})";
  std::vector<std::string_view> texts{"left over"};
  const HttpRequest req = batch_request("[ " + first + " ,\n" + second + "," + third + "]");  // texts view its body
  auto batch = parse_event_batch_body(req, &texts);
  ASSERT_TRUE(batch.ok()) << batch.error().message;
  ASSERT_EQ(batch->size(), 3u);
  EXPECT_FALSE(batch->at(1).ok());
  EXPECT_EQ(texts, (std::vector<std::string_view>{first, second, third}));
  // A repeated "events" counts with its last value, its texts too.
  const HttpRequest repeated = request(R"({"events": [)" + first + R"(], "events": [)" + third + "]}");
  auto last = parse_event_batch_body(repeated, &texts);
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(texts, std::vector<std::string_view>{third});
}

TEST(ParseEventBodyTest, ADeeplyNestedPayloadDoesNotCrash) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  constexpr std::size_t kDepth = 400'000;
  const std::string body = R"({"type": "t", "payload": )" + std::string(kDepth, '[') + std::string(kDepth, ']') + "}";
  auto ingest = [&] {
    auto event = parse_event_body(request(body), "");
    std::_Exit(!event.ok() && event.error().message == "the request body nests deeper than 256 levels" ? 0 : 3);
  };
  EXPECT_EXIT(ingest(), ::testing::ExitedWithCode(0), "");
}

}  // namespace event_parsing_test
}  // namespace relay
