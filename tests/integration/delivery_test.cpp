// Black-box tests of delivery (spec sections 2 "Deliveries", 3): the real relayd binary POSTs
// to real HTTP subscribers (TestSubscriber) and the tests check what arrives: fan-out by type
// pattern, body and headers, both signature schemes and rotation, retries, 410, Retry-After,
// redirects, isolation from slow and failing subscribers, the egress guard, disabled
// subscriptions and redelivery.
//
// relayd's state is only visible through its API, so where a test waits for relayd (not for a
// request to arrive) it polls that API until a deadline.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/relayd_api_test.h"
#include "tests/support/test_subscriber.h"
#include "tests/support/webhook_verifier.h"

namespace relay::test {
namespace delivery_test {

using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kWait = kApiWait;

// Loopback subscribers need --allow-cidr; fast retries keep retry tests short.
const std::vector<std::string> kLoopback{"--allow-cidr", "127.0.0.0/8"};
const std::vector<std::string> kFastRetries{"--allow-cidr",      "127.0.0.0/8", "--retry-initial", "100ms",
                                            "--retry-max-delay", "400ms",       "--retry-window",  "2s"};

// A realistic payload (Meeting BaaS "meeting.completed"), with escapes and non-ASCII text.
const json kMeetingPayload = json::parse(R"({
  "event": "complete",
  "data": {
    "bot_id": "4a3e5a5c-1b2c-4d5e-8f90-123456789abc",
    "mp4": "https://bots-videos.s3.eu-west-3.amazonaws.com/4a3e5a5c.mp4?X-Amz-Signature=abc",
    "speakers": ["Ann \"the host\" Lee", "José Núñez"],
    "transcript": [
      {"speaker": "Ann", "offset": 0, "words": [{"start": 0, "end": 1, "word": "Bonjour"}]},
      {"speaker": "José", "offset": 2, "words": []}
    ],
    "recorded": true,
    "extra": null
  }
})");

// The signatures of a `webhook-signature` header ("v1,SIG v1,SIG ...").
std::vector<std::string> split_words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> words;
  for (std::string word; in >> word;) words.push_back(word);
  return words;
}

using test::base64;
using test::hex;
using test::hmac_sha256;
using test::unbase64;

// "v1," + base64 HMAC over "{webhook-id}.{webhook-timestamp}.{body}" as the receiver computes it.
std::string expected_standard_signature(const std::string& secret, const RecordedRequest& request) {
  return test::standard_signature(secret, request.header("webhook-id").value_or(""),
                                  request.header("webhook-timestamp").value_or(""), request.body);
}

std::string header_or_empty(const RecordedRequest& request, std::string_view name) {
  return request.header(name).value_or("");
}

