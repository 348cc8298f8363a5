// Black-box tests of the ingest API (spec section 2, "Events"): POST /v1/events, the batch
// route, GET /v1/events/{id}, GET /v1/event-types, idempotency and fan-out counts, run against
// the real relayd binary.

#include <gtest/gtest.h>

#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/relayd_api_test.h"

namespace relay::test {
namespace api_events_test {

using nlohmann::json;

// A realistic payload (Meeting BaaS calendar webhook).
const json kCalendarPayload = json::parse(R"({
  "event": "calendar.sync_events",
  "data": {
    "calendar_id": "123e4567-e89b-12d3-a456-426614174000",
    "last_updated_ts": "2023-05-01T12:00:00Z",
    "affected_event_uuids": ["123e4567-e89b-12d3-a456-426614174001",
                             "123e4567-e89b-12d3-a456-426614174002"]
  }
})");

// Subscribers are never reached in these tests; loopback is refused by relayd's egress guard.
constexpr const char* kNowhere = "http://127.0.0.1:9/hook";

// A payload as a client writes it, pretty-printed, with what a JSON tree would change: keys out
// of order, numbers spelled 2.0 and 1e3, a number beyond 64 bits, escapes \u00e9 and \/.
constexpr std::string_view kPublishedPayload = R"({
  "zeta": 1, "alpha": [2.0, 1e3, -0.50E+2],
  "text": "caf\u00e9 \/ \"quoted\"", "big": 123456789012345678901234567890, "empty": { }
})";
// What relay stores, sends and shows: the same bytes without whitespace between tokens.
constexpr std::string_view kCompactPayload =
    R"({"zeta":1,"alpha":[2.0,1e3,-0.50E+2],"text":"caf\u00e9 \/ \"quoted\"","big":123456789012345678901234567890,"empty":{}})";

class EventsApi : public RelaydApiTest {
 protected:
  HttpResponse post_event(const json& event, const Headers& extra = {}) {
    Headers headers{bearer(kAdminKey)};
    headers.insert(headers.end(), extra.begin(), extra.end());
    return http_.post(relayd().url("/v1/events"), event.dump(), headers);
  }
  HttpResponse get_event(const std::string& id) { return call("GET", "/v1/events/" + id); }

  // Creates a subscription to kNowhere unless `body` names a url; its id, or "" after recording a
  // failure.
  std::string subscribe_nowhere(json body) {
    if (!body.contains("url")) body["url"] = kNowhere;
    return subscribe_id(body);
  }

  // The count GET /v1/event-types reports for `type`; nullopt when the type is not listed.
  std::optional<long> type_count(std::string_view type) {
    const HttpResponse r = call("GET", "/v1/event-types");
    EXPECT_EQ(r.status, 200) << r.describe();
    const json doc = r.json();
    if (!doc.is_object() || !doc.contains("items")) {
      ADD_FAILURE() << "event-types without items: " << r.describe();
      return std::nullopt;
    }
    for (const json& item : doc["items"]) {
      if (item.value("type", "") == type) return item.value("count", -1L);
    }
    return std::nullopt;
  }
  std::size_t type_list_size() {
    const json doc = call("GET", "/v1/event-types").json();
    return doc.is_object() && doc.contains("items") ? doc["items"].size() : 0;
  }
};

// ---------------------------------------------------------------------------------------------
// Accepting and reading events

TEST_F(EventsApi, AcceptsEventAndReturnsItWithItsPayload) {
  const HttpResponse posted = post_event({{"type", "calendar.sync_events"}, {"payload", kCalendarPayload}});
  ASSERT_EQ(posted.status, 202) << posted.describe();
  const json ack = posted.json();
  ASSERT_TRUE(ack.is_object()) << posted.describe();
  const std::string id = ack.value("id", "");
  EXPECT_TRUE(id.starts_with("evt_")) << id;
  EXPECT_EQ(ack.value("deliveries", -1), 0);

  const HttpResponse got = get_event(id);
  ASSERT_EQ(got.status, 200) << got.describe();
  const json event = got.json();
  EXPECT_EQ(event.value("id", ""), id);
  EXPECT_EQ(event.value("type", ""), "calendar.sync_events");
  EXPECT_EQ(event["payload"], kCalendarPayload);
  EXPECT_TRUE(event.contains("created_at"));
  ASSERT_TRUE(event.contains("deliveries") && event["deliveries"].is_array()) << got.describe();
  EXPECT_TRUE(event["deliveries"].empty());
}

