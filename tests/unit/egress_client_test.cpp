// EgressClient against a real TestSubscriber over loopback TCP. The io_context runs on the
// test's thread, driven until the awaited callback has fired.

#include "relay/delivery/egress_client.h"

#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/egress_fixtures.h"
#include "tests/support/http2_subscriber.h"
#include "tests/support/test_subscriber.h"

namespace relay {
namespace egress_client_test {

using namespace std::chrono_literals;
using test::Http2Subscriber;
using test::json_post;
using test::loopback_allowed;
using test::Reply;
using test::run_until;
using test::TestSubscriber;

class EgressClientTest : public ::testing::Test {
 protected:
  // Sends one request and runs the io_context until its callback fired.
  EgressResponse send(EgressClient& client, EgressRequest request) {
    std::optional<EgressResponse> response;
    client.send(std::move(request), [&](EgressResponse r) { response = std::move(r); });
    EXPECT_TRUE(run_until(io_, [&] { return response.has_value(); }));
    return response.value_or(EgressResponse{});
  }

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{io_.get_executor()};
  TestSubscriber sub_;
};

TEST_F(EgressClientTest, PostsBodyAndHeadersExactly) {
  EgressClient client(io_, loopback_allowed());
  sub_.enqueue("/hook", Reply::ok("thanks"));
  const std::string body =
      R"({"type":"calendar.sync_events","data":{"calendar_id":"c_1","affected_event_uuids":["a","b"]}})";
  EgressRequest request = json_post(sub_.url("/hook?tenant=7"), body);
  request.headers.emplace_back("webhook-id", "evt_123");
  request.headers.emplace_back("X-Relay-Attempt", "1");

  const EgressResponse response = send(client, request);

  EXPECT_EQ(response.outcome, AttemptOutcome::success);
  EXPECT_EQ(response.http_status, 200);
  EXPECT_EQ(response.body_excerpt, "thanks");
  EXPECT_TRUE(response.error.empty()) << response.error;
  EXPECT_FALSE(response.retry_after.has_value());
  EXPECT_GE(response.duration_ms, 0);

  const auto requests = sub_.requests();
  ASSERT_EQ(requests.size(), 1u);
  const test::RecordedRequest& seen = requests[0];
  EXPECT_EQ(seen.method, "POST");
  EXPECT_EQ(seen.target, "/hook?tenant=7");
  EXPECT_EQ(seen.path, "/hook");
  EXPECT_EQ(seen.body, body);
  EXPECT_EQ(seen.header("content-type"), "application/json");
  EXPECT_EQ(seen.header("Webhook-Id"), "evt_123");
  EXPECT_EQ(seen.header("x-relay-attempt"), "1");
  EXPECT_EQ(seen.header("User-Agent"), "relay/" RELAY_VERSION);
  EXPECT_EQ(seen.header("Content-Length"), std::to_string(body.size()));
  EXPECT_FALSE(seen.header("Expect").has_value());
  EXPECT_FALSE(seen.header("Accept").has_value());
}

// Handles are configured for POST once and reused: a GET must leave the next POST a POST.
TEST_F(EgressClientTest, GetSendsNoBodyAndTheNextPostOnTheSameHandleIsAPostAgain) {
  EgressClient client(io_, loopback_allowed());
  sub_.enqueue("/status", Reply::ok("up"));
  EgressRequest get;
  get.url = sub_.url("/status?verbose=1");
  get.method = HttpMethod::get;
  get.timeout_ms = 30000;

  const EgressResponse got = send(client, get);
  const EgressResponse posted = send(client, json_post(sub_.url("/hook"), R"({"n":1})"));

  EXPECT_EQ(got.outcome, AttemptOutcome::success) << got.error;
  EXPECT_EQ(got.body_excerpt, "up");
  EXPECT_EQ(posted.outcome, AttemptOutcome::success) << posted.error;
  const auto requests = sub_.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].method, "GET");
  EXPECT_EQ(requests[0].target, "/status?verbose=1");
  EXPECT_EQ(requests[0].body, "");
  EXPECT_FALSE(requests[0].header("Content-Length").has_value());
  EXPECT_EQ(requests[1].method, "POST");
  EXPECT_EQ(requests[1].body, R"({"n":1})");
  EXPECT_EQ(requests[1].header("Content-Length"), "7");
  // Both on the one keep-alive connection, so the second did reuse the first's handle state.
  EXPECT_EQ(requests[0].connection_id, requests[1].connection_id);
}