// An HTTP-date (RFC 9110) `seconds_from_now` whole seconds after the current second.
std::string http_date_in(int seconds_from_now) {
  const std::time_t at = std::time(nullptr) + seconds_from_now;
  std::tm tm{};
  gmtime_r(&at, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

std::chrono::milliseconds gap(const RecordedRequest& earlier, const RecordedRequest& later) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(later.received_at - earlier.received_at);
}

class Deliveries : public RelaydApiTest {
 protected:
  // The attempt objects of a delivery (GET /v1/deliveries/{id} "attempts").
  static std::vector<json> attempts_of(const json& delivery) {
    const json& attempts = delivery.contains("attempts") ? delivery["attempts"] : json();
    return attempts.is_array() ? attempts.get<std::vector<json>>() : std::vector<json>{};
  }
  // `receiver` serves /stuck, which never answers (relayd's attempt timeout must be far longer
  // than this check), and /ok: once the first connection to the host hangs, 20 events still
  // reach /ok well before /stuck's attempt times out.
  void expect_hanging_endpoint_does_not_delay_its_neighbour(TestSubscriber& receiver) {
    receiver.respond("/stuck", Reply::blackhole());
    const std::string stuck_id = subscribe_id({{"url", receiver.url("/stuck")}, {"max_in_flight", 4}});
    const std::string healthy_id = subscribe_id({{"url", receiver.url("/ok")}, {"event_types", {"meeting.*"}}});
    ASSERT_FALSE(stuck_id.empty() || healthy_id.empty());
    publish("bot.joined", {{"n", 0}}, 1);
    ASSERT_TRUE(receiver.wait_for_requests(1, kWait));
    constexpr std::size_t kEvents = 20;
    for (std::size_t i = 0; i < kEvents; ++i) publish("meeting.completed", {{"n", i}}, 2);
    EXPECT_TRUE(receiver.wait_until(
        [&](const std::vector<RecordedRequest>& requests) {
          return static_cast<std::size_t>(std::count_if(requests.begin(), requests.end(), [](const RecordedRequest& r) {
                   return r.path == "/ok";
                 })) >= kEvents;
        },
        std::chrono::seconds(15)))
        << "/ok got " << receiver.requests("/ok").size() << " of " << kEvents << " while /stuck on the same host hangs";
    EXPECT_GE(receiver.requests("/stuck").size(), 1u);
  }
  // The value of relay_circuit_state for a subscription, if exported.
  std::optional<double> circuit_state(const std::string& subscription_id) {
    const HttpResponse r = http_.get(relayd_->url("/metrics"));
    std::istringstream in(r.body);
    const std::string series = "relay_circuit_state{subscription=\"" + subscription_id + "\"}";
    for (std::string line; std::getline(in, line);) {
      if (line.starts_with(series)) return std::stod(line.substr(series.size()));
    }
    return std::nullopt;
  }
};

// ---------------------------------------------------------------------------------------------
// Fan-out, body and headers

TEST_F(Deliveries, FansOutToEverySubscriptionWhosePatternMatches) {
  TestSubscriber sub;
  start(kLoopback);
  const std::string exact = subscribe_id({{"url", sub.url("/exact")}, {"event_types", {"meeting.completed"}}});
  const std::string prefix = subscribe_id({{"url", sub.url("/prefix")}, {"event_types", {"meeting.*"}}});
  const std::string all = subscribe_id({{"url", sub.url("/all")}, {"event_types", {"*"}}});
  ASSERT_FALSE(exact.empty() || prefix.empty() || all.empty());

  // type -> the paths that must receive it
  const std::vector<std::pair<std::string, std::set<std::string>>> plan{
      {"meeting.completed", {"/exact", "/prefix", "/all"}},
      {"meeting.started", {"/prefix", "/all"}},
      {"meeting.bot.left", {"/prefix", "/all"}},
      {"calendar.sync_events", {"/all"}},
      {"meetingroom.booked", {"/all"}},  // "meeting.*" is a prefix up to the dot, not any text
      {"meeting.completed.v2", {"/prefix", "/all"}},
  };
  std::map<std::string, std::set<std::string>> expected_ids;  // path -> event ids
  std::size_t expected_total = 0;
  std::vector<std::string> event_ids;
  for (const auto& [type, paths] : plan) {
    const std::string id = publish(type, {{"type", type}}, static_cast<int>(paths.size()));
    ASSERT_FALSE(id.empty());
    event_ids.push_back(id);
    for (const std::string& path : paths) expected_ids[path].insert(id);
    expected_total += paths.size();
  }

  ASSERT_TRUE(sub.wait_for_requests(expected_total, kWait)) << sub.request_count() << " of " << expected_total;
  // Every delivery is recorded as succeeded before anything more could still be on its way.
  for (const std::string& event_id : event_ids) {
    for (const json& d : deliveries_of_event(event_id)) await_state(d.value("id", ""), "succeeded");
  }
  EXPECT_EQ(sub.request_count(), expected_total) << "a subscription got an event it does not match";
  for (const std::string path : {"/exact", "/prefix", "/all"}) {
    std::multiset<std::string> received;
    for (const RecordedRequest& r : sub.requests(path)) received.insert(header_or_empty(r, "webhook-id"));
    EXPECT_EQ(std::set<std::string>(received.begin(), received.end()), expected_ids[path]) << path;
    EXPECT_EQ(received.size(), expected_ids[path].size()) << path << " got an event twice";
  }
  for (std::size_t i = 0; i < plan.size(); ++i) {
    for (const RecordedRequest& r : sub.requests()) {
      if (header_or_empty(r, "webhook-id") == event_ids[i]) {
        EXPECT_EQ(header_or_empty(r, "X-Relay-Event-Type"), plan[i].first);
      }
    }
  }
}

TEST_F(Deliveries, RequestCarriesCompactPayloadHeadersAndStandardSignature) {
  TestSubscriber sub;
  start(kLoopback);
  const std::string given_secret = "whsec_" + base64("0123456789abcdef0123456789abcdef");
  const json given = subscribe({{"url", sub.url("/given?token=s%2Fx%3D1&b=2&b=3")},
                                {"event_types", {"meeting.completed"}},
                                {"secret", given_secret},
                                {"headers", {{"X-Static", "static value"}, {"X-Tenant", "acme"}}}});
  const json generated = subscribe({{"url", sub.url("/generated")}, {"event_types", {"meeting.*"}}});
  const json raw = subscribe({{"url", sub.url("/raw")}, {"secret", "a plain shared secret"}});
  ASSERT_FALSE(given.empty() || generated.empty() || raw.empty());
  EXPECT_EQ(given.value("secret", ""), given_secret);
  const std::string generated_secret = generated.value("secret", "");
  ASSERT_TRUE(generated_secret.starts_with("whsec_")) << generated.dump();
  EXPECT_EQ(unbase64(generated_secret.substr(6)).size(), 32u) << generated_secret;

  // Published pretty-printed: the body relayd sends is the compact form.
  const std::string published = json{{"type", "meeting.completed"}, {"payload", kMeetingPayload}}.dump(2);
  const HttpResponse posted = http_.post(relayd().url("/v1/events"), published, {bearer(kIngestKey)});
  ASSERT_EQ(posted.status, 202) << posted.describe();
  const std::string event_id = posted.json().value("id", "");
  ASSERT_TRUE(sub.wait_for_requests(3, kWait));

  const std::map<std::string, std::pair<json, std::string>> by_path{
      {"/given", {given, given_secret}}, {"/generated", {generated, generated_secret}}, {"/raw", {raw, "a plain shared secret"}}};
  for (const auto& [path, sub_and_secret] : by_path) {
    SCOPED_TRACE(path);
    const auto& [subscription, secret] = sub_and_secret;
    const auto received = sub.requests(path);
    ASSERT_EQ(received.size(), 1u);
    const RecordedRequest& r = received[0];
    const auto wall_s = std::chrono::duration_cast<std::chrono::seconds>(r.received_wall.time_since_epoch()).count();

    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.body, kMeetingPayload.dump()) << "the body is the payload as compact JSON";
    EXPECT_EQ(json::parse(r.body, nullptr, false), kMeetingPayload);
    EXPECT_EQ(header_or_empty(r, "Content-Type"), "application/json");
    const std::string agent = header_or_empty(r, "User-Agent");
    EXPECT_TRUE(agent.starts_with("relay/") && agent.size() > 6) << agent;
    EXPECT_EQ(header_or_empty(r, "webhook-id"), event_id);
    const std::string timestamp = header_or_empty(r, "webhook-timestamp");
    ASSERT_FALSE(timestamp.empty());
    ASSERT_TRUE(std::all_of(timestamp.begin(), timestamp.end(), [](unsigned char c) { return std::isdigit(c); }))
        << timestamp;
    EXPECT_LE(std::abs(std::stoll(timestamp) - wall_s), 30) << "webhook-timestamp is Unix seconds of the attempt";
    const auto signatures = split_words(header_or_empty(r, "webhook-signature"));
    EXPECT_EQ(signatures, std::vector<std::string>{expected_standard_signature(secret, r)})
        << "webhook-signature must verify with the subscription secret";
    EXPECT_EQ(header_or_empty(r, "X-Relay-Event-Type"), "meeting.completed");
    EXPECT_EQ(header_or_empty(r, "X-Relay-Delivery-Id"), delivery_id(event_id, subscription.value("id", "")));
    EXPECT_TRUE(header_or_empty(r, "X-Relay-Delivery-Id").starts_with("dlv_"));
    EXPECT_EQ(header_or_empty(r, "X-Relay-Attempt"), "1");
  }
  const RecordedRequest with_extras = sub.requests("/given").at(0);
  EXPECT_EQ(with_extras.target, "/given?token=s%2Fx%3D1&b=2&b=3") << "the URL is used exactly as given";
  EXPECT_EQ(header_or_empty(with_extras, "X-Static"), "static value");
  EXPECT_EQ(header_or_empty(with_extras, "X-Tenant"), "acme");
  EXPECT_FALSE(sub.requests("/raw").at(0).header("X-Static")) << "static headers belong to one subscription";
}

