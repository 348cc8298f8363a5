// HttpServer over loopback TCP: the exact bytes of a response, keep-alive and pipelining, bodies
// larger than one read, Connection: close, and the 413 of an oversize body. The server runs on
// its own thread; the test is a blocking client.

#include "relay/http/http_server.h"

#include "metrics/relay_metrics.h"
#include "relay/core/logger.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace relay {
namespace http_server_test {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

// Answers 202 with the request's body length, its target and a field of its own; 204 to
// DELETE. Keeps the bodies it saw.
class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HttpServerOptions options;
    options.max_body_bytes = 64 * 1024;
    HttpHandlers handlers;
    handlers.handle = [this](HttpRequest request) -> asio::awaitable<HttpResponse> {
          {
            std::lock_guard lock(mutex_);
            bodies_.push_back(request.body());
          }
          if (request.method() == http::verb::delete_) co_return HttpResponse{http::status::no_content, 11};
          HttpResponse response{http::status::accepted, 11};
          response.set("X-Target", request.target());
          response.body() = std::to_string(request.body().size());
          co_return response;
    };
    handlers.screen = [](const HttpRequest& header) -> std::optional<HttpResponse> {
      if (header.target() != "/private") return std::nullopt;
      HttpResponse response{http::status::unauthorized, 11};
      response.body() = "no key";
      return response;
    };
    handlers.reject = [](int status) {
      HttpResponse response{static_cast<http::status>(status), 11};
      response.body() = "refused";
      return response;
    };
    server_.emplace(io_, options, std::move(handlers), logger_, metrics_);
    port_ = server_->listen("127.0.0.1", 0).port();
    server_->start();
    thread_ = std::thread([this] { io_.run(); });
  }

  void TearDown() override {
    work_.reset();
    io_.stop();
    thread_.join();
  }

  tcp::socket connect() {
    tcp::socket socket(client_io_);
    socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
    // A safety net so that a broken server fails the test instead of hanging it.
    const timeval give_up{60, 0};
    setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &give_up, sizeof give_up);
    return socket;
  }

  static std::string read_exactly(tcp::socket& socket, std::size_t size) {
    std::string data(size, '\0');
    boost::system::error_code ec;
    const std::size_t n = asio::read(socket, asio::buffer(data), ec);
    data.resize(n);
    return data;
  }

  static std::string read_to_end(tcp::socket& socket) {
    std::string data;
    boost::system::error_code ec;
    asio::read(socket, asio::dynamic_buffer(data), ec);
    EXPECT_EQ(ec, asio::error::eof);
    return data;
  }

  static std::string post(const std::string& target, const std::string& body, const std::string& extra = "") {
    return "POST " + target + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + extra +
           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  }

  static std::string accepted(const std::string& target, std::size_t body_size, const std::string& extra = "") {
    const std::string body = std::to_string(body_size);
    return "HTTP/1.1 202 Accepted\r\nX-Target: " + target + "\r\n" + extra +
           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  }

  // Declared before the io_context: session frames still suspended at the end are destroyed
  // with it and update the connection gauge.
  Logger logger_{LogLevel::error};
  RelayMetrics metrics_{"test"};
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  asio::io_context client_io_;
  std::optional<HttpServer> server_;
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::mutex mutex_;
  std::vector<std::string> bodies_;
};

TEST_F(HttpServerTest, AnswersWithExactlyTheResponsesBytesAndKeepsTheConnection) {
  tcp::socket socket = connect();
  for (const std::string target : {"/v1/events", "/v1/events?second=1"}) {
    asio::write(socket, asio::buffer(post(target, R"({"type":"t","payload":1})")));
    const std::string expected = accepted(target, 24);
    EXPECT_EQ(read_exactly(socket, expected.size()), expected);
  }
  const std::string no_content = "DELETE /x HTTP/1.1\r\nHost: x\r\n\r\n";
  asio::write(socket, asio::buffer(no_content));
  const std::string expected = "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n";  // as Beast prepares it
  EXPECT_EQ(read_exactly(socket, expected.size()), expected);
}

TEST_F(HttpServerTest, ReadsBodiesLargerThanOneReadAndPipelinedRequests) {
  tcp::socket socket = connect();
  const std::string large(40 * 1024, 'a');
  const std::string small = "{}";
  asio::write(socket, asio::buffer(post("/large", large) + post("/small", small)));
  const std::string expected = accepted("/large", large.size()) + accepted("/small", small.size());
  EXPECT_EQ(read_exactly(socket, expected.size()), expected);
  std::lock_guard lock(mutex_);
  EXPECT_EQ(bodies_, (std::vector<std::string>{large, small}));
}

TEST_F(HttpServerTest, ClosesAfterConnectionCloseOrAnHttp10Request) {
  tcp::socket socket = connect();
  asio::write(socket, asio::buffer(post("/last", "{}", "Connection: close\r\n")));
  EXPECT_EQ(read_to_end(socket), accepted("/last", 2, "Connection: close\r\n"));

  tcp::socket http10 = connect();
  asio::write(http10, asio::buffer(std::string("GET /old HTTP/1.0\r\n\r\n")));
  EXPECT_EQ(read_to_end(http10), accepted("/old", 0, "Connection: close\r\n"));
}

TEST_F(HttpServerTest, RefusesAnOversizeBodyWith413AndCloses) {
  tcp::socket socket = connect();
  // The header is enough: the body would not be read (and, unread, would reset the connection).
  const std::string head = "POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 65537\r\n\r\n";
  asio::write(socket, asio::buffer(head));
  EXPECT_EQ(read_to_end(socket), "HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\nContent-Length: 7\r\n\r\nrefused");
  std::lock_guard lock(mutex_);
  EXPECT_TRUE(bodies_.empty());
}

TEST_F(HttpServerTest, AScreenedRequestIsRefusedFromItsHeaderAndItsBodyIsNeverHandled) {
  tcp::socket socket = connect();
  // The header alone: the answer may not wait for the 60,000 announced bytes.
  asio::write(socket, asio::buffer(std::string("POST /private HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n")));
  const std::string expected = "HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 6\r\n\r\nno key";
  EXPECT_EQ(read_exactly(socket, expected.size()), expected);
  // What the client still sends is read and dropped, then the connection closes.
  asio::write(socket, asio::buffer(std::string(60000, 'a')));
  EXPECT_EQ(read_to_end(socket), "");
  std::lock_guard lock(mutex_);
  EXPECT_TRUE(bodies_.empty());
}

TEST_F(HttpServerTest, AnswersExpect100ContinueOnceTheHeaderPassesTheScreen) {
  tcp::socket socket = connect();
  asio::write(socket, asio::buffer(std::string("POST /open HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")));
  const std::string interim = "HTTP/1.1 100 Continue\r\n\r\n";
  EXPECT_EQ(read_exactly(socket, interim.size()), interim);
  asio::write(socket, asio::buffer(std::string("{}")));
  const std::string expected = accepted("/open", 2);
  EXPECT_EQ(read_exactly(socket, expected.size()), expected);
}

}  // namespace http_server_test
}  // namespace relay