TEST_F(EgressClientTest, DeletePutAndPatchAreSentAsThemselves) {
  EgressClient client(io_, loopback_allowed());
  EgressRequest del;
  del.url = sub_.url("/v1/subscriptions/sub_1");
  del.method = HttpMethod::del;
  EgressRequest put = json_post(sub_.url("/v1/things/1"), R"({"a":1})");
  put.method = HttpMethod::put;
  EgressRequest patch = json_post(sub_.url("/v1/subscriptions/sub_1"), R"({"enabled":false})");
  patch.method = HttpMethod::patch;

  for (const EgressRequest& request : {del, put, patch}) {
    const EgressResponse response = send(client, request);
    EXPECT_EQ(response.outcome, AttemptOutcome::success) << response.error;
  }

  const auto requests = sub_.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].method, "DELETE");
  EXPECT_EQ(requests[0].body, "");
  EXPECT_FALSE(requests[0].header("Content-Length").has_value());
  EXPECT_EQ(requests[1].method, "PUT");
  EXPECT_EQ(requests[1].body, R"({"a":1})");
  EXPECT_EQ(requests[2].method, "PATCH");
  EXPECT_EQ(requests[2].body, R"({"enabled":false})");
  EXPECT_EQ(requests[2].header("content-type"), "application/json");
}

