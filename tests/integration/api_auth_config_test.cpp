// Black-box tests of authentication and scopes (spec section 2, "Auth"), the open operational
// endpoints, and process configuration (spec section 1): flags, RELAY_* environment variables,
// bad configuration, signals.

#include <gtest/gtest.h>

#include <signal.h>

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/relayd_api_test.h"

namespace relay::test {
namespace api_auth_config_test {

using nlohmann::json;

const std::string kEvent = R"({"type": "meeting.completed", "payload": {"bot_id": "b-1"}})";
const std::string kBatch = R"({"events": [{"type": "meeting.completed", "payload": {"n": 1}}]})";
const std::string kSubscription = R"({"url": "http://127.0.0.1:9/hook"})";

class Auth : public RelaydApiTest {
 protected:
  std::string new_event() {
    const HttpResponse r = call("POST", "/v1/events", kEvent);
    EXPECT_EQ(r.status, 202) << r.describe();
    return r.json().is_object() ? r.json().value("id", "") : "";
  }
  std::string new_subscription() {
    const HttpResponse r = call("POST", "/v1/subscriptions", kSubscription);
    EXPECT_EQ(r.status, 201) << r.describe();
    return r.json().is_object() ? r.json().value("id", "") : "";
  }
  std::size_t subscription_count() {
    const json doc = call("GET", "/v1/subscriptions").json();
    return doc.is_object() && doc.contains("items") ? doc["items"].size() : 0;
  }
  std::size_t event_type_count() {
    const json doc = call("GET", "/v1/event-types").json();
    return doc.is_object() && doc.contains("items") ? doc["items"].size() : 0;
  }

