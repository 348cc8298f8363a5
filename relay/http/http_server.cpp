#include "relay/http/http_server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <list>
#include <string>

#include "metrics/relay_metrics.h"
#include "relay/core/logger.h"

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
constexpr auto kRefusalWriteTimeout = std::chrono::seconds(5);
// After a refusal the client may still be sending its body; closing with unread bytes would
// reset the connection and could destroy the answer before the client reads it. So the rest
// is read and dropped (never buffered), for this long at most.
constexpr auto kLingerTimeout = std::chrono::seconds(2);
// Out of descriptors with nothing idle to close: wait this long before accepting again.
constexpr auto kExhaustedBackoff = std::chrono::milliseconds(100);
constexpr auto kExhaustedLogInterval = std::chrono::seconds(60);

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

asio::awaitable<beast::error_code> write_response(beast::tcp_stream& stream, HttpResponse response, bool keep_alive,
                                                  std::chrono::steady_clock::duration timeout) {
  // Relay's responses carry no Connection header: only closing needs one.
  if (!keep_alive) response.keep_alive(false);
  response.prepare_payload();
  const std::string head = response_head(response);
  const std::array<asio::const_buffer, 2> message{asio::buffer(head), asio::buffer(response.body())};
  stream.expires_after(timeout);
  auto [ec, written] = co_await asio::async_write(stream, message, kUseTuple);
  co_return ec;
}

// Sends a refusal with Connection: close, then reads and drops what the client still sends.
asio::awaitable<void> refuse_and_close(beast::tcp_stream& stream, beast::flat_buffer& buffer, HttpResponse response,
                                       std::size_t linger_bytes) {
  if (co_await write_response(stream, std::move(response), false, kRefusalWriteTimeout)) co_return;
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  stream.expires_after(kLingerTimeout);
  std::size_t dropped = 0;
  while (dropped < linger_bytes) {
    buffer.consume(buffer.size());
    auto [ec, n] = co_await stream.async_read_some(buffer.prepare(kReadBufferBytes), kUseTuple);
    if (ec) break;
    dropped += n;
  }
}

// A malformed or oversize request gets one answer (413 or 400); a closed connection none.
std::optional<int> refusal_status(const beast::error_code& ec) {
  if (ec.category() != beast::error_code(http::error::body_limit).category() || ec == http::error::end_of_stream ||
      ec == http::error::partial_message) {
    return std::nullopt;
  }
  return ec == http::error::body_limit ? 413 : 400;
}

bool out_of_descriptors(const beast::error_code& ec) {
  return ec == boost::system::errc::too_many_files_open || ec == boost::system::errc::too_many_files_open_in_system ||
         ec == boost::system::errc::no_buffer_space || ec == boost::system::errc::not_enough_memory;
}

int open_reserve_fd() { return ::open("/dev/null", O_RDONLY | O_CLOEXEC); }

}  // namespace

// The connections and the body budget. Session coroutines hold it by shared_ptr: a session
// frame still suspended when relayd stops is destroyed with the io_context, after the server.
struct HttpServer::Shared {
  struct Entry {
    beast::tcp_stream* stream;
    bool idle = false;
  };
  using Handle = std::list<Entry>::iterator;

  // One connection's place in the table, for the lifetime of its session.
  class Slot {
   public:
    Slot(std::shared_ptr<Shared> shared, beast::tcp_stream& stream) : shared_(std::move(shared)) {
      shared_->busy.push_back(Entry{&stream});
      entry_ = std::prev(shared_->busy.end());
      shared_->publish();
    }
    ~Slot() {
      (entry_->idle ? shared_->idle : shared_->busy).erase(entry_);
      shared_->publish();
    }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;

    // Idle: waiting for the next request; the longest idle is closed first to make room.
    void set_idle(bool idle) {
      if (entry_->idle == idle) return;
      if (idle) {
        shared_->idle.splice(shared_->idle.end(), shared_->busy, entry_);
      } else {
        shared_->busy.splice(shared_->busy.end(), shared_->idle, entry_);
      }
      entry_->idle = idle;
    }

   private:
    std::shared_ptr<Shared> shared_;
    Handle entry_;
  };

  // Bytes of the body memory budget held by one request, from its header until its handler is done.
  class BodyReservation {
   public:
    explicit BodyReservation(Shared& shared) : shared_(shared) {}
    ~BodyReservation() { shared_.body_bytes -= bytes_; }
    BodyReservation(const BodyReservation&) = delete;
    BodyReservation& operator=(const BodyReservation&) = delete;

    bool reserve(std::size_t bytes) {
      if (shared_.body_bytes + bytes > shared_.max_body_memory) return false;
      shared_.body_bytes += bytes;
      bytes_ = bytes;
      return true;
    }

   private:
    Shared& shared_;
    std::size_t bytes_ = 0;
  };

  Shared(RelayMetrics& m, std::size_t budget) : metrics(m), max_body_memory(budget) {}

  std::size_t connections() const { return idle.size() + busy.size(); }
  void publish() { metrics.set_http_connections(connections()); }

  // Closes the connection that has waited longest for a request; its descriptor is free at once.
  bool evict_oldest_idle() {
    if (idle.empty()) return false;
    const Handle oldest = idle.begin();
    oldest->stream->close();  // its session wakes with an error and leaves the table
    oldest->idle = false;
    busy.splice(busy.end(), idle, oldest);
    metrics.http_connection_evicted();
    return true;
  }

  RelayMetrics& metrics;
  const std::size_t max_body_memory;
  std::size_t body_bytes = 0;
  std::list<Entry> idle;  // longest idle first
  std::list<Entry> busy;
  bool draining = false;
};

