#include "tests/support/test_subscriber.h"

#include <strings.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <deque>
#include <future>
#include <list>
#include <map>
#include <mutex>
#include <thread>

namespace relay::test {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

}  // namespace

Reply Reply::status(int code, std::string body) {
  Reply r;
  r.code = code;
  r.body = std::move(body);
  return r;
}

Reply Reply::close_connection() {
  Reply r;
  r.action = Action::close;
  return r;
}

Reply Reply::blackhole() {
  Reply r;
  r.action = Action::blackhole;
  return r;
}

Reply Reply::hold(int code) {
  Reply r;
  r.action = Action::hold;
  r.code = code;
  return r;
}

Reply& Reply::header(std::string name, std::string value) {
  headers.emplace_back(std::move(name), std::move(value));
  return *this;
}

Reply& Reply::after(std::chrono::milliseconds wait) {
  delay = wait;
  return *this;
}

std::optional<std::string> RecordedRequest::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (key.size() == name.size() && strncasecmp(key.data(), name.data(), name.size()) == 0) {
      return value;
    }
  }
  return std::nullopt;
}

// The io_context, its thread and the shared state. Coroutines run on the server thread;
// the public methods run on test threads; `mu` guards everything below it.
class TestSubscriber::Server {
 public:
  explicit Server(Transport transport) : acceptor_(io_) {
    if (transport == Transport::tls) {
      tls_.emplace(asio::ssl::context::tls_server);
      tls_->use_certificate_chain_file(tls_test_file("server.pem"));
      tls_->use_private_key_file(tls_test_file("server.key"), asio::ssl::context::pem);
    }
    const tcp::endpoint endpoint(asio::ip::make_address_v4("127.0.0.1"), 0);
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    asio::co_spawn(io_, accept_loop(), asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }

  ~Server() {
    // Stopping the io_context abandons the coroutines; destroying it (below, after the join)
    // destroys their frames, which closes every socket they hold.
    io_.stop();
    thread_.join();
  }

  std::uint16_t port() const { return port_; }

  void enqueue(std::string path, Reply reply) {
    std::lock_guard lock(mu_);
    queued_by_path_[std::move(path)].push_back(std::move(reply));
  }
  void respond(std::string path, Reply reply) {
    std::lock_guard lock(mu_);
    standing_by_path_[std::move(path)] = std::move(reply);
  }
  void enqueue(Reply reply) {
    std::lock_guard lock(mu_);
    queued_any_.push_back(std::move(reply));
  }
  void respond(Reply reply) {
    std::lock_guard lock(mu_);
    standing_any_ = std::move(reply);
  }
  void set_handler(std::function<std::optional<Reply>(const RecordedRequest&)> handler) {
    std::lock_guard lock(mu_);
    handler_ = std::move(handler);
  }

  std::vector<RecordedRequest> requests() const {
    std::lock_guard lock(mu_);
    return recorded_;
  }
  std::vector<RecordedRequest> requests(std::string_view path) const {
    std::lock_guard lock(mu_);
    std::vector<RecordedRequest> matching;
    for (const RecordedRequest& r : recorded_) {
      if (r.path == path) matching.push_back(r);
    }
    return matching;
  }
  std::size_t request_count() const {
    std::lock_guard lock(mu_);
    return recorded_.size();
  }
  std::size_t connections_accepted() const {
    std::lock_guard lock(mu_);
    return connections_;
  }

  std::vector<RecordedRequest> held() const {
    std::lock_guard lock(mu_);
    std::vector<RecordedRequest> out;
    for (const Held& h : held_) out.push_back(h.request);
    return out;
  }

  std::size_t release_held(const std::function<bool(const RecordedRequest&)>& which) {
    // The gates are timers of the server thread: they are opened there.
    std::promise<std::size_t> released;
    asio::post(io_, [&] {
      std::size_t n = 0;
      std::lock_guard lock(mu_);
      for (auto it = held_.begin(); it != held_.end();) {
        if (which && !which(it->request)) {
          ++it;
          continue;
        }
        it->gate->cancel();
        it = held_.erase(it);
        ++n;
      }
      released.set_value(n);
    });
    return released.get_future().get();
  }

  bool wait_until(const std::function<bool(const std::vector<RecordedRequest>&)>& ready,
                  std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return changed_.wait_for(lock, timeout, [&] { return ready(recorded_); });
  }

  void reset() {
    std::lock_guard lock(mu_);
    recorded_.clear();
    queued_by_path_.clear();
    standing_by_path_.clear();
    queued_any_.clear();
    standing_any_ = Reply{};
    handler_ = nullptr;
  }

 private:
  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(kNoThrow);
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
      if (ec) continue;  // e.g. EMFILE; the listener itself is fine
      std::uint64_t id = 0;
      {
        std::lock_guard lock(mu_);
        id = ++connections_;
      }
      if (tls_) {
        asio::co_spawn(io_, tls_session(asio::ssl::stream<tcp::socket>(std::move(socket), *tls_), id), asio::detached);
      } else {
        asio::co_spawn(io_, plain_session(std::move(socket), id), asio::detached);
      }
    }
  }

  asio::awaitable<void> tls_session(asio::ssl::stream<tcp::socket> stream, std::uint64_t connection_id) {
    auto [ec] = co_await stream.async_handshake(asio::ssl::stream_base::server, kNoThrow);
    if (ec) co_return;  // e.g. the client refused the certificate
    co_await serve(stream, connection_id);
  }

  asio::awaitable<void> plain_session(tcp::socket socket, std::uint64_t connection_id) {
    co_await serve(socket, connection_id);
  }

  // One connection's requests, plain or TLS.
  template <typename Stream>
  asio::awaitable<void> serve(Stream& socket, std::uint64_t connection_id) {
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(64 * 1024);
      parser.body_limit(64 * 1024 * 1024);
      auto [header_ec, header_bytes] = co_await http::async_read_header(socket, buffer, parser, kNoThrow);
      if (header_ec) co_return;  // the client closed the connection, or sent garbage
      if (beast::iequals(parser.get()[http::field::expect], "100-continue")) {
        http::response<http::empty_body> go_on{http::status::continue_, 11};
        auto [ec, n] = co_await http::async_write(socket, go_on, kNoThrow);
        if (ec) co_return;
      }
      auto [body_ec, body_bytes] = co_await http::async_read(socket, buffer, parser, kNoThrow);
      if (body_ec) co_return;
      http::request<http::string_body> request = parser.release();

      RecordedRequest record = make_record(request, connection_id);
      // A held request waits on this gate; it is listed as held when it is recorded.
      asio::steady_timer gate(io_, asio::steady_timer::time_point::max());
      const Reply reply = choose(record, gate);

      if (reply.delay.count() > 0) {
        asio::steady_timer timer(io_, reply.delay);
        co_await timer.async_wait(kNoThrow);
      }
      if (reply.action == Reply::Action::hold) co_await gate.async_wait(kNoThrow);  // until release_held
      if (reply.action == Reply::Action::close) {
        boost::system::error_code ignored;
        beast::get_lowest_layer(socket).shutdown(tcp::socket::shutdown_both, ignored);
        beast::get_lowest_layer(socket).close(ignored);
        co_return;
      }
      if (reply.action == Reply::Action::blackhole) {
        // Read and drop until the client gives up, so its close is noticed promptly.
        char sink[4096];
        for (;;) {
          auto [ec, n] = co_await socket.async_read_some(asio::buffer(sink), kNoThrow);
          if (ec) co_return;
        }
      }

      http::response<http::string_body> response;
      response.version(request.version());
      response.result(static_cast<unsigned>(reply.code));
      response.set(http::field::server, "relay-test-subscriber");
      for (const auto& [name, value] : reply.headers) response.insert(name, value);
      response.body() = reply.body;
      response.keep_alive(request.keep_alive());
      response.prepare_payload();
      auto [write_ec, written] = co_await http::async_write(socket, response, kNoThrow);
      if (write_ec || !response.keep_alive()) {
        boost::system::error_code ignored;
        beast::get_lowest_layer(socket).shutdown(tcp::socket::shutdown_send, ignored);
        co_return;
      }
    }
  }

  // Records the request, wakes waiters, and picks the reply (see the order in the header).
  Reply choose_locked(const RecordedRequest& record) {
    if (auto queued = queued_by_path_.find(record.path);
        queued != queued_by_path_.end() && !queued->second.empty()) {
      Reply reply = std::move(queued->second.front());
      queued->second.pop_front();
      return reply;
    }
    if (auto standing = standing_by_path_.find(record.path); standing != standing_by_path_.end()) {
      return standing->second;
    }
    if (!queued_any_.empty()) {
      Reply reply = std::move(queued_any_.front());
      queued_any_.pop_front();
      return reply;
    }
    return standing_any_;
  }

  Reply choose(const RecordedRequest& record, asio::steady_timer& gate) {
    std::function<std::optional<Reply>(const RecordedRequest&)> handler;
    {
      std::lock_guard lock(mu_);
      handler = handler_;
    }
    // Called unlocked so that a handler may use the subscriber's own methods.
    std::optional<Reply> ruled = handler ? handler(record) : std::nullopt;
    std::lock_guard lock(mu_);
    Reply reply = ruled ? std::move(*ruled) : choose_locked(record);
    recorded_.push_back(record);
    if (reply.action == Reply::Action::hold) held_.push_back(Held{record, &gate});
    changed_.notify_all();
    return reply;
  }

  static RecordedRequest make_record(const http::request<http::string_body>& request,
                                     std::uint64_t connection_id) {
    RecordedRequest record;
    record.connection_id = connection_id;
    record.received_at = std::chrono::steady_clock::now();
    record.received_wall = std::chrono::system_clock::now();
    record.method = std::string(request.method_string());
    record.target = std::string(request.target());
    record.path = record.target.substr(0, record.target.find('?'));
    for (const auto& field : request) {
      record.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    record.body = request.body();
    return record;
  }

  asio::io_context io_;
  std::optional<asio::ssl::context> tls_;
  tcp::acceptor acceptor_;
  std::uint16_t port_ = 0;
  std::thread thread_;

  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::vector<RecordedRequest> recorded_;
  std::size_t connections_ = 0;
  std::map<std::string, std::deque<Reply>, std::less<>> queued_by_path_;
  std::map<std::string, Reply, std::less<>> standing_by_path_;
  std::deque<Reply> queued_any_;
  Reply standing_any_;
  std::function<std::optional<Reply>(const RecordedRequest&)> handler_;
  struct Held {
    RecordedRequest request;
    asio::steady_timer* gate = nullptr;  // in the held request's coroutine frame
  };
  std::list<Held> held_;
};