// Spec section 3: the body of an attempt is the payload's bytes as published, compacted, from
// the single and the batch route alike (the batch sent nlohmann's dump: keys sorted, 2.0 and
// 1e3 rewritten, escapes decoded). Compared as bytes, not as JSON values.
TEST_F(Deliveries, BodyIsThePayloadAsPublishedFromTheSingleAndTheBatchRoute) {
  TestSubscriber sub;
  start(kLoopback);
  const std::string secret = "hex-body-secret";
  ASSERT_FALSE(subscribe_id({{"url", sub.url("/hook")},
                             {"secret", secret},
                             {"signature", {{"scheme", "hmac-sha256-hex"}}}})
                   .empty());
  const std::string published = R"({ "zeta": 1, "alpha": [2.0, 1e3, -0.50E+2],
      "text": "caf\u00e9 \/ \"quoted\"", "big": 123456789012345678901234567890 })";
  const std::string compact =
      R"({"zeta":1,"alpha":[2.0,1e3,-0.50E+2],"text":"caf\u00e9 \/ \"quoted\"","big":123456789012345678901234567890})";
  const std::string single = R"({"type": "meeting.single", "payload": )" + published + "}";
  const std::string batched = R"({"type": "meeting.batched", "payload": )" + published + "}";
  ASSERT_EQ(http_.post(relayd().url("/v1/events"), single, {bearer(kIngestKey)}).status, 202);
  ASSERT_EQ(http_.post(relayd().url("/v1/events/batch"), R"({"events": [)" + batched + "]}", {bearer(kIngestKey)}).status,
            200);
  ASSERT_TRUE(sub.wait_for_requests(2, kWait));
  std::set<std::string> types;
  for (const RecordedRequest& r : sub.requests()) {
    types.insert(header_or_empty(r, "X-Relay-Event-Type"));
    EXPECT_EQ(r.body, compact) << header_or_empty(r, "X-Relay-Event-Type");
    // The signature is over those bytes.
    EXPECT_EQ(header_or_empty(r, "X-Webhook-Signature"), hex(hmac_sha256(secret, compact)));
  }
  EXPECT_EQ(types, (std::set<std::string>{"meeting.single", "meeting.batched"}));
}

TEST_F(Deliveries, DeliversOverTlsToASubscriberWhoseCaIsGiven) {
  TestSubscriber tls(TestSubscriber::Transport::tls);
  start({"--allow-cidr", "127.0.0.0/8", "--ca-file", TestSubscriber::tls_ca_file()});
  const std::string secret = "whsec_" + base64("0123456789abcdef0123456789abcdef");
  const std::string subscription_id = subscribe_id({{"url", tls.url("/hook")}, {"secret", secret}});
  ASSERT_FALSE(subscription_id.empty());
  const std::string event_id = publish("booking.cancelled", {{"uid", "bk_42"}}, 1);
  ASSERT_TRUE(tls.wait_for_requests(1, kWait));
  const RecordedRequest r = tls.requests().at(0);
  EXPECT_EQ(header_or_empty(r, "webhook-id"), event_id);
  EXPECT_EQ(split_words(header_or_empty(r, "webhook-signature")),
            std::vector<std::string>{expected_standard_signature(secret, r)});
  await_state(delivery_id(event_id, subscription_id), "succeeded");
}

TEST_F(Deliveries, TlsSubscriberWithAnUntrustedCertificateFailsWithTlsError) {
  TestSubscriber tls(TestSubscriber::Transport::tls);
  start(kFastRetries);  // no --ca-file: the system's CAs, which do not include the test CA
  const std::string subscription_id = subscribe_id({{"url", tls.url("/hook")}});
  ASSERT_FALSE(subscription_id.empty());
  const std::string event_id = publish("booking.cancelled", {{"uid", "bk_43"}}, 1);
  const json dead = await_state(delivery_id(event_id, subscription_id), "dead");
  EXPECT_EQ(dead.value("last_error", ""), "tls_error") << dead.dump();
  EXPECT_EQ(tls.request_count(), 0u);
}

TEST_F(Deliveries, HexSchemeSignsTheBodyInTheSubscriptionsHeader) {
  TestSubscriber sub;
  start(kLoopback);
  const std::string named = subscribe_id({{"url", sub.url("/named")},
                                          {"secret", "mb-secret-1"},
                                          {"signature", {{"scheme", "hmac-sha256-hex"}, {"header", "X-MeetingBaas-Signature"}}}});
  const std::string defaulted =
      subscribe_id({{"url", sub.url("/default")}, {"secret", "whsec_" + base64("hex-scheme-key-16b")}, {"signature", {{"scheme", "hmac-sha256-hex"}}}});
  ASSERT_FALSE(named.empty() || defaulted.empty());
  publish("bot.status_change", {{"bot_id", "b-7"}, {"status", {{"code", "in_call_recording"}}}}, 2);
  ASSERT_TRUE(sub.wait_for_requests(2, kWait));

  const RecordedRequest n = sub.requests("/named").at(0);
  EXPECT_EQ(header_or_empty(n, "X-MeetingBaas-Signature"), hex(hmac_sha256("mb-secret-1", n.body)));
  // The hex scheme keys with the secret's raw bytes, "whsec_" prefix included.
  const RecordedRequest d = sub.requests("/default").at(0);
  EXPECT_EQ(header_or_empty(d, "X-Webhook-Signature"), hex(hmac_sha256("whsec_" + base64("hex-scheme-key-16b"), d.body)));
}