// EtcdClusterStore keeps whole answers: max_kept_body as large as max_read_body.
TEST_F(EgressClientTest, WholeBodiesAreKeptUpToMaxKeptBody) {
  EgressOptions options = loopback_allowed();
  options.max_kept_body = 1 << 20;
  options.max_read_body = 1 << 20;
  EgressClient client(io_, options);
  const std::string body(300'000, 'x');
  sub_.enqueue("/big", Reply::ok(body));
  EgressRequest get;
  get.url = sub_.url("/big");
  get.method = HttpMethod::get;
  const EgressResponse response = send(client, get);
  EXPECT_EQ(response.outcome, AttemptOutcome::success) << response.error;
  EXPECT_EQ(response.body_excerpt.size(), body.size());
  EXPECT_EQ(response.body_excerpt, body);
}

TEST_F(EgressClientTest, ServerErrorIsHttp5xxWithBodyExcerpt) {
  EgressClient client(io_, loopback_allowed());
  sub_.enqueue(Reply::status(500, "database down"));
  const EgressResponse response = send(client, json_post(sub_.url("/")));
  EXPECT_EQ(response.outcome, AttemptOutcome::http_5xx);
  EXPECT_EQ(response.http_status, 500);
  EXPECT_EQ(response.body_excerpt, "database down");
}

TEST_F(EgressClientTest, GoneIsHttp4xx) {
  EgressClient client(io_, loopback_allowed());
  sub_.enqueue(Reply::status(410));
  const EgressResponse response = send(client, json_post(sub_.url("/")));
  EXPECT_EQ(response.outcome, AttemptOutcome::http_4xx);
  EXPECT_EQ(response.http_status, 410);
}

TEST_F(EgressClientTest, RedirectIsNotFollowed) {
  EgressClient client(io_, loopback_allowed());
  sub_.enqueue("/old", Reply::status(302).header("Location", sub_.url("/new")));
  const EgressResponse response = send(client, json_post(sub_.url("/old")));
  EXPECT_EQ(response.outcome, AttemptOutcome::other);
  EXPECT_EQ(response.http_status, 302);
  EXPECT_NE(response.error.find("redirect"), std::string::npos) << response.error;
  // A follow would have been made before the callback fired.
  EXPECT_EQ(sub_.request_count(), 1u);
  EXPECT_TRUE(sub_.requests("/new").empty());
}

TEST_F(EgressClientTest, RetryAfterIsCaptured) {
  EgressClient client(io_, loopback_allowed());
  sub_.enqueue(Reply::status(503).header("Retry-After", "7"));
  sub_.enqueue(Reply::status(429).header("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT"));

  const EgressResponse unavailable = send(client, json_post(sub_.url("/")));
  EXPECT_EQ(unavailable.outcome, AttemptOutcome::http_5xx);
  EXPECT_EQ(unavailable.retry_after, "7");

  const EgressResponse limited = send(client, json_post(sub_.url("/")));
  EXPECT_EQ(limited.outcome, AttemptOutcome::http_4xx);
  EXPECT_EQ(limited.http_status, 429);
  EXPECT_EQ(limited.retry_after, "Wed, 21 Oct 2015 07:28:00 GMT");
}

TEST_F(EgressClientTest, BlackholedSubscriberTimesOutWhileHealthyOneAnswers) {
  EgressClient client(io_, loopback_allowed());
  TestSubscriber dead;
  dead.respond(Reply::blackhole());

  std::optional<EgressResponse> slow;
  EgressRequest slow_request = json_post(dead.url("/"));
  slow_request.timeout_ms = 3000;
  client.send(slow_request, [&](EgressResponse r) { slow = std::move(r); });
  ASSERT_TRUE(run_until(io_, [&] { return dead.request_count() == 1; }));  // the slow one is now stuck

  std::optional<EgressResponse> fast;
  client.send(json_post(sub_.url("/")), [&](EgressResponse r) { fast = std::move(r); });
  ASSERT_TRUE(run_until(io_, [&] { return fast.has_value() || slow.has_value(); }));
  ASSERT_TRUE(fast.has_value()) << "the healthy subscriber waited behind the dead one";
  EXPECT_EQ(fast->outcome, AttemptOutcome::success);
  EXPECT_FALSE(slow.has_value());

  ASSERT_TRUE(run_until(io_, [&] { return slow.has_value(); }));
  EXPECT_EQ(slow->outcome, AttemptOutcome::timeout);
  EXPECT_EQ(slow->http_status, 0);
  EXPECT_FALSE(slow->error.empty());
}

TEST_F(EgressClientTest, ConnectionClosedWithoutAnswerIsAnError) {
  EgressClient client(io_, loopback_allowed());
  sub_.enqueue(Reply::close_connection());
  const EgressResponse response = send(client, json_post(sub_.url("/")));
  EXPECT_EQ(response.outcome, AttemptOutcome::other);
  EXPECT_EQ(response.http_status, 0);
  EXPECT_FALSE(response.error.empty());
}

TEST_F(EgressClientTest, ConnectionRefusedIsConnectError) {
  // A socket bound to the port but not listening holds it for the whole test (closing it first
  // would let another process take the port): a connect to it is refused.
  boost::asio::ip::tcp::socket holder(io_);
  holder.open(boost::asio::ip::tcp::v4());
  holder.bind({boost::asio::ip::make_address_v4("127.0.0.1"), 0});
  const std::uint16_t closed_port = holder.local_endpoint().port();
  EgressClient client(io_, loopback_allowed());
  const EgressResponse response =
      send(client, json_post("http://127.0.0.1:" + std::to_string(closed_port) + "/"));
  EXPECT_EQ(response.outcome, AttemptOutcome::connect_error) << response.error;
}

TEST_F(EgressClientTest, ResponseExcerptIsCapped) {
  EgressClient client(io_, loopback_allowed());
  std::string big;
  for (int i = 0; big.size() < 10000; ++i) big += std::to_string(i) + ",";
  sub_.enqueue(Reply::status(400, big));
  const EgressResponse response = send(client, json_post(sub_.url("/")));
  EXPECT_EQ(response.outcome, AttemptOutcome::http_4xx);
  EXPECT_EQ(response.body_excerpt, big.substr(0, 2048));
}

TEST_F(EgressClientTest, HugeBodyIsReadUpToTheCapThenTheConnectionCloses) {
  EgressOptions options = loopback_allowed();
  options.max_read_body = 64 * 1024;
  EgressClient client(io_, options);
  const std::string huge(4 * 1024 * 1024, 'x');
  sub_.enqueue(Reply::ok(huge));

  const EgressResponse first = send(client, json_post(sub_.url("/")));
  EXPECT_EQ(first.outcome, AttemptOutcome::success) << first.error;
  EXPECT_EQ(first.http_status, 200);
  EXPECT_EQ(first.body_excerpt, huge.substr(0, 2048));

  const EgressResponse second = send(client, json_post(sub_.url("/")));
  EXPECT_EQ(second.outcome, AttemptOutcome::success);
  const auto requests = sub_.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_NE(requests[0].connection_id, requests[1].connection_id);
}

TEST_F(EgressClientTest, SequentialRequestsReuseOneConnection) {
  EgressClient client(io_, loopback_allowed());
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(send(client, json_post(sub_.url("/"), std::to_string(i))).outcome, AttemptOutcome::success);
  }
  const auto requests = sub_.requests();
  ASSERT_EQ(requests.size(), 4u);
  for (const auto& r : requests) EXPECT_EQ(r.connection_id, requests[0].connection_id);
  EXPECT_EQ(sub_.connections_accepted(), 1u);
}

