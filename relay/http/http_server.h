#pragma once
// The one HTTP/1.1 listener of relayd (API, health, metrics), on Boost.Beast with C++20
// coroutines: one coroutine per connection on the event loop, keep-alive, a body limit
// enforced while reading (oversize requests answer 413 without being buffered).
//
// Abuse bounds: a request is screened from its header before its body is read (a missing key
// answers 401 without relayd buffering a byte of the body); the bodies being read or handled
// share one memory budget (beyond it a request answers 503); connections are capped, and at the
// cap or when the process runs out of file descriptors the longest-idle keep-alive connection is
// closed to make room, so a flood of idle connections cannot lock out health probes. Out of
// descriptors with nothing idle, the accept loop sheds one queued connection with a reserve
// descriptor and backs off instead of spinning.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace relay {

class Logger;
class RelayMetrics;

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpResponse = boost::beast::http::response<boost::beast::http::string_body>;

struct HttpServerOptions {
  std::size_t max_body_bytes = 1 << 20;     // --max-body
  std::size_t max_body_memory = 256 << 20;  // --max-body-memory: bodies in flight together
  std::size_t max_connections = 10'000;     // --max-connections
  std::chrono::seconds idle_timeout{60};    // a keep-alive connection waiting for a request
};

struct HttpHandlers {
  using Handler = std::function<boost::asio::awaitable<HttpResponse>(HttpRequest)>;
  // Sees a request whose header is read and body is not (body() is empty): a response refuses
  // it (sent with Connection: close, the body is never read); nullopt lets the body be read.
  using Screen = std::function<std::optional<HttpResponse>(const HttpRequest& header)>;
  // Answers a request refused by the server itself: 413 body too large, 400 malformed, 503 the
  // body memory budget is spent.
  using Reject = std::function<HttpResponse(int status)>;

  Handler handle;
  Screen screen;
  Reject reject;
};

class HttpServer {
 public:
  // `metrics` gets the connection gauge and the shed-connection counters.
  HttpServer(boost::asio::io_context& io, HttpServerOptions options, HttpHandlers handlers, Logger& logger,
             RelayMetrics& metrics);
  ~HttpServer();

  // Binds and listens; throws std::system_error at startup when the address is unusable.
  boost::asio::ip::tcp::endpoint listen(const std::string& host, std::uint16_t port);
  void start();
  // Shutdown: keeps accepting (so clients get relayd's 503 rather than a refused connection)
  // but closes each connection after its next response. The listener closes with the loop.
  void drain();

 private:
  struct Shared;  // outlives the server: session frames may be destroyed with the io_context

  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> session(boost::asio::ip::tcp::socket socket);
  // Out of descriptors: make room or shed a queued connection. False when nothing could be done.
  bool make_room_after_exhaustion();

  boost::asio::io_context& io_;
  HttpServerOptions options_;
  HttpHandlers handlers_;
  Logger& logger_;
  boost::asio::ip::tcp::acceptor acceptor_;
  int reserve_fd_;  // an open /dev/null, given up to shed a connection when descriptors run out
  std::shared_ptr<Shared> shared_;
};

}  // namespace relay
