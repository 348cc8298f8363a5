#include "tests/support/http2_subscriber.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include "tests/support/test_subscriber.h"

extern char** environ;

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

Http2Subscriber::Http2Subscriber() : port_(free_loopback_port()) {
  const std::string root = dir_.str() + "/root";
  const std::string log_path = dir_.str() + "/nghttpd.log";
  std::filesystem::create_directory(root);
  std::ofstream(root + "/hook") << "ok";

  std::vector<std::string> argv{"nghttpd",
                                "--verbose",
                                "--address=127.0.0.1",
                                "--htdocs=" + root,
                                std::to_string(port_),
                                TestSubscriber::tls_test_file("server.key"),
                                TestSubscriber::tls_test_file("server.pem")};
  std::vector<char*> c_argv;
  for (std::string& a : argv) c_argv.push_back(a.data());
  c_argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  const int rc = ::posix_spawnp(&pid_, "nghttpd", &actions, nullptr, c_argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    throw std::runtime_error(std::string("cannot start nghttpd (Debian package nghttp2-server): ") + std::strerror(rc));
  }
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!accepts_connections(port_)) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("nghttpd exited at start: " + log());
    }
    if (std::chrono::steady_clock::now() > give_up) throw std::runtime_error("nghttpd did not listen: " + log());
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

Http2Subscriber::~Http2Subscriber() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
}

std::string Http2Subscriber::url(const std::string& path) const {
  return "https://127.0.0.1:" + std::to_string(port_) + path;
}

std::string Http2Subscriber::log() const {
  std::ifstream in(dir_.str() + "/nghttpd.log");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

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