TEST_F(EventsApi, JsonContentTypeWithParametersIsAccepted) {
  const std::string body = json{{"type", "a.b"}, {"payload", 1}}.dump();
  for (const char* type : {"Content-Type: application/json; charset=utf-8", "Content-Type: Application/JSON"}) {
    const HttpResponse r = http_.post(relayd().url("/v1/events"), body, {bearer(kAdminKey), type});
    EXPECT_EQ(r.status, 202) << type << " -> " << r.describe();
  }
}

TEST_F(EventsApi, PayloadOfAnyJsonKindRoundTrips) {
  const std::vector<json> payloads{
      json::array({1, "two", nullptr, json::object({{"three", 3.5}})}),
      "a plain string with \"quotes\", a tab\t and unicode: réunion 会议 🎉",
      42,
      -1.25e-7,
      true,
      json::object(),
      json::parse(R"({"bot_id":"b-1","data":{"transcript":[{"speaker":"Ann","words":[{"start":0.1,"text":"hi"}]}]}})"),
  };
  for (const json& payload : payloads) {
    const HttpResponse posted = post_event({{"type", "meeting.completed"}, {"payload", payload}});
    ASSERT_EQ(posted.status, 202) << payload.dump() << " -> " << posted.describe();
    const HttpResponse got = get_event(posted.json().value("id", ""));
    ASSERT_EQ(got.status, 200) << got.describe();
    EXPECT_EQ(got.json()["payload"], payload);
  }
}

TEST_F(EventsApi, IdsAreUniqueAndSortableByCreation) {
  std::vector<std::string> ids;
  for (int i = 0; i < 25; ++i) {
    const HttpResponse r = post_event({{"type", "meeting.started"}, {"payload", {{"n", i}}}});
    ASSERT_EQ(r.status, 202) << r.describe();
    ids.push_back(r.json().value("id", ""));
  }
  for (std::size_t i = 1; i < ids.size(); ++i) {
    EXPECT_LT(ids[i - 1], ids[i]) << "ids must be unique and sort by creation time";
  }
}

TEST_F(EventsApi, UnknownEventIs404) {
  for (const char* id : {"evt_00000000000000000000000000", "evt_nope", "garbage"}) {
    const HttpResponse r = get_event(id);
    EXPECT_EQ(r.status, 404) << id << ": " << r.describe();
    EXPECT_EQ(r.error_code(), "not_found") << r.describe();
  }
}

// ---------------------------------------------------------------------------------------------
// Validation: every rejection is a 4xx error body and leaves nothing behind

TEST_F(EventsApi, MalformedJsonIsInvalidJson) {
  for (const std::string body : {"{", "{\"type\": \"a.b\", \"payload\": {}", "{\"type\": \"a.b\",}",
                                 "not json at all", "{\"type\": \"a.b\", \"payload\": {}} trailing"}) {
    const HttpResponse r = http_.post(relayd().url("/v1/events"), body, {bearer(kAdminKey)});
    EXPECT_EQ(r.status, 400) << body << " -> " << r.describe();
    EXPECT_EQ(r.error_code(), "invalid_json") << body << " -> " << r.describe();
    const json doc = r.json();
    EXPECT_TRUE(doc.is_object() && doc.contains("error") && !doc["error"].value("message", "").empty())
        << r.describe();
  }
  EXPECT_EQ(type_list_size(), 0u);
}

