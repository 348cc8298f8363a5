#pragma once
// TestSubscriber: a real HTTP/1.1 server standing in for a webhook receiver in tests.
//
// It listens on 127.0.0.1 on a free port and serves on its own thread, so the code under test
// (EgressClient, a whole relayd process) talks to it over real TCP. Keep-alive is honoured and
// every accepted connection gets an id, so tests can tell whether connections were reused.
//
// Scripting: how a request is answered is chosen in this order:
//   1. the next response queued for the request's path (enqueue(path, ...)), each used once;
//   2. the path's standing response (respond(path, ...));
//   3. the next response queued for any path (enqueue(...));
//   4. the standing response for any path (respond(...)); initially 200 with an empty body.
// Paths are matched without the query string. A response can be delayed, can close the
// connection without answering, can "blackhole" (never answer; the connection stays open
// until the client gives up or the subscriber is destroyed), or can be held: answered only when
// the test releases it (release_held), so that a test counts the requests a client keeps open
// at once (held()) without measuring time.
//
// Recording: every request is recorded (before its response is sent, so a blackholed request
// is recorded too). wait_for_requests / wait_until block on a condition variable, so tests
// wait for events instead of sleeping.
//
// TLS: TestSubscriber(Transport::tls) serves HTTPS (HTTP/1.1) with the certificate in
// tests/data/tls: 127.0.0.1, issued by a test CA whose certificate is tls_ca_file().
//
// All public methods are thread-safe.
//
//   relay::test::TestSubscriber sub;
//   sub.enqueue("/hook", relay::test::Reply::status(503).header("Retry-After", "2"));
//   ... make relayd POST to sub.url("/hook") ...
//   ASSERT_TRUE(sub.wait_for_requests(2, std::chrono::seconds(10)));
//   EXPECT_EQ(sub.requests()[1].header("webhook-id"), first_id);

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace relay::test {

// One scripted answer.
struct Reply {
  enum class Action {
    respond,    // send the status, headers and body
    close,      // close the connection without answering
    blackhole,  // never answer; keep the connection open
    hold,       // answer (status, headers, body) once release_held() lets the request go
  };

  Action action = Action::respond;
  int code = 200;  // HTTP status
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::chrono::milliseconds delay{0};  // wait this long before acting

  static Reply ok(std::string body = {}) { return status(200, std::move(body)); }
  static Reply status(int code, std::string body = {});
  static Reply close_connection();
  static Reply blackhole();
  // Held until release_held(); then answered with `code`.
  static Reply hold(int code = 200);

  Reply& header(std::string name, std::string value);
  Reply& after(std::chrono::milliseconds wait);
};

struct RecordedRequest {
  std::uint64_t connection_id = 0;  // 1 for the first accepted connection, then 2, ...
  std::chrono::steady_clock::time_point received_at;  // when the whole request was read
  std::chrono::system_clock::time_point received_wall;
  std::string method;
  std::string target;  // as sent, with the query string: "/hook?x=1"
  std::string path;    // target without the query string: "/hook"
  std::vector<std::pair<std::string, std::string>> headers;  // in arrival order
  std::string body;

  // Case-insensitive lookup of the first header with this name.
  std::optional<std::string> header(std::string_view name) const;
};

class TestSubscriber {
 public:
  enum class Transport { plain, tls };

  // Binds 127.0.0.1:0 and starts serving. Throws if the port cannot be bound.
  explicit TestSubscriber(Transport transport = Transport::plain);
  // Stops serving, closes every connection and joins the thread.
  ~TestSubscriber();
  TestSubscriber(const TestSubscriber&) = delete;
  TestSubscriber& operator=(const TestSubscriber&) = delete;

  std::uint16_t port() const;
  // "http://127.0.0.1:PORT" (https with TLS) + path; path should start with '/'.
  std::string url(std::string_view path = "/") const;

  // Scripting, see the order at the top of this file.
  void enqueue(std::string path, Reply reply);
  void respond(std::string path, Reply reply);
  void enqueue(Reply reply);
  void respond(Reply reply);
  // A rule consulted before everything else; returning nullopt falls through to the scripts.
  void set_handler(std::function<std::optional<Reply>(const RecordedRequest&)> handler);

  // Copies of what was recorded so far, in arrival order.
  std::vector<RecordedRequest> requests() const;
  std::vector<RecordedRequest> requests(std::string_view path) const;
  std::size_t request_count() const;
  std::size_t connections_accepted() const;

  // The requests held right now (Reply::hold), in arrival order. A held request stays here until
  // it is released, even when its client gave up meanwhile.
  std::vector<RecordedRequest> held() const;
  // Answers the held requests `which` selects (every one when empty); how many were released.
  std::size_t release_held(const std::function<bool(const RecordedRequest&)>& which = {});

  // Wait until at least `n` requests arrived in total; false on timeout.
  bool wait_for_requests(std::size_t n, std::chrono::milliseconds timeout);
  // Wait until `ready(requests so far)` holds; checked at every new request. False on timeout.
  bool wait_until(const std::function<bool(const std::vector<RecordedRequest>&)>& ready,
                  std::chrono::milliseconds timeout);

  // Forget the recorded requests and every script (connections stay open).
  void reset();

  // The PEM certificate of the CA that issued the TLS subscriber's certificate.
  static std::string tls_ca_file() { return tls_test_file("ca.pem"); }
  // A file of the test TLS identity in tests/data/tls: "ca.pem", "server.pem", "server.key".
  static std::string tls_test_file(std::string_view name);

 private:
  class Server;
  Transport transport_;
  std::unique_ptr<Server> server_;
};

}  // namespace relay::test
