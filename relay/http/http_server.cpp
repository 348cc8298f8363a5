#include "relay/http/http_server.h"

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <string>

namespace relay {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::uint32_t kHeaderLimit = 16 * 1024;
// Beast reads at most the free space of the buffer, and no less than 512 bytes: a buffer that
// starts empty reads a 1 KiB event in three receives (three timed operations). With this much
// room a request of a few KiB arrives in one, for 8 KiB per open connection.
constexpr std::size_t kReadBufferBytes = 8 * 1024;

// The status line and the fields of `response`, as HTTP/1.1 puts them before the body. Written
// together with the body as two buffers: Beast's serializer writes the same bytes through a
// sequence of small buffers at several times the CPU.
std::string response_head(const HttpResponse& response) {
  std::string head;
  head.reserve(256);  // relay's own heads are shorter: one allocation
  head += "HTTP/";
  head += static_cast<char>('0' + response.version() / 10);
  head += '.';
  head += static_cast<char>('0' + response.version() % 10);
  head += ' ';
  head += std::to_string(response.result_int());
  head += ' ';
  head += response.reason();
  head += "\r\n";
  for (const auto& field : response) {
    head += field.name_string();
    head += ": ";
    head += field.value();
    head += "\r\n";
  }
  head += "\r\n";
  return head;
}

}  // namespace

HttpServer::HttpServer(asio::io_context& io, HttpServerOptions options, Handler handler, RejectHandler reject)
    : io_(io), options_(options), handler_(std::move(handler)), reject_(std::move(reject)), acceptor_(io) {}

tcp::endpoint HttpServer::listen(const std::string& host, std::uint16_t port) {
  const tcp::endpoint endpoint(asio::ip::make_address(host), port);
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(asio::socket_base::reuse_address(true));
  acceptor_.bind(endpoint);
  acceptor_.listen(asio::socket_base::max_listen_connections);
  return acceptor_.local_endpoint();
}

void HttpServer::start() { asio::co_spawn(io_, accept_loop(), asio::detached); }

void HttpServer::stop() {
  stopping_ = true;
  beast::error_code ignored;
  acceptor_.close(ignored);
}

asio::awaitable<void> HttpServer::accept_loop() {
  while (!stopping_) {
    auto [ec, socket] = co_await acceptor_.async_accept(kUseTuple);
    if (ec) {
      if (ec == asio::error::operation_aborted || stopping_) co_return;
      continue;  // e.g. EMFILE: keep serving the connections we have
    }
    socket.set_option(tcp::no_delay(true), ec);
    asio::co_spawn(io_, session(std::move(socket)), asio::detached);
  }
}

asio::awaitable<void> HttpServer::session(tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  buffer.reserve(kReadBufferBytes);
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(options_.max_body_bytes);
    parser.header_limit(kHeaderLimit);
    stream.expires_after(options_.idle_timeout);
    auto [read_ec, read_bytes] = co_await http::async_read(stream, buffer, parser, kUseTuple);
    if (read_ec) {
      // A malformed request (any parser error but a closed connection) gets one answer.
      const bool rejectable = read_ec.category() == beast::error_code(http::error::body_limit).category() &&
                              read_ec != http::error::end_of_stream && read_ec != http::error::partial_message;
      if (rejectable) {
        HttpResponse response = reject_(read_ec == http::error::body_limit ? 413 : 400);
        response.keep_alive(false);
        response.prepare_payload();
        const std::string head = response_head(response);
        const std::array<asio::const_buffer, 2> message{asio::buffer(head), asio::buffer(response.body())};
        stream.expires_after(std::chrono::seconds(5));
        co_await asio::async_write(stream, message, kUseTuple);
      }
      break;
    }
    // The parser read the Connection header already; the message would parse it again.
    const bool keep_alive = parser.keep_alive() && !stopping_;
    HttpRequest request = parser.release();
    stream.expires_never();
    auto handling = handler_(std::move(request));  // named: see relay/core/async_bridge.h
    HttpResponse response = co_await std::move(handling);
    // Relay's responses carry no Connection header: only closing needs one.
    if (!keep_alive) response.keep_alive(false);
    response.prepare_payload();
    const std::string head = response_head(response);
    const std::array<asio::const_buffer, 2> message{asio::buffer(head), asio::buffer(response.body())};
    stream.expires_after(options_.idle_timeout);
    auto [write_ec, written] = co_await asio::async_write(stream, message, kUseTuple);
    if (write_ec || !keep_alive) break;
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

}  // namespace relay