// A NUL byte after the JSON text was accepted (202) where any other trailing byte answers 400.
TEST_F(EventsApi, TrailingNulByteIsInvalidJsonAndStoresNothing) {
  const std::string event = R"({"type": "a.b", "payload": {}})";
  const std::vector<std::pair<std::string, std::string>> posts{
      {"/v1/events", event + std::string(1, '\0')},
      {"/v1/events", event + std::string("\0{}", 3)},
      {"/v1/events/batch", R"({"events": [)" + event + "]}" + std::string(1, '\0')},
  };
  for (const auto& [path, body] : posts) {
    const HttpResponse r = http_.post(relayd().url(path), body, {bearer(kAdminKey)});
    EXPECT_EQ(r.status, 400) << path << " -> " << r.describe();
    EXPECT_EQ(r.error_code(), "invalid_json") << path << " -> " << r.describe();
  }
  EXPECT_EQ(type_list_size(), 0u);
}

TEST_F(EventsApi, BodyThatIsNotAnObjectIsRejected) {
  for (const std::string body : {"[]", "[{\"type\":\"a.b\",\"payload\":1}]", "\"a.b\"", "42", "null"}) {
    const HttpResponse r = http_.post(relayd().url("/v1/events"), body, {bearer(kAdminKey)});
    EXPECT_EQ(r.status, 400) << body << " -> " << r.describe();
    const std::string code = r.error_code();
    EXPECT_TRUE(code == "invalid_field" || code == "invalid_json") << body << " -> " << r.describe();
  }
  EXPECT_EQ(type_list_size(), 0u);
}

TEST_F(EventsApi, MissingOrBadTypeIsInvalidField) {
  const std::vector<json> bodies{
      {{"payload", {{"a", 1}}}},                                          // missing
      {{"type", ""}, {"payload", {{"a", 1}}}},                            // empty
      {{"type", std::string(129, 'a')}, {"payload", {{"a", 1}}}},         // too long
      {{"type", "meeting completed"}, {"payload", {{"a", 1}}}},           // space
      {{"type", "meeting/completed"}, {"payload", {{"a", 1}}}},           // slash
      {{"type", "meeting.*"}, {"payload", {{"a", 1}}}},                   // a pattern is not a type
      {{"type", "réunion.finie"}, {"payload", {{"a", 1}}}},               // non-ASCII
      {{"type", "meeting.completed\n"}, {"payload", {{"a", 1}}}},         // control character
      {{"type", 42}, {"payload", {{"a", 1}}}},                            // not a string
      {{"type", nullptr}, {"payload", {{"a", 1}}}},
      {{"type", json::array({"meeting.completed"})}, {"payload", {{"a", 1}}}},
  };
  for (const json& body : bodies) {
    const HttpResponse r = post_event(body);
    EXPECT_EQ(r.status, 400) << body.dump() << " -> " << r.describe();
    EXPECT_EQ(r.error_code(), "invalid_field") << body.dump() << " -> " << r.describe();
  }
  EXPECT_EQ(type_list_size(), 0u);
}

TEST_F(EventsApi, TypeOfAllowedCharactersUpTo128IsAccepted) {
  std::string longest = "Ab0._:-";
  while (longest.size() < 128) longest += static_cast<char>('a' + longest.size() % 26);
  ASSERT_EQ(longest.size(), 128u);
  for (const std::string& type : {std::string("x"), std::string("calendar.sync_events"),
                                  std::string("Meeting:Bot-Joined.v2"), longest}) {
    const HttpResponse r = post_event({{"type", type}, {"payload", {{"ok", true}}}});
    ASSERT_EQ(r.status, 202) << type << " -> " << r.describe();
    EXPECT_EQ(get_event(r.json().value("id", "")).json().value("type", ""), type);
  }
}

TEST_F(EventsApi, MissingPayloadIsInvalidFieldAndStoresNothing) {
  const HttpResponse r = post_event({{"type", "meeting.completed"}});
  EXPECT_EQ(r.status, 400) << r.describe();
  EXPECT_EQ(r.error_code(), "invalid_field") << r.describe();
  EXPECT_FALSE(type_count("meeting.completed").has_value());
}

TEST_F(EventsApi, ClientIdThatIsNotAStringIsInvalidField) {
  for (const json& id : {json(42), json::object({{"k", "v"}}), json::array({"a"})}) {
    const HttpResponse r = post_event({{"type", "meeting.completed"}, {"payload", json::object()}, {"id", id}});
    EXPECT_EQ(r.status, 400) << id.dump() << " -> " << r.describe();
    EXPECT_EQ(r.error_code(), "invalid_field") << r.describe();
  }
  EXPECT_FALSE(type_count("meeting.completed").has_value());
}