TestSubscriber::TestSubscriber(Transport transport)
    : transport_(transport), server_(std::make_unique<Server>(transport)) {}
TestSubscriber::~TestSubscriber() = default;

std::uint16_t TestSubscriber::port() const { return server_->port(); }

std::string TestSubscriber::url(std::string_view path) const {
  const char* scheme = transport_ == Transport::tls ? "https" : "http";
  return std::string(scheme) + "://127.0.0.1:" + std::to_string(port()) + std::string(path);
}

void TestSubscriber::enqueue(std::string path, Reply reply) {
  server_->enqueue(std::move(path), std::move(reply));
}
void TestSubscriber::respond(std::string path, Reply reply) {
  server_->respond(std::move(path), std::move(reply));
}
void TestSubscriber::enqueue(Reply reply) { server_->enqueue(std::move(reply)); }
void TestSubscriber::respond(Reply reply) { server_->respond(std::move(reply)); }
void TestSubscriber::set_handler(std::function<std::optional<Reply>(const RecordedRequest&)> handler) {
  server_->set_handler(std::move(handler));
}

std::vector<RecordedRequest> TestSubscriber::requests() const { return server_->requests(); }
std::vector<RecordedRequest> TestSubscriber::requests(std::string_view path) const {
  return server_->requests(path);
}
std::vector<RecordedRequest> TestSubscriber::held() const { return server_->held(); }
std::size_t TestSubscriber::release_held(const std::function<bool(const RecordedRequest&)>& which) {
  return server_->release_held(which);
}
std::size_t TestSubscriber::request_count() const { return server_->request_count(); }
std::size_t TestSubscriber::connections_accepted() const { return server_->connections_accepted(); }

bool TestSubscriber::wait_for_requests(std::size_t n, std::chrono::milliseconds timeout) {
  return server_->wait_until([n](const auto& requests) { return requests.size() >= n; }, timeout);
}

bool TestSubscriber::wait_until(const std::function<bool(const std::vector<RecordedRequest>&)>& ready,
                                std::chrono::milliseconds timeout) {
  return server_->wait_until(ready, timeout);
}

void TestSubscriber::reset() { server_->reset(); }

std::string TestSubscriber::tls_test_file(std::string_view name) {
  return std::string(RELAY_SOURCE_DIR) + "/tests/data/tls/" + std::string(name);
}

}  // namespace relay::test