HttpServer::HttpServer(asio::io_context& io, HttpServerOptions options, HttpHandlers handlers, Logger& logger,
                       RelayMetrics& metrics)
    : io_(io),
      options_(options),
      handlers_(std::move(handlers)),
      logger_(logger),
      acceptor_(io),
      reserve_fd_(-1),
      shared_(std::make_shared<Shared>(metrics, options.max_body_memory)) {}

HttpServer::~HttpServer() {
  if (reserve_fd_ >= 0) ::close(reserve_fd_);
}

tcp::endpoint HttpServer::listen(const std::string& host, std::uint16_t port) {
  const tcp::endpoint endpoint(asio::ip::make_address(host), port);
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(asio::socket_base::reuse_address(true));
  acceptor_.bind(endpoint);
  acceptor_.listen(asio::socket_base::max_listen_connections);
  reserve_fd_ = open_reserve_fd();
  return acceptor_.local_endpoint();
}

void HttpServer::start() { asio::co_spawn(io_, accept_loop(), asio::detached); }

void HttpServer::drain() { shared_->draining = true; }

bool HttpServer::make_room_after_exhaustion() {
  if (shared_->evict_oldest_idle()) return true;
  // Nothing idle to close: the classic reserve descriptor lets us accept the oldest queued
  // connection just to close it, so its client learns at once instead of waiting in the queue.
  if (reserve_fd_ >= 0) {
    ::close(reserve_fd_);
    const int fd = ::accept4(acceptor_.native_handle(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) {
      ::close(fd);
      shared_->metrics.http_connection_refused();
    }
    reserve_fd_ = open_reserve_fd();
  }
  return false;
}

asio::awaitable<void> HttpServer::accept_loop() {
  asio::steady_timer backoff(io_);
  std::optional<std::chrono::steady_clock::time_point> last_logged;  // of the exhaustion warning
  for (;;) {
    auto [ec, socket] = co_await acceptor_.async_accept(kUseTuple);
    if (ec == asio::error::operation_aborted) co_return;
    if (out_of_descriptors(ec)) {
      // The listening socket stays readable, so accepting again at once would spin the loop.
      const auto now = std::chrono::steady_clock::now();
      if (!last_logged || now - *last_logged >= kExhaustedLogInterval) {
        last_logged = now;
        logger_.warn("out of file descriptors: closing idle connections and shedding new ones",
                     {{"error", ec.message()}, {"connections", shared_->connections()}});
      }
      if (make_room_after_exhaustion()) continue;
      backoff.expires_after(kExhaustedBackoff);
      co_await backoff.async_wait(kUseTuple);
      continue;
    }
    if (ec) continue;  // e.g. the client reset the connection while it was queued
    if (shared_->connections() >= options_.max_connections && !shared_->evict_oldest_idle()) {
      shared_->metrics.http_connection_refused();
      continue;  // the socket closes here
    }
    socket.set_option(tcp::no_delay(true), ec);
    asio::co_spawn(io_, session(std::move(socket)), asio::detached);
  }
}

asio::awaitable<void> HttpServer::session(tcp::socket socket) {
  const std::shared_ptr<Shared> shared = shared_;
  beast::tcp_stream stream(std::move(socket));
  Shared::Slot slot(shared, stream);
  beast::flat_buffer buffer;
  buffer.reserve(kReadBufferBytes);
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(options_.max_body_bytes);
    parser.header_limit(kHeaderLimit);
    slot.set_idle(true);
    stream.expires_after(options_.idle_timeout);
    auto [header_ec, header_bytes] = co_await http::async_read_header(stream, buffer, parser, kUseTuple);
    slot.set_idle(false);
    if (header_ec) {
      if (const auto status = refusal_status(header_ec)) {
        co_await write_response(stream, handlers_.reject(*status), false, kRefusalWriteTimeout);
      }
      break;
    }
    // Key, route and scope are judged before a byte of the body is buffered.
    if (std::optional<HttpResponse> refusal = handlers_.screen(parser.get())) {
      co_await refuse_and_close(stream, buffer, std::move(*refusal), options_.max_body_bytes);
      break;
    }
    Shared::BodyReservation reservation(*shared);
    const std::size_t body_bytes = parser.content_length() ? static_cast<std::size_t>(*parser.content_length())
                                   : parser.chunked()       ? options_.max_body_bytes
                                                            : 0;
    if (!reservation.reserve(body_bytes)) {
      co_await refuse_and_close(stream, buffer, handlers_.reject(503), options_.max_body_bytes);
      break;
    }
    if (body_bytes > 0 && parser.get().version() >= 11 &&
        beast::iequals(parser.get()[http::field::expect], "100-continue")) {
      // The client waits for this before it sends the body it announced.
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      stream.expires_after(kRefusalWriteTimeout);
      auto [continue_ec, sent] = co_await asio::async_write(stream, asio::buffer(kContinue), kUseTuple);
      if (continue_ec) break;
    }
    stream.expires_after(options_.idle_timeout);
    auto [read_ec, read_bytes] = co_await http::async_read(stream, buffer, parser, kUseTuple);
    if (read_ec) {
      if (const auto status = refusal_status(read_ec)) {
        co_await write_response(stream, handlers_.reject(*status), false, kRefusalWriteTimeout);
      }
      break;
    }
    // The parser read the Connection header already; the message would parse it again.
    const bool client_keeps_alive = parser.keep_alive();
    HttpRequest request = parser.release();
    stream.expires_never();
    auto handling = handlers_.handle(std::move(request));  // named: see relay/core/async_bridge.h
    HttpResponse response = co_await std::move(handling);
    // Draining: every response closes its connection (checked after handling, which may take a while).
    const bool keep_alive = client_keeps_alive && !shared->draining;
    if (co_await write_response(stream, std::move(response), keep_alive, options_.idle_timeout) || !keep_alive) break;
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

}  // namespace relay