TEST_F(EventsApi, OversizeBodyIs413AndStoresNothing) {
  start({"--max-body", "1024"});
  const std::string filler(2000, 'x');
  const HttpResponse single = post_event({{"type", "big.single"}, {"payload", {{"blob", filler}}}});
  EXPECT_EQ(single.status, 413) << single.describe();
  EXPECT_EQ(single.error_code(), "payload_too_large") << single.describe();

  const json batch{{"events", json::array({{{"type", "big.batch"}, {"payload", {{"blob", filler}}}}})}};
  const HttpResponse batched = call("POST", "/v1/events/batch", batch.dump());
  EXPECT_EQ(batched.status, 413) << batched.describe();
  EXPECT_EQ(batched.error_code(), "payload_too_large") << batched.describe();

  // Without Content-Length the limit holds all the same.
  const HttpResponse chunked =
      http_.post(relayd().url("/v1/events"), json{{"type", "big.chunked"}, {"payload", {{"blob", filler}}}}.dump(),
                 {bearer(kAdminKey), "Transfer-Encoding: chunked"});
  EXPECT_EQ(chunked.status, 413) << chunked.describe();
  EXPECT_EQ(chunked.error_code(), "payload_too_large") << chunked.describe();

  EXPECT_EQ(type_list_size(), 0u);
  // The same relayd still serves bodies under the limit.
  const HttpResponse small = post_event({{"type", "small.one"}, {"payload", {{"blob", std::string(500, 'x')}}}});
  EXPECT_EQ(small.status, 202) << small.describe();
}

// ---------------------------------------------------------------------------------------------
// Routing

TEST_F(EventsApi, UnknownRouteIs404) {
  for (const auto& [method, path] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "/v1/nope"}, {"POST", "/v1/eventz"}, {"GET", "/v2/events/evt_1"}, {"GET", "/"},
           {"POST", "/v1/events/evt_1/nothing"}}) {
    const HttpResponse r = call(method, path, method == "POST" ? "{}" : "");
    EXPECT_EQ(r.status, 404) << method << " " << path << " -> " << r.describe();
    EXPECT_EQ(r.error_code(), "not_found") << method << " " << path << " -> " << r.describe();
  }
}

TEST_F(EventsApi, WrongMethodIs405) {
  const HttpResponse posted = post_event({{"type", "a.b"}, {"payload", 1}});
  ASSERT_EQ(posted.status, 202) << posted.describe();
  const std::string id = posted.json().value("id", "");
  for (const auto& [method, path] : std::vector<std::pair<std::string, std::string>>{
           {"PUT", "/v1/events"}, {"DELETE", "/v1/events"}, {"PUT", "/v1/events/batch"},
           {"PATCH", "/v1/events/" + id}, {"DELETE", "/v1/events/" + id}, {"POST", "/v1/event-types"}}) {
    const HttpResponse r = call(method, path, "{}");
    EXPECT_EQ(r.status, 405) << method << " " << path << " -> " << r.describe();
    EXPECT_FALSE(r.error_code().empty()) << method << " " << path << " -> " << r.describe();
  }
  EXPECT_EQ(get_event(id).status, 200);
}

// ---------------------------------------------------------------------------------------------
// Idempotency

TEST_F(EventsApi, RepeatedClientIdAnswers200WithTheFirstEvent) {
  ASSERT_FALSE(subscribe_nowhere({{"event_types", {"meeting.*"}}}).empty());
  const json first{{"type", "meeting.completed"}, {"payload", {{"v", 1}}}, {"id", "client-evt-1"}};
  const HttpResponse created = post_event(first);
  ASSERT_EQ(created.status, 202) << created.describe();
  const std::string id = created.json().value("id", "");
  EXPECT_EQ(created.json().value("deliveries", -1), 1);

  const HttpResponse again = post_event(first);
  EXPECT_EQ(again.status, 200) << again.describe();
  EXPECT_EQ(again.json().value("id", ""), id);
  EXPECT_EQ(again.json().value("deliveries", -1), 1);

  json changed = first;
  changed["payload"] = {{"v", 2}};
  const HttpResponse changed_again = post_event(changed);
  EXPECT_EQ(changed_again.status, 200) << changed_again.describe();
  EXPECT_EQ(changed_again.json().value("id", ""), id);

  const json stored = get_event(id).json();
  EXPECT_EQ(stored["payload"], first["payload"]);
  EXPECT_EQ(stored["deliveries"].size(), 1u);
  EXPECT_EQ(type_count("meeting.completed"), 1);
}