TEST_F(Deliveries, RotationSignsWithNewAndOldSecretDuringGrace) {
  TestSubscriber sub;
  start(kLoopback);
  const std::string old_secret = "whsec_" + base64("old-key-old-key-old-key-old-key!");
  const std::string new_secret = "whsec_" + base64("new-key-new-key-new-key-new-key!");
  const std::string id = subscribe_id({{"url", sub.url("/hook")}, {"secret", old_secret}});
  ASSERT_FALSE(id.empty());

  const HttpResponse rotated = call("POST", "/v1/subscriptions/" + id + "/rotate-secret",
                                    json{{"grace_period", "1h"}, {"secret", new_secret}}.dump());
  ASSERT_EQ(rotated.status, 200) << rotated.describe();
  publish("meeting.started", {{"n", 1}}, 1);
  ASSERT_TRUE(sub.wait_for_requests(1, kWait));
  const RecordedRequest during = sub.requests().at(0);
  const auto signatures = split_words(header_or_empty(during, "webhook-signature"));
  EXPECT_EQ(signatures.size(), 2u) << header_or_empty(during, "webhook-signature");
  EXPECT_EQ(std::set<std::string>(signatures.begin(), signatures.end()),
            (std::set<std::string>{expected_standard_signature(new_secret, during), expected_standard_signature(old_secret, during)}));

  // A rotation without grace: only the newest secret signs.
  const std::string newest = "whsec_" + base64("newest-key-newest-key-newest-key");
  const HttpResponse immediate = call("POST", "/v1/subscriptions/" + id + "/rotate-secret",
                                      json{{"grace_period", "0s"}, {"secret", newest}}.dump());
  ASSERT_EQ(immediate.status, 200) << immediate.describe();
  publish("meeting.started", {{"n", 2}}, 1);
  ASSERT_TRUE(sub.wait_for_requests(2, kWait));
  const RecordedRequest after = sub.requests().at(1);
  EXPECT_EQ(split_words(header_or_empty(after, "webhook-signature")),
            std::vector<std::string>{expected_standard_signature(newest, after)});
}

// "2026-11-26T10:00:00.123Z" (the API's times) as a system_clock time point.
std::chrono::system_clock::time_point api_time(const std::string& text) {
  std::tm tm{};
  const char* rest = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  int millis = 0;
  if (rest != nullptr && *rest == '.') millis = std::atoi(rest + 1);
  return std::chrono::system_clock::from_time_t(timegm(&tm)) + std::chrono::milliseconds(millis);
}

// The receivers of the hex scheme in Meeting BaaS's docs (Flask and FastAPI
// `hmac.compare_digest(header, expected)`, Express `timingSafeEqual`) compare the whole header
// with one HMAC. Rotated as operations.md says (accept either secret during the grace period),
// such a receiver accepts every delivery, during the grace period and after it.
TEST_F(Deliveries, HexRotationIsAcceptedByAReceiverComparingTheWholeHeader) {
  TestSubscriber sub;
  start(kLoopback);
  const std::string old_secret = "mb-old-secret-1";
  const std::string new_secret = "mb-new-secret-2";
  const auto expected = [](const std::string& secret, const RecordedRequest& r) {
    return hex(hmac_sha256(secret, r.body));
  };
  // By value: relayd, stopped after this test's locals are gone, may still deliver.
  sub.set_handler([old_secret, new_secret, expected](const RecordedRequest& r) -> std::optional<Reply> {
    const std::string header = header_or_empty(r, "X-MeetingBaas-Signature");
    const bool valid = header == expected(old_secret, r) || header == expected(new_secret, r);
    return valid ? Reply::ok() : Reply::status(401, "Invalid signature");
  });
  const std::string id =
      subscribe_id({{"url", sub.url("/hook")},
                    {"secret", old_secret},
                    {"signature", {{"scheme", "hmac-sha256-hex"}, {"header", "X-MeetingBaas-Signature"}}}});
  ASSERT_FALSE(id.empty());
  const HttpResponse rotated = call("POST", "/v1/subscriptions/" + id + "/rotate-secret",
                                    json{{"grace_period", "3s"}, {"secret", new_secret}}.dump());
  ASSERT_EQ(rotated.status, 200) << rotated.describe();
  const auto expires_at = api_time(rotated.json().value("previous_secret_expires_at", ""));

  std::vector<std::string> events{publish("meeting.started", {{"n", 1}}, 1), publish("meeting.started", {{"n", 2}}, 1)};
  ASSERT_TRUE(sub.wait_for_requests(2, kWait));
  ASSERT_TRUE(eventually([&] { return std::chrono::system_clock::now() > expires_at; }));
  events.push_back(publish("meeting.started", {{"n", 3}}, 1));
  ASSERT_TRUE(sub.wait_for_requests(3, kWait));

  for (const RecordedRequest& r : sub.requests()) {
    const std::string header = header_or_empty(r, "X-MeetingBaas-Signature");
    // One value: the old secret's while the grace period runs, the new one's after it.
    if (r.received_wall < expires_at - 500ms) {
      EXPECT_EQ(header, expected(old_secret, r)) << r.body;
    } else if (r.received_wall > expires_at) {
      EXPECT_EQ(header, expected(new_secret, r)) << r.body;
    }
  }
  for (const std::string& event_id : events) {
    const json delivered = await_state(delivery_id(event_id, id), "succeeded");
    EXPECT_EQ(delivered.value("attempt_count", 0), 1) << "the first attempt is accepted: " << delivered.dump();
  }
}

// ---------------------------------------------------------------------------------------------
// Outcomes and retries