TEST_F(EgressClientTest, ConcurrentRequestsAllComplete) {
  EgressClient client(io_, loopback_allowed());
  constexpr int kCount = 25;
  int completed = 0;
  int succeeded = 0;
  for (int i = 0; i < kCount; ++i) {
    client.send(json_post(sub_.url("/n" + std::to_string(i))), [&](EgressResponse r) {
      ++completed;
      if (r.outcome == AttemptOutcome::success) ++succeeded;
    });
  }
  EXPECT_EQ(completed, 0) << "a callback ran inside send()";
  ASSERT_TRUE(run_until(io_, [&] { return completed == kCount; }));
  EXPECT_EQ(succeeded, kCount);
  EXPECT_EQ(sub_.request_count(), static_cast<std::size_t>(kCount));
}

TEST_F(EgressClientTest, LoopbackIsBlockedByDefault) {
  EgressClient client(io_, EgressOptions{});
  const EgressResponse response = send(client, json_post(sub_.url("/")));
  EXPECT_EQ(response.outcome, AttemptOutcome::blocked_destination);
  EXPECT_EQ(response.http_status, 0);
  EXPECT_NE(response.error.find("127.0.0.1 is loopback"), std::string::npos) << response.error;
  EXPECT_EQ(sub_.connections_accepted(), 0u);
}

TEST_F(EgressClientTest, HostnameResolvingToLoopbackIsBlocked) {
  EgressClient client(io_, EgressOptions{});
  const EgressResponse response =
      send(client, json_post("http://localhost:" + std::to_string(sub_.port()) + "/"));
  EXPECT_EQ(response.outcome, AttemptOutcome::blocked_destination) << response.error;
  EXPECT_EQ(sub_.connections_accepted(), 0u);
}

TEST_F(EgressClientTest, AllowCidrAndAllowPrivateNetworksLetLoopbackThrough) {
  {
    EgressClient client(io_, loopback_allowed());
    EXPECT_EQ(send(client, json_post("http://localhost:" + std::to_string(sub_.port()) + "/")).outcome,
              AttemptOutcome::success);
  }
  EgressOptions open;
  open.destinations.allow_private_networks = true;
  EgressClient client(io_, open);
  EXPECT_EQ(send(client, json_post(sub_.url("/"))).outcome, AttemptOutcome::success);
  EXPECT_EQ(sub_.request_count(), 2u);
}

TEST_F(EgressClientTest, UnresolvableHostIsDnsError) {
  EgressClient client(io_, loopback_allowed());
  const EgressResponse response = send(client, json_post("http://relay-egress-test.invalid/"));
  EXPECT_EQ(response.outcome, AttemptOutcome::dns_error) << response.error;
}

TEST_F(EgressClientTest, TlsHandshakeWithPlainHttpServerIsTlsError) {
  EgressClient client(io_, loopback_allowed());
  const EgressResponse response =
      send(client, json_post("https://127.0.0.1:" + std::to_string(sub_.port()) + "/"));
  EXPECT_EQ(response.outcome, AttemptOutcome::tls_error) << response.error;
}

TEST_F(EgressClientTest, TlsSubscriberWhoseCaIsTrustedGetsTheRequest) {
  EgressOptions options = loopback_allowed();
  options.ca_file = TestSubscriber::tls_ca_file();
  EgressClient client(io_, options);
  TestSubscriber tls(TestSubscriber::Transport::tls);
  tls.respond(Reply::ok("over tls"));
  const std::string body = R"({"type":"booking.cancelled","data":{"uid":"bk_1"}})";
  const EgressResponse response = send(client, json_post(tls.url("/hook"), body));
  EXPECT_EQ(response.outcome, AttemptOutcome::success) << response.error;
  EXPECT_EQ(response.body_excerpt, "over tls");
  ASSERT_EQ(tls.request_count(), 1u);
  EXPECT_EQ(tls.requests()[0].body, body);
}