TEST_F(EventsApi, IdempotencyKeyHeaderActsAsClientId) {
  const json body{{"type", "meeting.completed"}, {"payload", {{"v", 1}}}};
  const HttpResponse created = post_event(body, {"Idempotency-Key: header-key-1"});
  ASSERT_EQ(created.status, 202) << created.describe();
  const std::string id = created.json().value("id", "");

  const HttpResponse again = post_event(body, {"Idempotency-Key: header-key-1"});
  EXPECT_EQ(again.status, 200) << again.describe();
  EXPECT_EQ(again.json().value("id", ""), id);
  EXPECT_EQ(again.json().value("deliveries", -1), 0);

  // Header and body id name the same thing.
  json with_body_id = body;
  with_body_id["id"] = "header-key-1";
  const HttpResponse via_body = post_event(with_body_id);
  EXPECT_EQ(via_body.status, 200) << via_body.describe();
  EXPECT_EQ(via_body.json().value("id", ""), id);

  // A different key is a different event.
  const HttpResponse other = post_event(body, {"Idempotency-Key: header-key-2"});
  EXPECT_EQ(other.status, 202) << other.describe();
  EXPECT_NE(other.json().value("id", ""), id);
  EXPECT_EQ(type_count("meeting.completed"), 2);
}

// A client id is UTF-8 text (as the `id` member is by JSON's rules): a header of other bytes
// was stored and shown back with U+FFFD in their place, a key the client never sent.
TEST_F(EventsApi, IdempotencyKeyThatIsNotUtf8IsInvalidFieldAndStoresNothing) {
  const json body{{"type", "meeting.completed"}, {"payload", {{"v", 1}}}};
  for (const std::string key : {"key-\xff\xfe", "\xc0\xaf", "caf\xe9"}) {
    const HttpResponse r = post_event(body, {"Idempotency-Key: " + key});
    EXPECT_EQ(r.status, 400) << key << " -> " << r.describe();
    EXPECT_EQ(r.error_code(), "invalid_field") << key << " -> " << r.describe();
  }
  EXPECT_EQ(type_list_size(), 0u);
  // UTF-8 beyond ASCII is a key like any other, shown back as sent.
  const HttpResponse created = post_event(body, {"Idempotency-Key: caf\xc3\xa9-\xe2\x82\xac"});
  ASSERT_EQ(created.status, 202) << created.describe();
  const HttpResponse got = get_event(created.json().value("id", ""));
  EXPECT_EQ(got.json().value("client_id", ""), "caf\xc3\xa9-\xe2\x82\xac") << got.describe();
}

TEST_F(EventsApi, RepeatReportsTheFirstCountAndCreatesNoDeliveries) {
  ASSERT_FALSE(subscribe_nowhere({{"event_types", {"*"}}}).empty());
  ASSERT_FALSE(subscribe_nowhere({{"event_types", {"meeting.completed"}}}).empty());
  const json body{{"type", "meeting.completed"}, {"payload", {{"v", 1}}}, {"id", "repeat-me"}};
  const HttpResponse created = post_event(body);
  ASSERT_EQ(created.status, 202) << created.describe();
  ASSERT_EQ(created.json().value("deliveries", -1), 2);

  // A subscription added later must not get deliveries out of a repeat.
  ASSERT_FALSE(subscribe_nowhere({{"event_types", {"meeting.*"}}}).empty());
  const HttpResponse again = post_event(body);
  EXPECT_EQ(again.status, 200) << again.describe();
  EXPECT_EQ(again.json().value("deliveries", -1), 2);
  EXPECT_EQ(get_event(created.json().value("id", "")).json()["deliveries"].size(), 2u);
  EXPECT_EQ(type_count("meeting.completed"), 1);
}