TEST_F(Deliveries, RetriesFailuresUntilSuccessAndRecordsEveryAttempt) {
  TestSubscriber sub;
  const std::string long_body(5000, 'x');
  sub.enqueue("/hook", Reply::status(500, "boom-1"));
  sub.enqueue("/hook", Reply::status(500, long_body));
  sub.enqueue("/hook", Reply::ok("thanks"));
  start(kFastRetries);
  const std::string sub_id = subscribe_id({{"url", sub.url("/hook")}});
  const std::string event_id = publish("meeting.completed", kMeetingPayload, 1);
  ASSERT_TRUE(sub.wait_for_requests(3, kWait));
  const std::string dlv = delivery_id(event_id, sub_id);
  const json done = await_state(dlv, "succeeded");

  const auto received = sub.requests();
  ASSERT_EQ(received.size(), 3u);
  for (std::size_t i = 0; i < received.size(); ++i) {
    EXPECT_EQ(header_or_empty(received[i], "X-Relay-Attempt"), std::to_string(i + 1));
    EXPECT_EQ(header_or_empty(received[i], "webhook-id"), event_id) << "the same on every retry";
    EXPECT_EQ(header_or_empty(received[i], "X-Relay-Delivery-Id"), dlv);
    EXPECT_EQ(received[i].body, kMeetingPayload.dump());
  }

  EXPECT_EQ(done.value("id", ""), dlv);
  EXPECT_EQ(done.value("event_id", ""), event_id);
  EXPECT_EQ(done.value("subscription_id", ""), sub_id);
  EXPECT_EQ(done.value("event_type", ""), "meeting.completed");
  EXPECT_FALSE(done.value("completed_at", json()).is_null()) << done.dump();
  const auto attempts = attempts_of(done);
  ASSERT_EQ(attempts.size(), 3u) << done.dump();
  const std::vector<int> statuses{500, 500, 200};
  const std::vector<std::string> outcomes{"http_5xx", "http_5xx", "success"};
  for (std::size_t i = 0; i < attempts.size(); ++i) {
    SCOPED_TRACE("attempt " + std::to_string(i + 1));
    EXPECT_EQ(attempts[i].value("number", 0), static_cast<int>(i + 1));
    EXPECT_EQ(attempts[i].value("http_status", 0), statuses[i]);
    EXPECT_EQ(attempts[i].value("outcome", ""), outcomes[i]);
    EXPECT_TRUE(attempts[i].contains("started_at") && attempts[i].contains("duration_ms"));
  }
  EXPECT_EQ(attempts[0].value("response_body", ""), "boom-1");
  EXPECT_EQ(attempts[1].value("response_body", ""), std::string(2048, 'x')) << "the first 2 KiB of the response";
  EXPECT_EQ(attempts[2].value("response_body", ""), "thanks");
}

TEST_F(Deliveries, GoneMakesTheDeliveryDeadAtOnce) {
  TestSubscriber sub;
  sub.respond("/hook", Reply::status(410, "unsubscribed"));
  start(kFastRetries);
  const std::string sub_id = subscribe_id({{"url", sub.url("/hook")}});
  const std::string event_id = publish("meeting.completed", {{"n", 1}}, 1);
  const json dead = await_state(delivery_id(event_id, sub_id), "dead");
  const auto attempts = attempts_of(dead);
  ASSERT_EQ(attempts.size(), 1u) << dead.dump();
  EXPECT_EQ(attempts[0].value("http_status", 0), 410);
  EXPECT_EQ(attempts[0].value("response_body", ""), "unsubscribed");
  EXPECT_EQ(sub.request_count(), 1u);
  const json dlq = get("/v1/dlq");
  ASSERT_EQ(dlq.value("items", json::array()).size(), 1u) << dlq.dump();
  EXPECT_EQ(dlq["items"][0].value("id", ""), dead.value("id", ""));
}

TEST_F(Deliveries, RetryAfterDelaysTheNextAttempt) {
  std::atomic<int> seen{0};  // outlives the subscriber whose handler counts with it
  TestSubscriber sub;
  // Seconds on a 429, then an HTTP date on a 503; both well above the 100ms backoff.
  sub.set_handler([&](const RecordedRequest&) -> std::optional<Reply> {
    const int n = ++seen;
    if (n == 1) return Reply::status(429).header("Retry-After", "1");
    if (n == 2) return Reply::status(503).header("Retry-After", http_date_in(2));
    return std::nullopt;  // 200
  });
  start({"--allow-cidr", "127.0.0.0/8", "--retry-initial", "100ms", "--retry-max-delay", "400ms", "--retry-window", "30s"});
  const std::string sub_id = subscribe_id({{"url", sub.url("/hook")}});
  const std::string event_id = publish("meeting.completed", {{"n", 1}}, 1);
  ASSERT_TRUE(sub.wait_for_requests(3, kWait));
  const auto received = sub.requests();
  // Lower bounds with a little slack for the clocks of two processes; the backoff alone would be ~100ms.
  EXPECT_GE(gap(received[0], received[1]), 950ms) << "Retry-After: 1 not honoured";
  EXPECT_GE(gap(received[1], received[2]), 900ms) << "Retry-After as HTTP date not honoured";
  const json done = await_state(delivery_id(event_id, sub_id), "succeeded");
  std::vector<int> statuses;
  for (const json& a : attempts_of(done)) statuses.push_back(a.value("http_status", 0));
  EXPECT_EQ(statuses, (std::vector<int>{429, 503, 200}));
}

TEST_F(Deliveries, RedirectIsAFailureAndNotFollowed) {
  TestSubscriber sub;
  sub.enqueue("/hook", Reply::status(302).header("Location", sub.url("/moved")));
  sub.respond("/hook", Reply::ok());
  start(kFastRetries);
  const std::string sub_id = subscribe_id({{"url", sub.url("/hook")}});
  const std::string event_id = publish("meeting.completed", {{"n", 1}}, 1);
  const json done = await_state(delivery_id(event_id, sub_id), "succeeded");
  const auto attempts = attempts_of(done);
  ASSERT_EQ(attempts.size(), 2u) << "the 3xx must count as a failed attempt: " << done.dump();
  EXPECT_EQ(attempts[0].value("http_status", 0), 302);
  EXPECT_NE(attempts[0].value("outcome", ""), "success");
  EXPECT_TRUE(sub.requests("/moved").empty()) << "the redirect was followed";
  EXPECT_EQ(sub.requests("/hook").size(), 2u);
}

// ---------------------------------------------------------------------------------------------
// Isolation

