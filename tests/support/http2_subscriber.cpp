#include "tests/support/http2_subscriber.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include "tests/support/test_subscriber.h"

namespace relay::test {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

std::uint16_t free_loopback_port() {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address_v4("127.0.0.1"), 0));
  return acceptor.local_endpoint().port();
}

bool accepts_connections(std::uint16_t port) {
  asio::io_context io;
  tcp::socket socket(io);
  boost::system::error_code ec;
  socket.connect(tcp::endpoint(asio::ip::make_address_v4("127.0.0.1"), port), ec);
  return !ec;
}

}  // namespace

Http2Subscriber::Http2Subscriber() {
  const std::string root = dir_.str() + "/root";
  std::filesystem::create_directory(root);
  std::ofstream(root + "/hook") << "ok";
  // nghttpd takes a port number, not a bound socket: the port is free when chosen but another
  // process may take it before nghttpd binds it. nghttpd then exits at start; try another port.
  constexpr int kTries = 5;
  for (int attempt = 1;; ++attempt) {
    if (start(root)) return;
    if (attempt == kTries) throw std::runtime_error("nghttpd exited at start " + std::to_string(kTries) + " times: " + log());
  }
}

bool Http2Subscriber::start(const std::string& root) {
  port_ = free_loopback_port();
  nghttpd_.emplace(std::vector<std::string>{"nghttpd", "--verbose", "--address=127.0.0.1", "--htdocs=" + root,
                                            std::to_string(port_), TestSubscriber::tls_test_file("server.key"),
                                            TestSubscriber::tls_test_file("server.pem")},
                   dir_.str() + "/nghttpd.log");
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!accepts_connections(port_)) {
    if (nghttpd_->poll_exit()) return false;
    if (std::chrono::steady_clock::now() > give_up) throw std::runtime_error("nghttpd did not listen: " + log());
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

std::string Http2Subscriber::url(const std::string& path) const {
  return "https://127.0.0.1:" + std::to_string(port_) + path;
}

std::string Http2Subscriber::log() const { return nghttpd_ ? nghttpd_->log() : std::string(); }

std::vector<std::string> Http2Subscriber::post_connection_ids() const {
  // Lines look like "[id=1] [  1.014] recv (stream_id=1) :method: POST".
  std::vector<std::string> ids;
  std::istringstream in(log());
  for (std::string line; std::getline(in, line);) {
    const auto end = line.find(']');
    if (line.starts_with("[id=") && end != std::string::npos && line.find(":method: POST") != std::string::npos) {
      ids.push_back(line.substr(4, end - 4));
    }
  }
  return ids;
}

std::size_t Http2Subscriber::posts() const { return post_connection_ids().size(); }

std::size_t Http2Subscriber::connections_with_posts() const {
  const std::vector<std::string> ids = post_connection_ids();
  return std::set<std::string>(ids.begin(), ids.end()).size();
}

}  // namespace relay::test