// ---------------------------------------------------------------------------------------------
// Fan-out: deliveries = matching enabled subscriptions

TEST_F(EventsApi, DeliveriesMatchExactWildcardAndPrefixPatterns) {
  const std::string all = subscribe_nowhere({{"event_types", {"*"}}});
  const std::string exact = subscribe_nowhere({{"event_types", {"meeting.completed"}}});
  const std::string prefix = subscribe_nowhere({{"event_types", {"meeting.*"}}});
  const std::string calendar = subscribe_nowhere({{"event_types", {"calendar.sync_events", "bot.*"}}});
  const std::string defaulted = subscribe_nowhere(json::object());  // event_types defaults to ["*"]
  const std::string disabled = subscribe_nowhere({{"event_types", {"*"}}, {"enabled", false}});
  ASSERT_FALSE(::testing::Test::HasFailure());

  const std::vector<std::pair<std::string, std::set<std::string>>> cases{
      {"meeting.completed", {all, exact, prefix, defaulted}},
      {"meeting.bot.joined", {all, prefix, defaulted}},
      {"calendar.sync_events", {all, calendar, defaulted}},
      {"bot.status_change", {all, calendar, defaulted}},
      {"meetingroom.booked", {all, defaulted}},
      {"calendar.sync_events_v2", {all, defaulted}},
  };
  for (const auto& [type, expected] : cases) {
    const HttpResponse r = post_event({{"type", type}, {"payload", {{"t", type}}}});
    ASSERT_EQ(r.status, 202) << type << ": " << r.describe();
    EXPECT_EQ(r.json().value("deliveries", -1), static_cast<int>(expected.size())) << type;

    const json event = get_event(r.json().value("id", "")).json();
    ASSERT_TRUE(event.contains("deliveries")) << event.dump();
    std::set<std::string> targets;
    for (const json& delivery : event["deliveries"]) {
      EXPECT_TRUE(delivery.value("id", "").starts_with("dlv_")) << delivery.dump();
      targets.insert(delivery.value("subscription_id", ""));
    }
    EXPECT_EQ(targets, expected) << type;
  }
}

TEST_F(EventsApi, DisabledSubscriptionsMatchNothing) {
  ASSERT_FALSE(subscribe_nowhere({{"event_types", {"meeting.*"}}, {"enabled", false}}).empty());
  ASSERT_FALSE(subscribe_nowhere({{"event_types", {"*"}}, {"enabled", false}}).empty());
  const HttpResponse r = post_event({{"type", "meeting.completed"}, {"payload", 1}});
  ASSERT_EQ(r.status, 202) << r.describe();
  EXPECT_EQ(r.json().value("deliveries", -1), 0);
  EXPECT_TRUE(get_event(r.json().value("id", "")).json()["deliveries"].empty());
}

// Spec section 3: the payload keeps its bytes as published (compacted) on the single and the
// batch route alike, and GET /v1/events/{id} returns the same bytes. Compared as bytes: a JSON
// value comparison cannot see a sorted key or a rewritten number.
TEST_F(EventsApi, PayloadBytesAsPublishedOnSingleAndBatchAndGet) {
  const std::string event = R"({"type": "meeting.completed", "payload": )" + std::string(kPublishedPayload) + "}";
  const HttpResponse single = http_.post(relayd().url("/v1/events"), event, {bearer(kAdminKey)});
  ASSERT_EQ(single.status, 202) << single.describe();
  const HttpResponse batch = call("POST", "/v1/events/batch", R"({"events": [)" + event + "]}");
  ASSERT_EQ(batch.status, 200) << batch.describe();
  const std::vector<std::string> ids{single.json().value("id", ""),
                                     batch.json()["results"][0].value("id", "")};
  for (const std::string& id : ids) {
    const HttpResponse got = get_event(id);
    ASSERT_EQ(got.status, 200) << got.describe();
    ASSERT_FALSE(got.json().is_discarded()) << got.body;
    EXPECT_NE(got.body.find(R"("payload":)" + std::string(kCompactPayload)), std::string::npos)
        << id << " shows its payload as " << got.json()["payload"].dump() << " in " << got.body;
  }
}