TEST_F(Deliveries, BlackholedSubscriberDoesNotDelayAHealthyOne) {
  TestSubscriber healthy;
  TestSubscriber blackhole;
  blackhole.respond(Reply::blackhole());
  // Attempts to the blackhole stay stuck for the whole test.
  start({"--allow-cidr", "127.0.0.0/8", "--attempt-timeout", "30s"});
  const std::string stuck_id = subscribe_id({{"url", blackhole.url("/hook")}, {"max_in_flight", 8}});
  const std::string healthy_id = subscribe_id({{"url", healthy.url("/hook")}});
  ASSERT_FALSE(stuck_id.empty() || healthy_id.empty());

  constexpr std::size_t kEvents = 60;
  std::vector<Clock::time_point> published_at;  // by payload "n": when its event was accepted
  for (std::size_t i = 0; i < kEvents; ++i) {
    published_at.push_back(Clock::now());
    publish("meeting.completed", {{"n", i}}, 2);
  }
  // Well inside the blackhole's 30s attempt timeout.
  ASSERT_TRUE(healthy.wait_for_requests(kEvents, 25s))
      << "healthy subscriber got " << healthy.request_count() << " of " << kEvents << " while another hangs";
  // The contract allows a healthy subscription's delivery a second's delay; each event is
  // measured from its own publication, with room for a loaded test machine.
  for (const RecordedRequest& r : healthy.requests()) {
    const std::size_t n = json::parse(r.body).value("n", kEvents);
    ASSERT_LT(n, kEvents) << r.body;
    EXPECT_LE(r.received_at - published_at[n], 5s) << "event " << n << " reached the healthy subscriber late";
  }
  // The blackhole really is holding attempts open, and none of them has finished.
  EXPECT_GE(blackhole.request_count(), 1u);
  EXPECT_LE(blackhole.request_count(), 8u) << "per-subscription max_in_flight";
  const json in_flight = get("/v1/deliveries?subscription_id=" + stuck_id + "&state=in_flight");
  EXPECT_GE(in_flight.value("items", json::array()).size(), 1u) << in_flight.dump();
  const json done = get("/v1/deliveries?subscription_id=" + stuck_id + "&state=succeeded");
  EXPECT_TRUE(done.value("items", json::array()).empty());
}

// Receivers often serve several subscriptions from one host (one service, one path per
// tenant or event family): a hanging endpoint there must not hold back the others.
TEST_F(Deliveries, BlackholedEndpointDoesNotDelayAnotherEndpointOnTheSameHost) {
  TestSubscriber receiver;
  start({"--allow-cidr", "127.0.0.0/8", "--attempt-timeout", "20s"});
  expect_hanging_endpoint_does_not_delay_its_neighbour(receiver);
}

// The same over TLS, where relay sets CURLOPT_PIPEWAIT so that attempts to one host share an
// HTTP/2 connection: libcurl then waits for a new connection's handshake to learn whether it can
// multiplex. That wait must end at the handshake (ALPN says HTTP/1.1 here), not at the hanging
// endpoint's answer, or /ok would get nothing until /stuck's attempt times out.
TEST_F(Deliveries, BlackholedEndpointDoesNotDelayAnotherEndpointOnTheSameTlsHost) {
  TestSubscriber receiver(TestSubscriber::Transport::tls);
  start({"--allow-cidr", "127.0.0.0/8", "--attempt-timeout", "20s", "--ca-file", TestSubscriber::tls_ca_file()});
  expect_hanging_endpoint_does_not_delay_its_neighbour(receiver);
}

TEST_F(Deliveries, FailingSubscriberOpensItsCircuitWithoutDelayingAHealthyOne) {
  TestSubscriber healthy;
  TestSubscriber failing;
  failing.respond(Reply::status(500, "down"));
  // The probe interval is far beyond the test: the count of 20 cannot race a probe.
  start({"--allow-cidr", "127.0.0.0/8", "--retry-initial", "100ms", "--retry-max-delay", "400ms", "--retry-window", "10m",
         "--circuit-probe-interval", "1h"});
  // One attempt at a time makes the count of attempts before the circuit opens exact.
  const std::string failing_id = subscribe_id({{"url", failing.url("/hook")}, {"max_in_flight", 1}});
  const std::string healthy_id = subscribe_id({{"url", healthy.url("/hook")}});
  ASSERT_FALSE(failing_id.empty() || healthy_id.empty());

  constexpr std::size_t kEvents = 50;
  std::vector<std::string> event_ids;
  for (std::size_t i = 0; i < kEvents; ++i) event_ids.push_back(publish("meeting.completed", {{"n", i}}, 2));
  ASSERT_TRUE(healthy.wait_for_requests(kEvents, kWait)) << healthy.request_count() << " of " << kEvents;
  ASSERT_TRUE(relayd().wait_for_log(
      [&](const std::string& line) { return line.find("circuit opened") != std::string::npos && line.find(failing_id) != std::string::npos; },
      kWait))
      << relayd().log_text();
  EXPECT_TRUE(eventually([&] { return circuit_state(failing_id) == 2.0; })) << "relay_circuit_state{subscription} must read 2 (open)";
  EXPECT_EQ(circuit_state(healthy_id), 0.0);

  // Held deliveries wait without using up attempts: 20 failures, then nothing until the probe.
  EXPECT_EQ(failing.request_count(), 20u);
  std::size_t attempts = 0;
  for (const std::string& event_id : event_ids) {
    for (const json& d : deliveries_of_event(event_id)) {
      if (d.value("subscription_id", "") == failing_id) {
        attempts += d.value("attempt_count", 0u);
        EXPECT_EQ(d.value("state", ""), "pending") << d.dump();
      }
    }
  }
  EXPECT_EQ(attempts, 20u);
  EXPECT_EQ(failing.request_count(), 20u);
}

// Spec 3: an open circuit lets one probe through per interval; while the probe runs the circuit
// is half-open (relay_circuit_state 1) and nothing else is sent; a failed probe opens it again
// (2), a successful one closes it (0) and the held deliveries flow. The subscriber's answers are
// scripted in order, so no step races a timer: 20 failures, a probe that hangs until its 4s
// timeout, then success.
TEST_F(Deliveries, HalfOpenProbeReopensOnFailureAndClosesOnSuccess) {
  TestSubscriber sub;
  for (int i = 0; i < 20; ++i) sub.enqueue(Reply::status(500, "down"));
  sub.enqueue(Reply::blackhole());
  sub.respond(Reply::ok());
  start({"--allow-cidr", "127.0.0.0/8", "--retry-initial", "100ms", "--retry-max-delay", "400ms", "--retry-window", "10m",
         "--circuit-probe-interval", "3s"});
  const std::string sub_id = subscribe_id({{"url", sub.url("/hook")}, {"max_in_flight", 1}, {"timeout", "4s"}});
  ASSERT_FALSE(sub_id.empty());
  std::vector<std::string> event_ids;
  for (int i = 0; i < 25; ++i) event_ids.push_back(publish("meeting.completed", {{"n", i}}, 1));

  ASSERT_TRUE(sub.wait_for_requests(21, kWait)) << "no probe after the circuit opened: " << sub.request_count();
  EXPECT_TRUE(eventually([&] { return circuit_state(sub_id) == 1.0; })) << "relay_circuit_state must read 1 (half-open)";
  EXPECT_EQ(sub.request_count(), 21u) << "one probe at a time while half-open";
  EXPECT_TRUE(eventually([&] { return circuit_state(sub_id) == 2.0; })) << "the failed probe must open the circuit again";
  EXPECT_EQ(sub.request_count(), 21u) << "nothing is sent between probes";

  for (const std::string& event_id : event_ids) await_state(delivery_id(event_id, sub_id), "succeeded");
  EXPECT_TRUE(eventually([&] { return circuit_state(sub_id) == 0.0; })) << "a successful probe closes the circuit";
}