  struct Route {
    std::string method;
    std::string path;
    std::string body;
  };
  // Every route an admin key may use and an ingest key may not.
  std::vector<Route> admin_routes(const std::string& event_id, const std::string& sub_id) {
    return {
        {"GET", "/v1/subscriptions", ""},
        {"POST", "/v1/subscriptions", kSubscription},
        {"GET", "/v1/subscriptions/" + sub_id, ""},
        {"PATCH", "/v1/subscriptions/" + sub_id, R"({"enabled": false})"},
        {"DELETE", "/v1/subscriptions/" + sub_id, ""},
        {"POST", "/v1/subscriptions/" + sub_id + "/rotate-secret", "{}"},
        {"GET", "/v1/events/" + event_id, ""},
        {"POST", "/v1/events/" + event_id + "/redeliver", "{}"},
        {"GET", "/v1/event-types", ""},
        {"GET", "/v1/deliveries", ""},
        {"GET", "/v1/dlq", ""},
        {"POST", "/v1/dlq/retry", "{}"},
    };
  }
};

// ---------------------------------------------------------------------------------------------
// Keys

TEST_F(Auth, MissingOrWrongKeyIs401) {
  const std::string event_id = new_event();
  const std::string sub_id = new_subscription();
  std::vector<Route> routes = admin_routes(event_id, sub_id);
  routes.push_back({"POST", "/v1/events", kEvent});
  routes.push_back({"POST", "/v1/events/batch", kBatch});
  const std::vector<Headers> bad_credentials{
      {},
      {bearer("wrong-key")},
      {x_api_key("wrong-key")},
      {bearer(std::string(kAdminKey) + "x")},
      {bearer(std::string(kAdminKey).substr(0, kAdminKey.size() - 1))},
      {"Authorization: Basic " + std::string(kAdminKey)},
      {"Authorization: " + std::string(kAdminKey)},
      {"Authorization: Bearer"},
      {"X-Api-Key: "},
  };
  for (const Route& route : routes) {
    for (const Headers& headers : bad_credentials) {
      const HttpResponse r = call(route.method, route.path, route.body, headers);
      EXPECT_EQ(r.status, 401) << route.method << " " << route.path << " with "
                               << (headers.empty() ? "no key" : headers[0]) << " -> " << r.describe();
      EXPECT_EQ(r.error_code(), "unauthorized") << r.describe();
    }
  }
  // Nothing was done on behalf of the rejected requests.
  EXPECT_EQ(subscription_count(), 1u);
  EXPECT_EQ(call("GET", "/v1/subscriptions/" + sub_id).json().value("enabled", false), true);
  const json types = call("GET", "/v1/event-types").json();
  ASSERT_EQ(types["items"].size(), 1u) << types.dump();
  EXPECT_EQ(types["items"][0].value("count", 0), 1);
}

TEST_F(Auth, BothHeaderFormsWorkForBothScopes) {
  for (const std::string_view key : {kAdminKey, kIngestKey}) {
    for (const std::string& header : {bearer(key), x_api_key(key)}) {
      const HttpResponse single = call("POST", "/v1/events", kEvent, {header});
      EXPECT_EQ(single.status, 202) << header << " -> " << single.describe();
      const HttpResponse batch = call("POST", "/v1/events/batch", kBatch, {header});
      EXPECT_EQ(batch.status, 200) << header << " -> " << batch.describe();
    }
  }
  for (const std::string& header : {bearer(kAdminKey), x_api_key(kAdminKey)}) {
    const HttpResponse r = call("GET", "/v1/subscriptions", "", {header});
    EXPECT_EQ(r.status, 200) << header << " -> " << r.describe();
  }
}

TEST_F(Auth, HeaderNamesAndBearerSchemeAreCaseInsensitive) {
  // HTTP field names and auth schemes are case-insensitive (RFC 9110 sections 5.1 and 11.1).
  for (const std::string& header : {"authorization: bearer " + std::string(kAdminKey),
                                    "AUTHORIZATION: BEARER " + std::string(kAdminKey),
                                    "x-api-key: " + std::string(kAdminKey)}) {
    const HttpResponse r = call("GET", "/v1/subscriptions", "", {header});
    EXPECT_EQ(r.status, 200) << header << " -> " << r.describe();
  }
}

TEST_F(Auth, IngestKeyMayOnlyIngest) {
  const std::string event_id = new_event();
  const std::string sub_id = new_subscription();
  for (const Route& route : admin_routes(event_id, sub_id)) {
    for (const std::string& header : {bearer(kIngestKey), x_api_key(kIngestKey)}) {
      const HttpResponse r = call(route.method, route.path, route.body, {header});
      EXPECT_EQ(r.status, 403) << route.method << " " << route.path << " with " << header << " -> " << r.describe();
      EXPECT_EQ(r.error_code(), "forbidden") << r.describe();
    }
  }
  // The forbidden writes did not happen.
  EXPECT_EQ(subscription_count(), 1u);
  const json sub = call("GET", "/v1/subscriptions/" + sub_id).json();
  EXPECT_EQ(sub.value("enabled", false), true);
  const json event = call("GET", "/v1/events/" + event_id).json();
  EXPECT_EQ(event.value("deliveries", json::array()).size(), 0u);
}

TEST_F(Auth, SeveralKeysPerScopeAllWork) {
  start({"--api-key", "admin:second-admin-key-7d1e", "--api-key", "ingest:second-ingest-key-93aa"});
  for (const std::string_view key : {kAdminKey, std::string_view("second-admin-key-7d1e")}) {
    EXPECT_EQ(call("GET", "/v1/subscriptions", "", {bearer(key)}).status, 200) << key;
  }
  for (const std::string_view key : {kIngestKey, std::string_view("second-ingest-key-93aa")}) {
    EXPECT_EQ(call("POST", "/v1/events", kEvent, {x_api_key(key)}).status, 202) << key;
    EXPECT_EQ(call("GET", "/v1/subscriptions", "", {x_api_key(key)}).status, 403) << key;
  }
}

TEST_F(Auth, InsecureNoAuthNeedsNoKey) {
  relayd_.emplace(RelaydOptions::with_args({"--insecure-no-auth"}).without_api_keys());
  EXPECT_EQ(call("POST", "/v1/events", kEvent, {}).status, 202);
  EXPECT_EQ(call("POST", "/v1/subscriptions", kSubscription, {}).status, 201);
  EXPECT_EQ(call("GET", "/v1/subscriptions", "", {}).status, 200);
}

TEST_F(Auth, OperationalEndpointsNeedNoKey) {
  for (const char* path : {"/healthz", "/readyz", "/metrics"}) {
    const HttpResponse r = call("GET", path, "", {});
    EXPECT_EQ(r.status, 200) << path << " -> " << r.describe();
  }
  const HttpResponse metrics = call("GET", "/metrics", "", {});
  EXPECT_NE(metrics.body.find("relay_"), std::string::npos) << metrics.describe();
  EXPECT_TRUE(metrics.header("content-type").starts_with("text/plain")) << metrics.header("content-type");
}

TEST_F(Auth, KeysNeverAppearInLogs) {
  EXPECT_EQ(call("POST", "/v1/events", kEvent, {bearer(kIngestKey)}).status, 202);
  EXPECT_EQ(call("GET", "/v1/subscriptions", "", {bearer(kIngestKey)}).status, 403);
  EXPECT_EQ(call("GET", "/v1/subscriptions", "", {x_api_key(kAdminKey)}).status, 200);
  EXPECT_EQ(call("GET", "/v1/nope", "", {bearer(kAdminKey)}).status, 404);
  relayd().terminate();
  EXPECT_EQ(relayd().wait_exit(), 0);
  const std::string log = relayd().log_text();
  EXPECT_FALSE(log.empty());
  EXPECT_EQ(log.find(kAdminKey), std::string::npos) << "admin key in the log";
  EXPECT_EQ(log.find(kIngestKey), std::string::npos) << "ingest key in the log";
}

// ---------------------------------------------------------------------------------------------
// Configuration

struct BadConfig {
  std::string name;
  std::vector<std::string> args;              // after --listen and --data-dir
  std::map<std::string, std::string> env;
  std::string must_not_echo;                  // a secret the error line must not repeat
};

const std::string kKeys[] = {"--api-key", "admin:cfg-admin-key", "--api-key", "ingest:cfg-ingest-key"};

std::vector<std::string> with_keys(std::vector<std::string> args) {
  args.insert(args.begin(), std::begin(kKeys), std::end(kKeys));
  return args;
}

class Config : public ::testing::TestWithParam<BadConfig> {};

TEST_P(Config, BadConfigurationExits2WithOneLineAndWritesNothing) {
  const BadConfig& bad = GetParam();
  TempDir dir;
  const std::string data_dir = (dir.path() / "data").string();
  std::vector<std::string> args{"--listen", "127.0.0.1:0", "--data-dir", data_dir};
  args.insert(args.end(), bad.args.begin(), bad.args.end());

  const RelaydExit result = run_relayd_to_exit(args, bad.env);
  std::string text;
  for (const std::string& line : result.stderr_lines) text += line + "\n";
  EXPECT_FALSE(result.started) << "relayd accepted the configuration: " << text;
  EXPECT_EQ(result.exit_code, 2) << text;
  EXPECT_EQ(result.stderr_lines.size(), 1u) << text;
  if (!result.stderr_lines.empty()) {
    EXPECT_GT(result.stderr_lines[0].size(), 10u) << "not a clear line: " << text;
  }
  EXPECT_FALSE(std::filesystem::exists(data_dir)) << "bad config wrote " << data_dir;
  if (!bad.must_not_echo.empty()) {
    EXPECT_EQ(text.find(bad.must_not_echo), std::string::npos) << text;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Relayd, Config,
    ::testing::Values(
        BadConfig{"NoKey", {}, {}, ""},
        BadConfig{"BadDurationFlag", with_keys({"--retry-initial", "5x"}), {}, ""},
        BadConfig{"DurationWithoutNumber", with_keys({"--attempt-timeout", "s"}), {}, ""},
        BadConfig{"NegativeDuration", with_keys({"--retry-window", "-1h"}), {}, ""},
        BadConfig{"BadDurationEnv", with_keys({}), {{"RELAY_RETRY_MAX_DELAY", "forever"}}, ""},
        BadConfig{"ApiKeyWithoutScope", with_keys({"--api-key", "noscope-secret-4711"}), {}, "noscope-secret-4711"},
        BadConfig{"ApiKeyUnknownScope", with_keys({"--api-key", "root:rootsecret-4711"}), {}, "rootsecret-4711"},
        BadConfig{"ApiKeyEmpty", with_keys({"--api-key", "admin:"}), {}, ""},
        BadConfig{"UnknownFlag", with_keys({"--frobnicate"}), {}, ""},
        BadConfig{"UnknownFlagWithValue", with_keys({"--frobnicate", "yes"}), {}, ""},
        BadConfig{"BadDurability", with_keys({"--durability", "sometimes"}), {}, ""},
        BadConfig{"BadMaxInFlight", with_keys({"--max-in-flight", "lots"}), {}, ""},
        BadConfig{"BadCidr", with_keys({"--allow-cidr", "10.0.0.0/33"}), {}, ""},
        BadConfig{"InitialRetryAboveMaxDelay", with_keys({"--retry-initial", "20m", "--retry-max-delay", "10m"}), {}, ""},
        BadConfig{"BadListen", with_keys({"--listen", "nowhere"}), {}, ""},
        BadConfig{"FlagMissingValue", with_keys({"--retry-initial"}), {}, ""}),
    [](const ::testing::TestParamInfo<BadConfig>& info) { return info.param.name; });

TEST(ConfigEnv, EnvironmentVariableSetsAFlag) {
  RelaydProcess relayd(RelaydOptions::with_args({}).set_env("RELAY_MAX_BODY", "1024"));
  HttpClient http;
  const std::string big = json{{"type", "big.one"}, {"payload", std::string(2000, 'x')}}.dump();
  const HttpResponse r = http.post(relayd.url("/v1/events"), big, {bearer(kAdminKey)});
  EXPECT_EQ(r.status, 413) << r.describe();
  EXPECT_EQ(r.error_code(), "payload_too_large") << r.describe();
  EXPECT_EQ(http.post(relayd.url("/v1/events"), kEvent, {bearer(kAdminKey)}).status, 202);
}

TEST(ConfigEnv, FlagWinsOverEnvironment) {
  const std::string big = json{{"type", "big.one"}, {"payload", std::string(2000, 'x')}}.dump();
  {
    RelaydProcess relayd(RelaydOptions::with_args({"--max-body", "65536"}).set_env("RELAY_MAX_BODY", "1024"));
    HttpClient http;
    const HttpResponse r = http.post(relayd.url("/v1/events"), big, {bearer(kAdminKey)});
    EXPECT_EQ(r.status, 202) << "flag 64KiB, env 1KiB: " << r.describe();
  }
  {
    RelaydProcess relayd(RelaydOptions::with_args({"--max-body", "1024"}).set_env("RELAY_MAX_BODY", "65536"));
    HttpClient http;
    const HttpResponse r = http.post(relayd.url("/v1/events"), big, {bearer(kAdminKey)});
    EXPECT_EQ(r.status, 413) << "flag 1KiB, env 64KiB: " << r.describe();
  }
}

TEST(ConfigEnv, ApiKeyFromEnvironment) {
  RelaydProcess relayd(RelaydOptions::with_args({}).set_env("RELAY_API_KEY", "admin:env-admin-key-55c1").without_api_keys());
  HttpClient http;
  EXPECT_EQ(http.get(relayd.url("/v1/subscriptions"), {bearer("env-admin-key-55c1")}).status, 200);
  EXPECT_EQ(http.get(relayd.url("/v1/subscriptions"), {bearer(kAdminKey)}).status, 401);
}

// ---------------------------------------------------------------------------------------------
// Signals

TEST(Signals, SigtermExitsZero) {
  RelaydProcess relayd;
  HttpClient http;
  ASSERT_EQ(http.post(relayd.url("/v1/events"), kEvent, {bearer(kIngestKey)}).status, 202);
  relayd.terminate(SIGTERM);
  EXPECT_EQ(relayd.wait_exit(), 0) << relayd.log_text();
}

TEST(Signals, SigintExitsZero) {
  RelaydProcess relayd;
  relayd.terminate(SIGINT);
  EXPECT_EQ(relayd.wait_exit(), 0) << relayd.log_text();
}

TEST(Logs, EveryLineIsAJsonObjectWithTsLevelMsg) {
  RelaydProcess relayd;
  HttpClient http;
  ASSERT_EQ(http.post(relayd.url("/v1/events"), kEvent, {bearer(kIngestKey)}).status, 202);
  EXPECT_EQ(http.get(relayd.url("/v1/subscriptions"), {bearer("wrong")}).status, 401);
  relayd.terminate(SIGTERM);
  ASSERT_EQ(relayd.wait_exit(), 0);
  for (const std::string& line : relayd.log_lines()) {
    const json log = json::parse(line, nullptr, false);
    ASSERT_TRUE(log.is_object()) << line;
    EXPECT_TRUE(log.contains("ts") && log.contains("level") && log.contains("msg")) << line;
  }
}

}  // namespace api_auth_config_test
}  // namespace relay::test