// ---------------------------------------------------------------------------------------------
// Batch

TEST_F(EventsApi, BatchAnswersPerItemWithErrorsInline) {
  ASSERT_FALSE(subscribe_nowhere({{"event_types", {"meeting.*"}}}).empty());
  const json batch{{"events", json::array({
                                  {{"type", "meeting.started"}, {"payload", {{"n", 0}}}},
                                  {{"type", "bad type"}, {"payload", {{"n", 1}}}},
                                  {{"type", "calendar.sync_events"}, {"payload", kCalendarPayload}},
                                  {{"type", "ghost.no_payload"}},
                                  {{"type", "meeting.completed"}, {"payload", {{"n", 4}}}},
                                  "not an object",
                              })}};
  const HttpResponse r = call("POST", "/v1/events/batch", batch.dump());
  ASSERT_EQ(r.status, 200) << r.describe();
  const json results = r.json().value("results", json());
  ASSERT_TRUE(results.is_array()) << r.describe();
  ASSERT_EQ(results.size(), batch["events"].size()) << r.describe();

  const std::vector<int> expected_deliveries{1, -1, 0, -1, 1, -1};
  for (std::size_t i = 0; i < results.size(); ++i) {
    const json& result = results[i];
    if (expected_deliveries[i] < 0) {
      ASSERT_TRUE(result.contains("error")) << i << ": " << result.dump();
      EXPECT_EQ(result["error"].value("code", ""), "invalid_field") << i << ": " << result.dump();
      EXPECT_FALSE(result["error"].value("message", "").empty()) << result.dump();
      EXPECT_FALSE(result.contains("id") && result["id"].is_string() &&
                   result["id"].get<std::string>().starts_with("evt_"))
          << i << ": " << result.dump();
      continue;
    }
    ASSERT_TRUE(result.contains("id")) << i << ": " << result.dump();
    EXPECT_EQ(result.value("deliveries", -1), expected_deliveries[i]) << i;
    const HttpResponse got = get_event(result["id"].get<std::string>());
    ASSERT_EQ(got.status, 200) << got.describe();
    EXPECT_EQ(got.json()["payload"], batch["events"][i]["payload"]);
  }
  EXPECT_EQ(type_count("meeting.started"), 1);
  EXPECT_EQ(type_count("calendar.sync_events"), 1);
  EXPECT_FALSE(type_count("ghost.no_payload").has_value());
  EXPECT_EQ(type_list_size(), 3u);
}

TEST_F(EventsApi, BatchOfThousandIsAcceptedAndMoreIsRejectedWhole) {
  json thousand{{"events", json::array()}};
  for (int i = 0; i < 1000; ++i) thousand["events"].push_back({{"type", "bulk.ok"}, {"payload", {{"i", i}}}});
  const HttpResponse ok = call("POST", "/v1/events/batch", thousand.dump());
  ASSERT_EQ(ok.status, 200) << ok.describe();
  ASSERT_EQ(ok.json()["results"].size(), 1000u);
  std::set<std::string> ids;
  const json results = ok.json()["results"];
  for (const json& result : results) ids.insert(result.value("id", ""));
  EXPECT_EQ(ids.size(), 1000u);
  EXPECT_EQ(type_count("bulk.ok"), 1000);

  json too_many{{"events", json::array()}};
  for (int i = 0; i < 1001; ++i) too_many["events"].push_back({{"type", "bulk.too_many"}, {"payload", {{"i", i}}}});
  const HttpResponse rejected = call("POST", "/v1/events/batch", too_many.dump());
  EXPECT_EQ(rejected.status, 400) << rejected.describe();
  EXPECT_EQ(rejected.error_code(), "invalid_field") << rejected.describe();
  EXPECT_FALSE(type_count("bulk.too_many").has_value());
}