// Spec 3 (1.1): the window keeps running while the circuit is open. With a 2 s window every
// delivery's window has ended long before the next probe (30 s): all go dead, unattempted ones
// included, with the reason as their last error.
TEST_F(Deliveries, OpenCircuitDoesNotStopRetryWindowsFromEnding) {
  TestSubscriber failing;
  failing.respond(Reply::status(500, "down"));
  start(kFastRetries);
  const std::string sub_id = subscribe_id({{"url", failing.url("/hook")}, {"max_in_flight", 1}});
  ASSERT_FALSE(sub_id.empty());
  constexpr std::size_t kEvents = 60;
  for (std::size_t i = 0; i < kEvents; ++i) publish("meeting.completed", {{"n", i}}, 1);
  const std::string dead_path = "/v1/deliveries?limit=100&state=dead&subscription_id=" + sub_id;
  EXPECT_TRUE(eventually([&] { return items(dead_path).size() == kEvents; }, 20s))
      << items(dead_path).size() << " of " << kEvents << " dead; attempts made: " << failing.request_count();
  std::size_t expired = 0;
  for (const json& d : items(dead_path)) expired += d.contains("last_error") && d["last_error"] == "window_expired" ? 1 : 0;
  EXPECT_GE(expired, 1u) << "deliveries whose window ended behind the open circuit";
  EXPECT_LT(failing.request_count(), kEvents) << "expired deliveries are not attempted";
}

// ---------------------------------------------------------------------------------------------
// Egress guard

TEST_F(Deliveries, LoopbackAndPrivateDestinationsAreRefusedWithoutAllowCidr) {
  TestSubscriber sub;
  start({"--retry-initial", "100ms", "--retry-max-delay", "200ms", "--retry-window", "1s"});
  const std::string port = std::to_string(sub.port());
  std::vector<std::string> sub_ids;
  for (const std::string& url : std::vector<std::string>{"http://127.0.0.1:" + port + "/hook", "http://localhost:" + port + "/hook",
                                "http://[::1]:" + port + "/hook", "http://0.0.0.0:" + port + "/hook",
                                std::string("http://169.254.169.254/latest/meta-data/")}) {
    sub_ids.push_back(subscribe_id({{"url", url}}));
    ASSERT_FALSE(sub_ids.back().empty()) << url;
  }
  const std::string event_id = publish("meeting.completed", {{"n", 1}}, static_cast<int>(sub_ids.size()));
  for (std::size_t i = 0; i < sub_ids.size(); ++i) {
    SCOPED_TRACE("subscription " + std::to_string(i));
    // Refused destinations are retried like any failure until the window closes.
    const json dead = await_state(delivery_id(event_id, sub_ids[i]), "dead");
    const auto attempts = attempts_of(dead);
    ASSERT_FALSE(attempts.empty()) << dead.dump();
    for (const json& a : attempts) {
      EXPECT_EQ(a.value("outcome", ""), "blocked_destination") << a.dump();
      EXPECT_TRUE(a.value("http_status", json()).is_null()) << a.dump();
    }
  }
  EXPECT_EQ(sub.request_count(), 0u) << "a refused destination was contacted";
}

// ---------------------------------------------------------------------------------------------
// Disabled subscriptions and redelivery

TEST_F(Deliveries, DisabledSubscriptionHoldsItsDeliveriesUntilEnabled) {
  TestSubscriber sub;
  // The first request hangs until the subscription's timeout; with one attempt at a time the
  // other deliveries queue behind it, so they are pending and unattempted when it is disabled.
  // The test must disable it before that timeout: 3s leaves a loaded machine room for one PATCH.
  // The window (5s) outlasts the timeout, so the first delivery is retried, not dead, after it;
  // held deliveries would still age out quickly if waiting aged them.
  sub.enqueue("/hook", Reply::blackhole());
  start(kFastRetries);
  const std::string sub_id = subscribe_id(
      {{"url", sub.url("/hook")}, {"max_in_flight", 1}, {"timeout", "3s"}, {"retry", {{"window", "5s"}}}});
  std::vector<std::string> event_ids;
  for (int i = 0; i < 3; ++i) event_ids.push_back(publish("meeting.completed", {{"n", i}}, 1));
  ASSERT_TRUE(sub.wait_for_requests(1, kWait));
  const auto first_request_at = Clock::now();
  const HttpResponse disabled = call("PATCH", "/v1/subscriptions/" + sub_id, R"({"enabled": false})");
  ASSERT_EQ(disabled.status, 200) << disabled.describe();
  // A disabled subscription matches nothing new.
  publish("meeting.completed", {{"n", 99}}, 0);

  std::vector<std::string> dlv_ids;
  for (const std::string& event_id : event_ids) dlv_ids.push_back(delivery_id(event_id, sub_id));
  const std::string first = header_or_empty(sub.requests().at(0), "X-Relay-Delivery-Id");
  // The hanging attempt ends (timeout) and is recorded; its retry is then due at once.
  ASSERT_TRUE(eventually([&] {
    const json d = delivery(first);
    return d.value("state", "") == "pending" && attempts_of(d).size() == 1;
  })) << delivery(first).dump();

  // Watch past the point where the retry was due and the 5s window is over: nothing is
  // attempted and nothing ages into the dead-letter queue.
  const auto watch_until = first_request_at + 3s + 5s + 1s;
  while (Clock::now() < watch_until) {
    ASSERT_EQ(sub.request_count(), 1u) << "a disabled subscription was attempted";
    for (const std::string& id : dlv_ids) {
      const json d = delivery(id);
      ASSERT_EQ(d.value("state", ""), "pending") << d.dump();
      ASSERT_EQ(attempts_of(d).size(), id == first ? 1u : 0u) << d.dump();
    }
    std::this_thread::sleep_for(100ms);
  }

  const HttpResponse enabled = call("PATCH", "/v1/subscriptions/" + sub_id, R"({"enabled": true})");
  ASSERT_EQ(enabled.status, 200) << enabled.describe();
  ASSERT_TRUE(sub.wait_for_requests(1 + event_ids.size(), kWait)) << sub.request_count();
  for (const std::string& id : dlv_ids) {
    const json done = await_state(id, "succeeded");
    EXPECT_EQ(attempts_of(done).size(), id == first ? 2u : 1u) << done.dump();
  }
  std::set<std::string> received;
  for (const RecordedRequest& r : sub.requests()) received.insert(header_or_empty(r, "webhook-id"));
  EXPECT_EQ(received, std::set<std::string>(event_ids.begin(), event_ids.end()));
}

