// Black-box tests of the subscription API (spec section 2, "Subscriptions"): create, list, get,
// patch, delete, rotate-secret, validation, and how enabling and deleting change which events a
// subscription receives.

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <cctype>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "relay/core/duration.h"
#include "tests/support/relayd_api_test.h"

namespace relay::test {
namespace api_subscriptions_test {

using nlohmann::json;

constexpr const char* kNowhere = "http://127.0.0.1:9/hook";

// True when `secret` is "whsec_" + standard base64 (padding optional) of exactly 32 bytes.
bool is_generated_secret(const std::string& secret) {
  if (!secret.starts_with("whsec_")) return false;
  std::string b64 = secret.substr(6);
  if (b64.size() == 43) b64 += '=';
  if (b64.size() != 44 || b64[43] != '=' || b64[42] == '=') return false;
  for (std::size_t i = 0; i < 43; ++i) {
    const unsigned char c = static_cast<unsigned char>(b64[i]);
    if (!std::isalnum(c) && c != '+' && c != '/') return false;
  }
  unsigned char raw[33];
  // EVP_DecodeBlock counts the padding byte: 44 characters always decode to 33.
  return EVP_DecodeBlock(raw, reinterpret_cast<const unsigned char*>(b64.data()), 44) == 33;
}

// A duration as relayd echoes it: "5s"-style text, or a number of milliseconds.
std::optional<std::int64_t> duration_ms(const json& value) {
  if (value.is_string()) return parse_duration_ms(value.get<std::string>());
  if (value.is_number_integer()) return value.get<std::int64_t>();
  return std::nullopt;
}

class SubscriptionsApi : public RelaydApiTest {
 protected:
  HttpResponse create(const json& body) { return call("POST", "/v1/subscriptions", body.dump()); }
  // Creates a subscription and returns the stored object; records a failure otherwise.
  json create_ok(json body) {
    if (!body.contains("url")) body["url"] = kNowhere;
    const HttpResponse r = create(body);
    EXPECT_EQ(r.status, 201) << body.dump() << " -> " << r.describe();
    const json created = r.json();
    EXPECT_TRUE(created.is_object() && created.value("id", "").starts_with("sub_")) << r.describe();
    return created.is_object() ? created : json::object();
  }
  HttpResponse get_subscription(const std::string& id) { return call("GET", "/v1/subscriptions/" + id); }
  std::vector<json> list() {
    const HttpResponse r = call("GET", "/v1/subscriptions");
    EXPECT_EQ(r.status, 200) << r.describe();
    const json doc = r.json();
    if (!doc.is_object() || !doc.contains("items") || !doc["items"].is_array()) {
      ADD_FAILURE() << "list without items: " << r.describe();
      return {};
    }
    return doc["items"].get<std::vector<json>>();
  }
  int deliveries_for(std::string_view type) {
    const HttpResponse r = call("POST", "/v1/events", json{{"type", type}, {"payload", {{"k", 1}}}}.dump());
    EXPECT_EQ(r.status, 202) << r.describe();
    return r.json().is_object() ? r.json().value("deliveries", -1) : -1;
  }
};

// ---------------------------------------------------------------------------------------------
// Create and read

TEST_F(SubscriptionsApi, CreateWithOnlyUrlFillsDefaultsAndGeneratesSecret) {
  const HttpResponse r = create({{"url", "https://hooks.example.com/relay"}});
  ASSERT_EQ(r.status, 201) << r.describe();
  const json sub = r.json();
  EXPECT_TRUE(sub.value("id", "").starts_with("sub_")) << r.describe();
  EXPECT_EQ(sub.value("url", ""), "https://hooks.example.com/relay");
  EXPECT_EQ(sub.value("event_types", json()), json::array({"*"}));
  EXPECT_EQ(sub.value("enabled", false), true);
  EXPECT_TRUE(is_generated_secret(sub.value("secret", ""))) << sub.value("secret", "");

  const HttpResponse got = get_subscription(sub["id"].get<std::string>());
  ASSERT_EQ(got.status, 200) << got.describe();
  EXPECT_EQ(got.json().value("id", ""), sub["id"]);
  EXPECT_EQ(got.json().value("url", ""), "https://hooks.example.com/relay");
}

TEST_F(SubscriptionsApi, GeneratedSecretsAreFreshPerSubscription) {
  std::set<std::string> secrets;
  std::set<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    const json sub = create_ok(json::object());
    EXPECT_TRUE(is_generated_secret(sub.value("secret", ""))) << sub.dump();
    secrets.insert(sub.value("secret", ""));
    ids.insert(sub.value("id", ""));
  }
  EXPECT_EQ(secrets.size(), 5u);
  EXPECT_EQ(ids.size(), 5u);
}

TEST_F(SubscriptionsApi, CreateStoresEveryField) {
  const json body = json::parse(R"({
    "url": "https://hooks.example.com/meetingbaas?token=abc123",
    "event_types": ["meeting.*", "calendar.sync_events"],
    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwTAWDZkLFX4E=",
    "signature": {"scheme": "hmac-sha256-hex", "header": "X-MeetingBaas-Signature"},
    "headers": {"X-Static": "v", "X-Tenant": "acme"},
    "enabled": true,
    "description": "CRM sync for acme",
    "retry": {"initial": "2s", "max_delay": "5m", "window": "2h"},
    "timeout": "10s",
    "max_in_flight": 8,
    "rate_limit_per_second": 20
  })");
  const HttpResponse r = create(body);
  ASSERT_EQ(r.status, 201) << r.describe();
  const std::string id = r.json().value("id", "");

