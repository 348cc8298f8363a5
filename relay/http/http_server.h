#pragma once
// The one HTTP/1.1 listener of relayd (API, health, metrics), on Boost.Beast with C++20
// coroutines: one coroutine per connection on the event loop, keep-alive, a body limit
// enforced while reading (oversize requests answer 413 without being buffered).

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http.hpp>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

namespace relay {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpResponse = boost::beast::http::response<boost::beast::http::string_body>;

struct HttpServerOptions {
  std::size_t max_body_bytes = 1 << 20;
  std::chrono::seconds idle_timeout{60};
};

class HttpServer {
 public:
  using Handler = std::function<boost::asio::awaitable<HttpResponse>(HttpRequest)>;
  // Answers a request refused before the handler ran (body too large, malformed request).
  using RejectHandler = std::function<HttpResponse(int status)>;

  HttpServer(boost::asio::io_context& io, HttpServerOptions options, Handler handler, RejectHandler reject);

  // Binds and listens; throws std::system_error at startup when the address is unusable.
  boost::asio::ip::tcp::endpoint listen(const std::string& host, std::uint16_t port);
  void start();
  // Stops accepting; open connections close after their current response.
  void stop();

 private:
  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> session(boost::asio::ip::tcp::socket socket);

  boost::asio::io_context& io_;
  HttpServerOptions options_;
  Handler handler_;
  RejectHandler reject_;
  boost::asio::ip::tcp::acceptor acceptor_;
  bool stopping_ = false;
};

}  // namespace relay