// Spec 2: the time spent disabled does not count against the retry window. Disabled for 4 s
// just after its first failed attempt, a delivery with a 3 s window still has that window's
// rest after being enabled again, so it is retried more than once before it goes dead.
TEST_F(Deliveries, TimeSpentDisabledDoesNotCountAgainstTheRetryWindow) {
  TestSubscriber failing;
  failing.respond(Reply::status(500, "down"));
  start({"--allow-cidr", "127.0.0.0/8", "--retry-initial", "1s", "--retry-max-delay", "1s", "--retry-window", "3s"});
  const std::string sub_id = subscribe_id({{"url", failing.url("/hook")}});
  ASSERT_FALSE(sub_id.empty());
  const std::string dlv_id = delivery_id(publish("meeting.completed", {{"n", 1}}, 1), sub_id);
  ASSERT_TRUE(failing.wait_for_requests(1, kWait));
  const auto first_attempt_at = Clock::now();
  // Disabled before the retry, due a second (+-20%) after the first attempt.
  ASSERT_EQ(call("PATCH", "/v1/subscriptions/" + sub_id, R"({"enabled": false})").status, 200);
  // The window (3 s) passes while the subscription is disabled; the wait is what is tested.
  while (Clock::now() < first_attempt_at + 4s) {
    ASSERT_EQ(failing.request_count(), 1u) << "a disabled subscription was attempted";
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(call("PATCH", "/v1/subscriptions/" + sub_id, R"({"enabled": true})").status, 200);
  const json dead = await_state(dlv_id, "dead");
  // Counting the pause, the window ended at once: one more attempt, then dead. Without it, about
  // 3 s of window are left: retries a second apart.
  EXPECT_GE(attempts_of(dead).size(), 3u) << dead.dump();
}

TEST_F(Deliveries, RedeliverCreatesNewDeliveriesToMatchingSubscriptions) {
  TestSubscriber sub;
  start(kLoopback);
  const std::string a = subscribe_id({{"url", sub.url("/a")}, {"event_types", {"meeting.*"}}});
  const std::string b = subscribe_id({{"url", sub.url("/b")}});
  const std::string other = subscribe_id({{"url", sub.url("/other")}, {"event_types", {"calendar.*"}}});
  const std::string event_id = publish("meeting.completed", kMeetingPayload, 2);
  ASSERT_TRUE(sub.wait_for_requests(2, kWait));
  std::set<std::string> original;
  for (const json& d : deliveries_of_event(event_id)) original.insert(d.value("id", ""));
  ASSERT_EQ(original.size(), 2u);
  for (const std::string& id : original) await_state(id, "succeeded");

  const HttpResponse to_all = call("POST", "/v1/events/" + event_id + "/redeliver", "{}");
  ASSERT_EQ(to_all.status, 202) << to_all.describe();
  const json created = to_all.json().value("deliveries", json::array());
  ASSERT_EQ(created.size(), 2u) << to_all.describe();
  std::set<std::string> created_subs;
  for (const json& d : created) {
    EXPECT_FALSE(original.count(d.value("id", ""))) << "redelivery must create new deliveries";
    EXPECT_EQ(d.value("event_id", ""), event_id);
    created_subs.insert(d.value("subscription_id", ""));
  }
  EXPECT_EQ(created_subs, (std::set<std::string>{a, b}));
  ASSERT_TRUE(sub.wait_for_requests(4, kWait));

  const HttpResponse to_one =
      call("POST", "/v1/events/" + event_id + "/redeliver", json{{"subscription_id", a}}.dump());
  ASSERT_EQ(to_one.status, 202) << to_one.describe();
  ASSERT_EQ(to_one.json().value("deliveries", json::array()).size(), 1u) << to_one.describe();
  ASSERT_TRUE(sub.wait_for_requests(5, kWait));
  for (const json& d : deliveries_of_event(event_id)) await_state(d.value("id", ""), "succeeded");

  EXPECT_EQ(sub.requests("/a").size(), 3u);
  EXPECT_EQ(sub.requests("/b").size(), 2u);
  EXPECT_TRUE(sub.requests("/other").empty());
  std::set<std::string> delivery_ids;
  for (const RecordedRequest& r : sub.requests()) {
    EXPECT_EQ(header_or_empty(r, "webhook-id"), event_id) << "receivers deduplicate on webhook-id";
    EXPECT_EQ(r.body, kMeetingPayload.dump());
    delivery_ids.insert(header_or_empty(r, "X-Relay-Delivery-Id"));
  }
  EXPECT_EQ(delivery_ids.size(), 5u);
  EXPECT_EQ(deliveries_of_event(event_id).size(), 5u);

  EXPECT_EQ(call("POST", "/v1/events/" + event_id + "/redeliver", json{{"subscription_id", other}}.dump()).status, 409)
      << "the subscription does not match the event's type";
  EXPECT_EQ(call("POST", "/v1/events/evt_nope/redeliver", "{}").status, 404);
}

}  // namespace delivery_test
}  // namespace relay::test