  const HttpResponse got = get_subscription(id);
  ASSERT_EQ(got.status, 200) << got.describe();
  for (const json& sub : {r.json(), got.json()}) {
    SCOPED_TRACE(sub.dump());
    EXPECT_EQ(sub.value("id", ""), id);
    EXPECT_EQ(sub["url"], body["url"]);
    EXPECT_EQ(sub["event_types"], body["event_types"]);
    EXPECT_EQ(sub["headers"], body["headers"]);
    EXPECT_EQ(sub["enabled"], true);
    EXPECT_EQ(sub["description"], body["description"]);
    EXPECT_EQ(sub["signature"].value("scheme", ""), "hmac-sha256-hex");
    EXPECT_EQ(sub["signature"].value("header", ""), "X-MeetingBaas-Signature");
    EXPECT_EQ(duration_ms(sub["retry"].value("initial", json())), 2'000);
    EXPECT_EQ(duration_ms(sub["retry"].value("max_delay", json())), 300'000);
    EXPECT_EQ(duration_ms(sub["retry"].value("window", json())), 7'200'000);
    EXPECT_EQ(duration_ms(sub.value("timeout", json())), 10'000);
    EXPECT_EQ(sub.value("max_in_flight", 0), 8);
    EXPECT_EQ(sub.value("rate_limit_per_second", 0), 20);
  }
  // The create answer includes the secret as given.
  EXPECT_EQ(r.json()["secret"], body["secret"]);
}

TEST_F(SubscriptionsApi, ProvidedSecretIsKeptAsGiven) {
  for (const std::string secret : {"plain-shared-secret-without-prefix", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"}) {
    const json sub = create_ok({{"secret", secret}});
    EXPECT_EQ(sub.value("secret", ""), secret);
  }
}

TEST_F(SubscriptionsApi, UrlIsStoredExactlyQueryStringIncluded) {
  for (const std::string url : {
           "https://hooks.example.com/relay?token=s3cr%2Ft&x=1",
           "https://hooks.example.com/relay?token=a+b&token=c&empty=",
           "http://hooks.example.com:8443/deep/path/?token=abc",
           "https://HOOKS.Example.com/CaseSensitive/Path?Token=MiXeD",
       }) {
    const json sub = create_ok({{"url", url}});
    EXPECT_EQ(sub.value("url", ""), url);
    EXPECT_EQ(get_subscription(sub.value("id", "")).json().value("url", ""), url);
  }
}

TEST_F(SubscriptionsApi, ListReturnsEverySubscription) {
  EXPECT_TRUE(list().empty());
  std::set<std::string> created;
  for (int i = 0; i < 3; ++i) created.insert(create_ok({{"description", "n" + std::to_string(i)}}).value("id", ""));
  std::set<std::string> listed;
  for (const json& item : list()) listed.insert(item.value("id", ""));
  EXPECT_EQ(listed, created);
}

// ---------------------------------------------------------------------------------------------
// Validation: 400 and nothing created

TEST_F(SubscriptionsApi, InvalidSubscriptionsAreRejectedAndNothingIsCreated) {
  const std::vector<json> bodies{
      json::object(),                                            // url missing
      {{"url", ""}},
      {{"url", "not a url"}},
      {{"url", "hooks.example.com/relay"}},                      // no scheme
      {{"url", "ftp://hooks.example.com/relay"}},
      {{"url", "file:///etc/passwd"}},
      {{"url", "javascript:alert(1)"}},
      {{"url", "https://"}},                                     // no host
      {{"url", "https://hooks example.com/"}},
      {{"url", 42}},
      {{"url", kNowhere}, {"event_types", {"meet*ing"}}},
      {{"url", kNowhere}, {"event_types", {"a.*.b"}}},
      {{"url", kNowhere}, {"event_types", {"*.completed"}}},
      {{"url", kNowhere}, {"event_types", {"meeting*"}}},
      {{"url", kNowhere}, {"event_types", {""}}},
      {{"url", kNowhere}, {"event_types", {"bad type"}}},
      {{"url", kNowhere}, {"event_types", "meeting.*"}},         // not an array
      {{"url", kNowhere}, {"event_types", {42}}},
      {{"url", kNowhere}, {"signature", {{"scheme", "md5"}}}},
      {{"url", kNowhere}, {"signature", {{"scheme", 1}}}},
      {{"url", kNowhere}, {"retry", {{"initial", "5x"}}}},
      {{"url", kNowhere}, {"retry", {{"max_delay", "forever"}}}},
      {{"url", kNowhere}, {"retry", {{"window", "-1h"}}}},
      {{"url", kNowhere}, {"retry", {{"initial", 5}}}},
      {{"url", kNowhere}, {"timeout", "soon"}},
      {{"url", kNowhere}, {"timeout", "1.5s"}},
      {{"url", kNowhere}, {"max_in_flight", 0}},
      {{"url", kNowhere}, {"max_in_flight", -1}},
      {{"url", kNowhere}, {"max_in_flight", "64"}},
      {{"url", kNowhere}, {"rate_limit_per_second", -1}},
      {{"url", kNowhere}, {"enabled", "yes"}},
      {{"url", kNowhere}, {"headers", "X-Static: v"}},
      {{"url", kNowhere}, {"headers", {{"X-Static", 1}}}},
      {{"url", kNowhere}, {"headers", {{"X-Evil", "a\r\nInjected: 1"}}}},  // header injection
      {{"url", kNowhere}, {"headers", {{"Bad Name", "v"}}}},
      {{"url", kNowhere}, {"secret", 42}},
  };
  for (const json& body : bodies) {
    const HttpResponse r = create(body);
    EXPECT_EQ(r.status, 400) << body.dump() << " -> " << r.describe();
    EXPECT_EQ(r.error_code(), "invalid_field") << body.dump() << " -> " << r.describe();
  }
  for (const std::string body : {"{", "{\"url\": \"https://a.example/\",}", "nope"}) {
    const HttpResponse r = call("POST", "/v1/subscriptions", body);
    EXPECT_EQ(r.status, 400) << body << " -> " << r.describe();
    EXPECT_EQ(r.error_code(), "invalid_json") << body << " -> " << r.describe();
  }
  EXPECT_TRUE(list().empty());
}

TEST_F(SubscriptionsApi, ValidPatternsAndSchemesAreAccepted) {
  for (const json& body : {
           json{{"event_types", {"*"}}},
           json{{"event_types", {"meeting.*", "calendar.sync_events", "bot.status_change"}}},
           json{{"event_types", {"a.b.*"}}},
           json{{"signature", {{"scheme", "standard"}}}},
           json{{"signature", {{"scheme", "hmac-sha256-hex"}}}},
           json{{"retry", {{"initial", "500ms"}, {"max_delay", "1h"}, {"window", "1d"}}}},
           json{{"max_in_flight", 1}, {"rate_limit_per_second", 0}},
       }) {
    const json sub = create_ok(body);
    if (body.contains("event_types")) {
      EXPECT_EQ(sub.value("event_types", json()), body["event_types"]);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Unknown ids and methods

TEST_F(SubscriptionsApi, UnknownSubscriptionIs404Everywhere) {
  const std::string id = "sub_doesnotexist";
  const std::vector<HttpResponse> answers{
      call("GET", "/v1/subscriptions/" + id),
      call("PATCH", "/v1/subscriptions/" + id, R"({"enabled": false})"),
      call("DELETE", "/v1/subscriptions/" + id),
      call("POST", "/v1/subscriptions/" + id + "/rotate-secret", "{}"),
  };
  for (const HttpResponse& r : answers) {
    EXPECT_EQ(r.status, 404) << r.describe();
    EXPECT_EQ(r.error_code(), "not_found") << r.describe();
  }
}

TEST_F(SubscriptionsApi, WrongMethodIs405) {
  const std::string id = create_ok(json::object()).value("id", "");
  for (const auto& [method, path] : std::vector<std::pair<std::string, std::string>>{
           {"PUT", "/v1/subscriptions"}, {"DELETE", "/v1/subscriptions"}, {"PATCH", "/v1/subscriptions"},
           {"POST", "/v1/subscriptions/" + id}, {"PUT", "/v1/subscriptions/" + id},
           {"GET", "/v1/subscriptions/" + id + "/rotate-secret"}}) {
    const HttpResponse r = call(method, path, method == "GET" ? "" : "{}");
    EXPECT_EQ(r.status, 405) << method << " " << path << " -> " << r.describe();
    EXPECT_FALSE(r.error_code().empty()) << r.describe();
  }
  EXPECT_EQ(list().size(), 1u);
}

// ---------------------------------------------------------------------------------------------
// Patch, delete, rotate

TEST_F(SubscriptionsApi, PatchChangesOnlyTheGivenFields) {
  const json sub = create_ok({{"url", "https://a.example.com/hook"},
                              {"event_types", {"meeting.*"}},
                              {"description", "before"},
                              {"headers", {{"X-Static", "v"}}},
                              {"secret", "kept-secret-value"}});
  const std::string id = sub.value("id", "");

  const HttpResponse patched = call("PATCH", "/v1/subscriptions/" + id,
                                    json{{"url", "https://b.example.com/hook?token=t"}, {"enabled", false}}.dump());
  ASSERT_EQ(patched.status, 200) << patched.describe();
  for (const json& now : {patched.json(), get_subscription(id).json()}) {
    SCOPED_TRACE(now.dump());
    EXPECT_EQ(now.value("id", ""), id);
    EXPECT_EQ(now.value("url", ""), "https://b.example.com/hook?token=t");
    EXPECT_EQ(now.value("enabled", true), false);
    EXPECT_EQ(now.value("event_types", json()), json::array({"meeting.*"}));
    EXPECT_EQ(now.value("description", ""), "before");
    EXPECT_EQ(now.value("headers", json()), json({{"X-Static", "v"}}));
    ASSERT_TRUE(now.contains("secret")) << now.dump();
    EXPECT_EQ(now["secret"], "kept-secret-value");
  }

  const HttpResponse retyped = call("PATCH", "/v1/subscriptions/" + id,
                                    json{{"event_types", {"calendar.*"}}, {"description", "after"}}.dump());
  ASSERT_EQ(retyped.status, 200) << retyped.describe();
  EXPECT_EQ(retyped.json().value("event_types", json()), json::array({"calendar.*"}));
  EXPECT_EQ(retyped.json().value("description", ""), "after");
  EXPECT_EQ(retyped.json().value("enabled", true), false);
}

TEST_F(SubscriptionsApi, InvalidPatchChangesNothing) {
  const json sub = create_ok({{"url", "https://a.example.com/hook"}, {"event_types", {"meeting.*"}}});
  const std::string id = sub.value("id", "");
  for (const json& body : {json{{"url", "ftp://a.example.com/"}}, json{{"url", "nope"}},
                           json{{"event_types", {"a.*.b"}}}, json{{"max_in_flight", 0}},
                           json{{"timeout", "later"}}, json{{"signature", {{"scheme", "md5"}}}},
                           // A valid field next to an invalid one must not be applied either.
                           json{{"description", "half"}, {"retry", {{"window", "xx"}}}}}) {
    const HttpResponse r = call("PATCH", "/v1/subscriptions/" + id, body.dump());
    EXPECT_EQ(r.status, 400) << body.dump() << " -> " << r.describe();
    EXPECT_EQ(r.error_code(), "invalid_field") << r.describe();
  }
  const HttpResponse bad_json = call("PATCH", "/v1/subscriptions/" + id, "{\"url\":");
  EXPECT_EQ(bad_json.status, 400) << bad_json.describe();
  EXPECT_EQ(bad_json.error_code(), "invalid_json") << bad_json.describe();

  const json now = get_subscription(id).json();
  EXPECT_EQ(now.value("url", ""), "https://a.example.com/hook");
  EXPECT_EQ(now.value("event_types", json()), json::array({"meeting.*"}));
  EXPECT_NE(now.value("description", ""), "half");
  EXPECT_EQ(now.value("max_in_flight", 0), sub.value("max_in_flight", 0));
}

TEST_F(SubscriptionsApi, DeleteRemovesTheSubscriptionAndItsMatching) {
  const std::string keep = create_ok({{"event_types", {"meeting.*"}}}).value("id", "");
  const std::string gone = create_ok({{"event_types", {"*"}}}).value("id", "");
  EXPECT_EQ(deliveries_for("meeting.completed"), 2);

  const HttpResponse deleted = call("DELETE", "/v1/subscriptions/" + gone);
  EXPECT_EQ(deleted.status, 204) << deleted.describe();
  EXPECT_TRUE(deleted.body.empty()) << deleted.describe();
  EXPECT_EQ(get_subscription(gone).status, 404);
  const std::vector<json> items = list();
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].value("id", ""), keep);
  EXPECT_EQ(deliveries_for("meeting.completed"), 1);

  const HttpResponse again = call("DELETE", "/v1/subscriptions/" + gone);
  EXPECT_EQ(again.status, 404) << again.describe();
  EXPECT_EQ(again.error_code(), "not_found");
}

TEST_F(SubscriptionsApi, DisablingAndEnablingChangesMatching) {
  const std::string id = create_ok({{"event_types", {"meeting.*"}}}).value("id", "");
  EXPECT_EQ(deliveries_for("meeting.completed"), 1);
  ASSERT_EQ(call("PATCH", "/v1/subscriptions/" + id, R"({"enabled": false})").status, 200);
  EXPECT_EQ(deliveries_for("meeting.completed"), 0);
  ASSERT_EQ(call("PATCH", "/v1/subscriptions/" + id, R"({"enabled": true})").status, 200);
  EXPECT_EQ(deliveries_for("meeting.completed"), 1);
  ASSERT_EQ(call("PATCH", "/v1/subscriptions/" + id, R"({"event_types": ["calendar.*"]})").status, 200);
  EXPECT_EQ(deliveries_for("meeting.completed"), 0);
  EXPECT_EQ(deliveries_for("calendar.sync_events"), 1);
}

TEST_F(SubscriptionsApi, RotateSecretReturnsANewSecret) {
  const json sub = create_ok(json::object());
  const std::string id = sub.value("id", "");
  const std::string original = sub.value("secret", "");

  const HttpResponse generated = call("POST", "/v1/subscriptions/" + id + "/rotate-secret", R"({"grace_period": "24h"})");
  ASSERT_EQ(generated.status, 200) << generated.describe();
  const std::string fresh = generated.json().value("secret", "");
  EXPECT_TRUE(is_generated_secret(fresh)) << generated.describe();
  EXPECT_NE(fresh, original);
  const json after_generated = get_subscription(id).json();
  ASSERT_TRUE(after_generated.contains("secret")) << after_generated.dump();
  EXPECT_EQ(after_generated["secret"], fresh);

  const HttpResponse provided =
      call("POST", "/v1/subscriptions/" + id + "/rotate-secret", R"({"grace_period": "1h", "secret": "my-next-secret"})");
  ASSERT_EQ(provided.status, 200) << provided.describe();
  EXPECT_EQ(provided.json().value("secret", ""), "my-next-secret");

  const HttpResponse defaulted = call("POST", "/v1/subscriptions/" + id + "/rotate-secret", "{}");
  ASSERT_EQ(defaulted.status, 200) << defaulted.describe();
  EXPECT_TRUE(is_generated_secret(defaulted.json().value("secret", ""))) << defaulted.describe();
  const std::string latest = defaulted.json().value("secret", "");

  for (const std::string body : {R"({"grace_period": "soon"})", R"({"grace_period": 5})", R"({"secret": 42})"}) {
    const HttpResponse bad = call("POST", "/v1/subscriptions/" + id + "/rotate-secret", body);
    EXPECT_EQ(bad.status, 400) << body << " -> " << bad.describe();
    EXPECT_EQ(bad.error_code(), "invalid_field") << bad.describe();
  }
  const json after_refused = get_subscription(id).json();
  ASSERT_TRUE(after_refused.contains("secret")) << after_refused.dump();
  EXPECT_EQ(after_refused["secret"], latest);
}

TEST_F(SubscriptionsApi, SecretsNeverAppearInLogs) {
  const std::string given = "whsec_dGhpcyBpcyBhIHNlY3JldCBrZXkgZm9yIHRlc3Rpbmc=";
  const json sub = create_ok({{"secret", given}});
  const std::string id = sub.value("id", "");
  const HttpResponse rotated = call("POST", "/v1/subscriptions/" + id + "/rotate-secret", "{}");
  ASSERT_EQ(rotated.status, 200) << rotated.describe();
  const std::string generated = rotated.json().value("secret", "");
  const std::string generated_sub_secret = create_ok(json::object()).value("secret", "");
  ASSERT_EQ(call("PATCH", "/v1/subscriptions/" + id, R"({"description": "touch"})").status, 200);
  EXPECT_EQ(deliveries_for("meeting.completed"), 2);

  relayd().terminate();
  EXPECT_EQ(relayd().wait_exit(), 0);
  const std::string log = relayd().log_text();
  for (const std::string& secret : {given, generated, generated_sub_secret}) {
    ASSERT_FALSE(secret.empty());
    EXPECT_EQ(log.find(secret), std::string::npos) << "secret " << secret << " is in the log";
    // Also the base64 body alone, in case the prefix is logged apart.
    EXPECT_EQ(log.find(secret.substr(6)), std::string::npos) << "secret " << secret << " is in the log";
  }
}

}  // namespace api_subscriptions_test
}  // namespace relay::test