TEST_F(EventsApi, MalformedBatchIsRejected) {
  const HttpResponse bad_json = call("POST", "/v1/events/batch", "{\"events\": [");
  EXPECT_EQ(bad_json.status, 400) << bad_json.describe();
  EXPECT_EQ(bad_json.error_code(), "invalid_json") << bad_json.describe();
  for (const json& body : {json::object(), json{{"events", "meeting.completed"}},
                           json{{"events", {{"type", "a.b"}, {"payload", 1}}}}}) {
    const HttpResponse r = call("POST", "/v1/events/batch", body.dump());
    EXPECT_EQ(r.status, 400) << body.dump() << " -> " << r.describe();
    EXPECT_EQ(r.error_code(), "invalid_field") << body.dump() << " -> " << r.describe();
  }
  EXPECT_EQ(type_list_size(), 0u);
}

TEST_F(EventsApi, BatchHonoursClientIds) {
  const HttpResponse single = post_event({{"type", "meeting.completed"}, {"payload", 1}, {"id", "shared-1"}});
  ASSERT_EQ(single.status, 202) << single.describe();
  const std::string id = single.json().value("id", "");

  const json batch{{"events", json::array({
                                  {{"type", "meeting.completed"}, {"payload", 1}, {"id", "shared-1"}},
                                  {{"type", "meeting.completed"}, {"payload", 2}, {"id", "fresh-2"}},
                              })}};
  const HttpResponse r = call("POST", "/v1/events/batch", batch.dump());
  ASSERT_EQ(r.status, 200) << r.describe();
  const json results = r.json()["results"];
  ASSERT_EQ(results.size(), 2u) << r.describe();
  EXPECT_EQ(results[0].value("id", ""), id);
  EXPECT_NE(results[1].value("id", ""), id);
  EXPECT_EQ(type_count("meeting.completed"), 2);

  // The same client id twice in one batch is one event.
  const json twice{{"events", json::array({
                                  {{"type", "meeting.completed"}, {"payload", 3}, {"id", "twice-3"}},
                                  {{"type", "meeting.completed"}, {"payload", 3}, {"id", "twice-3"}},
                              })}};
  const HttpResponse both = call("POST", "/v1/events/batch", twice.dump());
  ASSERT_EQ(both.status, 200) << both.describe();
  const json both_results = both.json()["results"];
  ASSERT_EQ(both_results.size(), 2u) << both.describe();
  EXPECT_TRUE(both_results[0].value("id", "").starts_with("evt_")) << both.describe();
  EXPECT_EQ(both_results[0].value("id", ""), both_results[1].value("id", "")) << both.describe();
  EXPECT_EQ(type_count("meeting.completed"), 3);

  // And a batch item's client id protects later single posts.
  const HttpResponse repeat = post_event({{"type", "meeting.completed"}, {"payload", 2}, {"id", "fresh-2"}});
  EXPECT_EQ(repeat.status, 200) << repeat.describe();
  EXPECT_EQ(repeat.json().value("id", ""), results[1].value("id", ""));
  EXPECT_EQ(type_count("meeting.completed"), 3);
}

// ---------------------------------------------------------------------------------------------
// Event types

TEST_F(EventsApi, EventTypesListsCountsAndLastSeen) {
  EXPECT_EQ(type_list_size(), 0u);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(post_event({{"type", "meeting.completed"}, {"payload", i}}).status, 202);
  ASSERT_EQ(post_event({{"type", "calendar.sync_events"}, {"payload", kCalendarPayload}}).status, 202);
  const json batch{{"events", json::array({{{"type", "calendar.sync_events"}, {"payload", 1}},
                                           {{"type", "bot.joined"}, {"payload", 2}}})}};
  ASSERT_EQ(call("POST", "/v1/events/batch", batch.dump()).status, 200);

  EXPECT_EQ(type_count("meeting.completed"), 3);
  EXPECT_EQ(type_count("calendar.sync_events"), 2);
  EXPECT_EQ(type_count("bot.joined"), 1);
  const json doc = call("GET", "/v1/event-types").json();
  ASSERT_EQ(doc["items"].size(), 3u) << doc.dump();
  for (const json& item : doc["items"]) {
    EXPECT_TRUE(item.contains("last_seen") && !item["last_seen"].is_null()) << item.dump();
  }
}

}  // namespace api_events_test
}  // namespace relay::test
