// Every subscription field, valid and invalid, and that a failed update leaves the subscription
// untouched.

#include "relay/api/subscription_fields.h"

#include <gtest/gtest.h>

#include "storage/records.h"

namespace relay {
namespace subscription_fields_test {

using nlohmann::json;

// 24 bytes, canonical base64.
const std::string kWhsec = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX";

// ---- apply_subscription_fields

Subscription base_subscription() {
  Subscription s;
  s.id = "sub_00000000000000000000000000000001";
  s.url = "https://old.example/hook";
  s.secret = "old-secret-value";
  s.created_at = 1;
  s.updated_at = 2;
  return s;
}

Result<Subscription> apply_fields(const std::string& body, bool creating, Subscription sub = base_subscription()) {
  const Status status = apply_subscription_fields(json::parse(body), sub, creating);
  if (!status.ok()) return status.error();
  return sub;
}

TEST(ApplySubscriptionFieldsTest, CreateNeedsOnlyAUrl) {
  auto sub = apply_fields(R"({"url": "https://example.com/hook?token=a%20b&x=1"})", true, Subscription{});
  ASSERT_TRUE(sub.ok()) << sub.error().message;
  EXPECT_EQ(sub->url, "https://example.com/hook?token=a%20b&x=1");  // exactly as given
  EXPECT_EQ(sub->event_types, (std::vector<std::string>{"*"}));
  EXPECT_TRUE(sub->enabled);
  EXPECT_EQ(sub->max_in_flight, 64u);
  EXPECT_EQ(sub->signature_scheme, SignatureScheme::standard);

  // A null secret on create means "generate one": the caller does, the field stays as it was.
  sub = apply_fields(R"({"url": "http://example.com", "secret": null})", true, Subscription{});
  ASSERT_TRUE(sub.ok()) << sub.error().message;
  EXPECT_TRUE(sub->secret.empty());
}

TEST(ApplySubscriptionFieldsTest, EveryFieldIsApplied) {
  auto sub = apply_fields(R"({
      "url": "https://new.example:8443/p",
      "event_types": ["meeting.*", "calendar.sync_events", "*"],
      "secret": ")" + kWhsec + R"(",
      "signature": {"scheme": "hmac-sha256-hex", "header": "X-MeetingBaas-Signature"},
      "headers": {"X-Static": "v", "Authorization": "Bearer abc"},
      "enabled": false,
      "description": "the description",
      "retry": {"initial": "1s", "max_delay": "1m", "window": "2h"},
      "timeout": "5m",
      "max_in_flight": 10000,
      "rate_limit_per_second": 1000000,
      "disable_after": "12h"})",
                   false);
  ASSERT_TRUE(sub.ok()) << sub.error().message;
  EXPECT_EQ(sub->url, "https://new.example:8443/p");
  EXPECT_EQ(sub->event_types, (std::vector<std::string>{"meeting.*", "calendar.sync_events", "*"}));
  EXPECT_EQ(sub->secret, kWhsec);
  EXPECT_EQ(sub->signature_scheme, SignatureScheme::hmac_sha256_hex);
  EXPECT_EQ(sub->signature_header, "X-MeetingBaas-Signature");
  EXPECT_EQ(sub->headers, (std::map<std::string, std::string>{{"Authorization", "Bearer abc"}, {"X-Static", "v"}}));
  EXPECT_FALSE(sub->enabled);
  EXPECT_EQ(sub->description, "the description");
  EXPECT_EQ(sub->retry.initial_ms, 1'000);
  EXPECT_EQ(sub->retry.max_delay_ms, 60'000);
  EXPECT_EQ(sub->retry.window_ms, 7'200'000);
  EXPECT_EQ(sub->timeout_ms, 300'000);
  EXPECT_EQ(sub->max_in_flight, 10'000u);
  EXPECT_EQ(sub->rate_limit_per_second, 1'000'000u);
  EXPECT_EQ(sub->disable_after_ms, 12 * 3'600'000);
  // Not settable through these fields.
  EXPECT_EQ(sub->id, base_subscription().id);
  EXPECT_EQ(sub->created_at, 1);
}

// disable_after: a duration, "0s" for never, null for --disable-after.
TEST(ApplySubscriptionFieldsTest, DisableAfterTakesADurationZeroOrNull) {
  auto sub = apply_fields(R"({"disable_after": "0s"})", false);
  ASSERT_TRUE(sub.ok()) << sub.error().message;
  EXPECT_EQ(sub->disable_after_ms, 0) << "never, not the flag";
  sub = apply_fields(R"({"disable_after": "2s"})", false);
  ASSERT_TRUE(sub.ok()) << sub.error().message;
  EXPECT_EQ(sub->disable_after_ms, 2'000);
  Subscription with = base_subscription();
  with.disable_after_ms = 2'000;
  ASSERT_TRUE(apply_subscription_fields(json::parse(R"({"disable_after": null})"), with, false).ok());
  EXPECT_FALSE(with.disable_after_ms.has_value());
  const Status refused = apply_subscription_fields(json::parse(R"({"disable_after": "soon"})"), with, false);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::invalid_field);
  EXPECT_NE(refused.error().message.find("disable_after"), std::string::npos) << refused.error().message;
}

// Routing fields (1.1): tenant, filter, ordering, coalesce; null clears tenant and filter.
TEST(ApplySubscriptionFieldsTest, RoutingFieldsAreAppliedAndChecked) {
  auto sub = apply_fields(R"({"tenant": "customer_42", "filter": {"payload.data.calendar_id": "cal_42"},
                              "ordering": "key", "coalesce": true})",
                          false);
  ASSERT_TRUE(sub.ok()) << sub.error().message;
  EXPECT_EQ(sub->tenant, "customer_42");
  EXPECT_EQ(sub->filter, R"({"payload.data.calendar_id":"cal_42"})");
  EXPECT_EQ(sub->ordering, Ordering::key);
  EXPECT_TRUE(sub->coalesce);

  sub = apply_fields(R"({"tenant": null, "filter": null, "coalesce": false, "ordering": "none"})", false, *sub);
  ASSERT_TRUE(sub.ok()) << sub.error().message;
  EXPECT_TRUE(sub->tenant.empty());
  EXPECT_TRUE(sub->filter.empty());
  EXPECT_EQ(sub->ordering, Ordering::none);

  const std::vector<std::pair<std::string, std::string>> refused = {
      {R"({"tenant": ""})", "field 'tenant' must be null or 1-128 characters of [A-Za-z0-9._:-]"},
      {R"({"tenant": "a/b"})", "field 'tenant' must be null or 1-128 characters of [A-Za-z0-9._:-]"},
      {R"({"filter": ["payload.a"]})", "field 'filter' must be null or an object"},
      {R"({"filter": {"payload.n": {"$gt": true}}})", "filter: payload.n: $gt takes a number or a string"},
      {R"({"ordering": "fifo"})", R"(field 'ordering' must be "none" or "key")"},
      {R"({"coalesce": 1})", "field 'coalesce' must be true or false"},
      {R"({"coalesce": true})", R"(field 'coalesce' needs "ordering": "key" (coalescing works per ordering key))"},
      {R"({"coalesce": true, "ordering": "none"})",
       R"(field 'coalesce' needs "ordering": "key" (coalescing works per ordering key))"},
  };
  for (const auto& [body, message] : refused) {
    const auto refused_sub = apply_fields(body, false);
    ASSERT_FALSE(refused_sub.ok()) << body;
    EXPECT_EQ(refused_sub.error().message, message) << body;
  }
}

TEST(ApplySubscriptionFieldsTest, RoutingFieldsSurviveTheStoredRecord) {
  Subscription s = base_subscription();
  s.tenant = "customer_42";
  s.filter = R"({"payload.n":{"$gt":1.5}})";
  s.ordering = Ordering::key;
  s.coalesce = true;
  const auto back = records::decode_subscription(records::encode_record(s));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->tenant, s.tenant);
  EXPECT_EQ(back->filter, s.filter);
  EXPECT_EQ(back->ordering, Ordering::key);
  EXPECT_TRUE(back->coalesce);
}

TEST(ApplySubscriptionFieldsTest, PatchTouchesOnlyTheGivenFields) {
  Subscription start = base_subscription();
  start.retry.initial_ms = 1'000;
  start.timeout_ms = 2'000;
  start.headers = {{"X-A", "1"}};
  auto sub = apply_fields(R"({"description": "d"})", false, start);
  ASSERT_TRUE(sub.ok());
  Subscription expected = start;
  expected.description = "d";
  EXPECT_EQ(records::to_record(*sub), records::to_record(expected));

  // null clears the optional overrides; headers are replaced as a whole.
  sub = apply_fields(R"({"retry": {"initial": null}, "timeout": null, "headers": {}})", false, start);
  ASSERT_TRUE(sub.ok());
  EXPECT_FALSE(sub->retry.initial_ms);
  EXPECT_FALSE(sub->timeout_ms);
  EXPECT_TRUE(sub->headers.empty());

  // The scheme and header can change separately.
  sub = apply_fields(R"({"signature": {"scheme": "standard"}})", false, start);
  ASSERT_TRUE(sub.ok());
  EXPECT_EQ(sub->signature_header, start.signature_header);
  sub = apply_fields(R"({"signature": {}})", false, start);
  ASSERT_TRUE(sub.ok());
  EXPECT_EQ(records::to_record(*sub), records::to_record(start));

  for (const std::string& secret : std::vector<std::string>{"12345678", std::string(256, 's'), std::string("whsec_AAECAwQFBgc=")}) {
    sub = apply_fields(json{{"secret", secret}}.dump(), false, start);
    ASSERT_TRUE(sub.ok()) << secret << ": " << sub.error().message;
    EXPECT_EQ(sub->secret, secret);
  }
  for (const std::string& url : std::vector<std::string>{"http://10.0.0.1:9000/x", "https://[2001:db8::1]/hook", "HTTPS://Example.COM"}) {
    sub = apply_fields(json{{"url", url}}.dump(), false, start);
    ASSERT_TRUE(sub.ok()) << url << ": " << sub.error().message;
    EXPECT_EQ(sub->url, url);
  }
  sub = apply_fields(R"({"rate_limit_per_second": 0, "max_in_flight": 1, "enabled": true})", false, start);
  ASSERT_TRUE(sub.ok());
  EXPECT_EQ(sub->rate_limit_per_second, 0u);
  EXPECT_EQ(sub->max_in_flight, 1u);
}

TEST(ApplySubscriptionFieldsTest, EveryInvalidValueIsRefusedAndLeavesTheTargetUnchanged) {
  json many_patterns = json::array();
  for (int i = 0; i < 65; ++i) many_patterns.push_back("t" + std::to_string(i));
  json many_headers = json::object();
  for (int i = 0; i < 33; ++i) many_headers["X-H" + std::to_string(i)] = "v";

  const std::vector<json> cases = {
      {{"url", 5}},
      {{"url", nullptr}},
      {{"url", ""}},
      {{"url", "not a url"}},
      {{"url", "/relative/path"}},
      {{"url", "ftp://example.com/"}},
      {{"url", "file:///etc/passwd"}},
      {{"url", "javascript:alert(1)"}},
      {{"url", "http://"}},
      {{"url", "http:///path"}},
      {{"url", "https://user:pw@example.com/"}},
      {{"url", "https://example.com/#fragment"}},
      {{"url", "https://exa mple.com/"}},
      {{"event_types", "meeting.*"}},
      {{"disable_after", 5}},
      {{"disable_after", "5"}},
      {{"disable_after", "-1d"}},
      {{"disable_after", "never"}},
      {{"disable_after", true}},
      {{"disabled_reason", "failing"}},
      {{"disabled_at", nullptr}},
      {{"event_types", json::array()}},
      {{"event_types", many_patterns}},
      {{"event_types", {"ok", 5}}},
      {{"event_types", {"meeting*"}}},
      {{"event_types", {""}}},
      {{"event_types", nullptr}},
      {{"secret", 5}},
      {{"secret", nullptr}},  // only create generates a secret
      {{"secret", "short"}},
      {{"secret", std::string(257, 's')}},
      {{"secret", "whsec_!!!!not-base64!!!!"}},
      {{"secret", "whsec_AAECAw=="}},  // 4 bytes of key
      {{"secret", "whsec_"}},
      {{"signature", "standard"}},
      {{"signature", {{"scheme", "md5"}}}},
      {{"signature", {{"scheme", 1}}}},
      {{"signature", {{"header", "webhook-signature"}}}},
      {{"signature", {{"header", "X-Relay-Attempt"}}}},
      {{"signature", {{"header", "content-type"}}}},
      {{"signature", {{"header", "Bad Header"}}}},
      {{"signature", {{"header", ""}}}},
      {{"signature", {{"header", 5}}}},
      {{"signature", {{"algorithm", "x"}}}},
      {{"headers", "X-A: 1"}},
      {{"headers", many_headers}},
      {{"headers", {{"Host", "evil"}}}},
      {{"headers", {{"Content-Length", "1"}}}},
      {{"headers", {{"Webhook-Id", "x"}}}},
      {{"headers", {{"x-relay-delivery-id", "x"}}}},
      {{"headers", {{"Bad Name", "v"}}}},
      {{"headers", {{"X-Colon:", "v"}}}},
      {{"headers", {{"", "v"}}}},
      {{"headers", {{"X-A", 5}}}},
      {{"headers", {{"X-A", "a\r\nX-Injected: 1"}}}},
      {{"headers", {{"X-A", std::string(4097, 'v')}}}},
      {{"enabled", "true"}},
      {{"enabled", 1}},
      {{"description", 5}},
      {{"description", std::string(1025, 'd')}},
      {{"retry", "5s"}},
      {{"retry", {{"initial", "5"}}}},
      {{"retry", {{"initial", 5}}}},
      {{"retry", {{"initial", "0s"}}}},
      {{"retry", {{"window", "-1h"}}}},
      {{"retry", {{"backoff", "2"}}}},
      {{"retry", {{"initial", "2m"}, {"max_delay", "1m"}}}},
      {{"timeout", "6m"}},
      {{"timeout", "0s"}},
      {{"timeout", 15}},
      {{"timeout", "fast"}},
      {{"max_in_flight", 0}},
      {{"max_in_flight", 10001}},
      {{"max_in_flight", -1}},
      {{"max_in_flight", 1.5}},
      {{"max_in_flight", "5"}},
      {{"max_in_flight", 18446744073709551615ULL}},
      {{"rate_limit_per_second", -1}},
      {{"rate_limit_per_second", 1000001}},
      {{"rate_limit_per_second", 2.0}},
      {{"rate_limit_per_second", nullptr}},
      {{"unknown_field", 1}},
      {{"id", "sub_x"}},
      {{"created_at", 0}},
      // A valid field before the bad one is not applied either.
      {{"description", "changed"}, {"enabled", "no"}},
      {{"url", "https://changed.example/"}, {"zzz", 1}},
  };
  Subscription start = base_subscription();
  start.retry.max_delay_ms = 60'000;
  for (const json& body : cases) {
    Subscription target = start;
    const Status status = apply_subscription_fields(body, target, false);
    ASSERT_FALSE(status.ok()) << body.dump();
    EXPECT_EQ(status.error().code, Errc::invalid_field) << body.dump();
    EXPECT_EQ(status.error().message.find('\n'), std::string::npos);
    EXPECT_EQ(records::to_record(target), records::to_record(start)) << body.dump();
  }
  // Against the stored max_delay too.
  Subscription target = start;
  EXPECT_FALSE(apply_subscription_fields(json{{"retry", {{"initial", "2m"}}}}, target, false).ok());
  EXPECT_EQ(records::to_record(target), records::to_record(start));
}

TEST(ApplySubscriptionFieldsTest, CreateRequiresAUrl) {
  Subscription target;
  const Status status = apply_subscription_fields(json::parse(R"({"description": "x"})"), target, true);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, Errc::invalid_field);
  EXPECT_NE(status.error().message.find("url"), std::string::npos);
  EXPECT_TRUE(target.description.empty());
}

// rotate-secret takes a secret by the rules of the field, with the field's errors.
TEST(ValidateSecretTest, TakesWhatTheSecretFieldTakes) {
  const std::string kBadLength =
      "field 'secret' must be 8-256 characters (a whsec_ secret must be valid base64 of at least 8 bytes)";
  for (const json& value : {json("12345678"), json(std::string(256, 's')), json(kWhsec)}) {
    EXPECT_TRUE(validate_secret(value).ok()) << value.dump();
    EXPECT_TRUE(apply_fields(json{{"secret", value}}.dump(), false).ok()) << value.dump();
  }
  const std::vector<std::pair<json, std::string>> refused = {
      {json(42), "field 'secret' must be a string"},
      {json(nullptr), "field 'secret' must be a string"},
      {json("1234567"), kBadLength},
      {json(std::string(257, 's')), kBadLength},
      {json("whsec_AAEC"), kBadLength},         // 3 bytes
      {json("whsec_not base64!!"), kBadLength},
  };
  for (const auto& [value, message] : refused) {
    const Status status = validate_secret(value);
    ASSERT_FALSE(status.ok()) << value.dump();
    EXPECT_EQ(status.error().code, Errc::invalid_field);
    EXPECT_EQ(status.error().message, message) << value.dump();
    // The same error as the field of a PATCH.
    const auto patched = apply_fields(json{{"secret", value}}.dump(), false);
    ASSERT_FALSE(patched.ok());
    EXPECT_EQ(patched.error().message, message);
  }
}

}  // namespace subscription_fields_test
}  // namespace relay