TEST_F(EgressClientTest, TlsCertificateFromAnUntrustedCaIsRefused) {
  EgressClient client(io_, loopback_allowed());  // the system's CAs: the test CA is not one
  TestSubscriber tls(TestSubscriber::Transport::tls);
  const EgressResponse response = send(client, json_post(tls.url("/hook")));
  EXPECT_EQ(response.outcome, AttemptOutcome::tls_error) << response.error;
  EXPECT_EQ(tls.request_count(), 0u);
}

TEST_F(EgressClientTest, TlsCertificateForAnotherNameIsRefused) {
  EgressOptions options = loopback_allowed();
  options.destinations.allow_cidrs.push_back(parse_cidr("::1/128").value());
  options.ca_file = TestSubscriber::tls_ca_file();
  EgressClient client(io_, options);
  TestSubscriber tls(TestSubscriber::Transport::tls);  // its certificate names 127.0.0.1 only
  const EgressResponse response =
      send(client, json_post("https://localhost:" + std::to_string(tls.port()) + "/hook"));
  EXPECT_EQ(response.outcome, AttemptOutcome::tls_error) << response.error;
  EXPECT_EQ(tls.request_count(), 0u);
}

TEST_F(EgressClientTest, Http2IsSpokenWhenTheTlsSubscriberOffersIt) {
  Http2Subscriber h2;  // nghttpd: offers h2 by ALPN
  EgressOptions options = loopback_allowed();
  options.ca_file = TestSubscriber::tls_ca_file();
  EgressClient client(io_, options);
  // Sent together: HTTP/2 carries them as streams of one connection.
  constexpr std::size_t kCount = 5;
  std::vector<EgressResponse> responses;
  for (std::size_t i = 0; i < kCount; ++i) {
    client.send(json_post(h2.url("/hook"), "{\"n\":" + std::to_string(i) + "}"),
                [&](EgressResponse r) { responses.push_back(std::move(r)); });
  }
  ASSERT_TRUE(run_until(io_, [&] { return responses.size() == kCount; }));
  for (const EgressResponse& r : responses) {
    EXPECT_EQ(r.outcome, AttemptOutcome::success) << r.error;
    EXPECT_EQ(r.body_excerpt, "ok");
  }
  EXPECT_EQ(h2.posts(), kCount) << h2.log();
  EXPECT_EQ(h2.connections_with_posts(), 1u) << h2.log();
}

TEST_F(EgressClientTest, OnlyHttpAndHttpsAreSpoken) {
  EgressClient client(io_, loopback_allowed());
  const EgressResponse response = send(client, json_post("file:///etc/passwd"));
  EXPECT_EQ(response.outcome, AttemptOutcome::other);
  EXPECT_TRUE(response.body_excerpt.empty());
}

TEST_F(EgressClientTest, HeaderWithLineBreakIsRefusedBeforeSending) {
  EgressClient client(io_, loopback_allowed());
  EgressRequest request = json_post(sub_.url("/"));
  request.headers.emplace_back("X-Static", "a\r\nX-Injected: 1");
  const EgressResponse response = send(client, request);
  EXPECT_EQ(response.outcome, AttemptOutcome::other);
  EXPECT_FALSE(response.error.empty());
  EXPECT_EQ(sub_.connections_accepted(), 0u);
}

TEST_F(EgressClientTest, CancelAllEndsRunningAttempts) {
  EgressClient client(io_, loopback_allowed());
  sub_.respond(Reply::blackhole());
  std::optional<EgressResponse> response;
  client.send(json_post(sub_.url("/")), [&](EgressResponse r) { response = std::move(r); });
  ASSERT_TRUE(run_until(io_, [&] { return sub_.request_count() == 1; }));
  client.cancel_all();
  ASSERT_TRUE(run_until(io_, [&] { return response.has_value(); }));
  EXPECT_TRUE(response->cancelled);
  EXPECT_EQ(response->outcome, AttemptOutcome::other);
}

TEST_F(EgressClientTest, DestroyingTheClientAbandonsAttemptsWithoutCallbacks) {
  sub_.respond(Reply::blackhole());
  bool called = false;
  {
    EgressClient client(io_, loopback_allowed());
    client.send(json_post(sub_.url("/")), [&](EgressResponse) { called = true; });
    ASSERT_TRUE(run_until(io_, [&] { return sub_.request_count() == 1; }));
  }
  io_.poll();  // whatever the client left queued runs now and must not touch it
  EXPECT_FALSE(called);
}

}  // namespace egress_client_test
}  // namespace relay
