#include "tests/support/etcd_cluster.h"

#include <signal.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "tests/support/http_client.h"

namespace relay::test {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr int kStartTries = 5;
constexpr std::chrono::milliseconds kStartTimeout = 30s;
constexpr std::chrono::milliseconds kPoll = 20ms;

// `count` distinct loopback ports that were free a moment ago: all bound at once, then
// released for etcd to take.
std::vector<int> free_loopback_ports(std::size_t count) {
  asio::io_context io;
  std::vector<tcp::acceptor> acceptors;
  std::vector<int> ports;
  for (std::size_t i = 0; i < count; ++i) {
    acceptors.emplace_back(io, tcp::endpoint(asio::ip::make_address_v4("127.0.0.1"), 0));
    ports.push_back(acceptors.back().local_endpoint().port());
  }
  return ports;
}

std::string loopback_url(int port) { return "http://127.0.0.1:" + std::to_string(port); }

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

EtcdCluster::EtcdCluster(int members) : token_(dir_.path().filename().string()) {
  if (members < 1) throw std::invalid_argument("EtcdCluster: at least one member");
  members_.resize(static_cast<std::size_t>(members));
  for (int attempt = 1;; ++attempt) {
    if (try_start_all()) return;
    const std::string what = logs();
    kill_all();
    if (attempt == kStartTries) {
      throw std::runtime_error("etcd did not start " + std::to_string(kStartTries) + " times:\n" + what);
    }
  }
}

EtcdCluster::~EtcdCluster() { kill_all(); }

bool EtcdCluster::try_start_all() {
  const std::vector<int> ports = free_loopback_ports(2 * members_.size());
  for (std::size_t i = 0; i < members_.size(); ++i) {
    Member& m = members_[i];
    m.name = "m" + std::to_string(i);
    m.client_port = ports[2 * i];
    m.peer_port = ports[2 * i + 1];
    m.data_dir = dir_.str() + "/" + m.name;
    m.log_path = dir_.str() + "/" + m.name + ".log";
    std::filesystem::remove_all(m.data_dir);
  }
  for (Member& m : members_) spawn(m);
  std::vector<int> all;
  for (int i = 0; i < size(); ++i) all.push_back(i);
  if (wait_serving(all, kStartTimeout)) return true;
  // A port taken between choosing it and etcd binding it: try again on others. Anything else
  // is a real failure.
  for (int i = 0; i < size(); ++i) {
    if (log(i).find("address already in use") != std::string::npos) return false;
  }
  const std::string what = logs();
  kill_all();
  throw std::runtime_error("etcd did not serve within " + std::to_string(kStartTimeout.count()) + " ms:\n" + what);
}

std::vector<std::string> EtcdCluster::arguments(const Member& m) const {
  std::string initial_cluster;
  for (const Member& other : members_) {
    if (!initial_cluster.empty()) initial_cluster += ",";
    initial_cluster += other.name + "=" + loopback_url(other.peer_port);
  }
  const std::string client = loopback_url(m.client_port);
  const std::string peer = loopback_url(m.peer_port);
  // Heartbeats every 50 ms and elections after 500 ms: a new leader well within a second of a
  // kill, without spurious elections when the tests load both cores.
  return {"etcd",
          "--name", m.name,
          "--data-dir", m.data_dir,
          "--listen-client-urls", client,
          "--advertise-client-urls", client,
          "--listen-peer-urls", peer,
          "--initial-advertise-peer-urls", peer,
          "--initial-cluster", initial_cluster,
          "--initial-cluster-state", "new",
          "--initial-cluster-token", token_,
          "--heartbeat-interval", "50",
          "--election-timeout", "500"};
}

void EtcdCluster::spawn(Member& m) {
  m.process = std::make_unique<ChildProcess>(arguments(m), m.log_path);
}

std::vector<std::string> EtcdCluster::client_urls() const {
  std::vector<std::string> urls;
  for (int i = 0; i < size(); ++i) urls.push_back(client_url(i));
  return urls;
}

std::string EtcdCluster::client_url(int member) const {
  return loopback_url(members_.at(static_cast<std::size_t>(member)).client_port);
}

bool EtcdCluster::running(int member) {
  Member& m = members_.at(static_cast<std::size_t>(member));
  return m.process != nullptr && !m.process->poll_exit();
}

void EtcdCluster::kill(int member) {
  Member& m = members_.at(static_cast<std::size_t>(member));
  if (m.process != nullptr) m.process->stop(SIGKILL);
  m.process.reset();
}

void EtcdCluster::kill_all() {
  for (int i = 0; i < size(); ++i) kill(i);
}

void EtcdCluster::start(int member) {
  Member& m = members_.at(static_cast<std::size_t>(member));
  if (running(member)) return;
  spawn(m);
  if (!wait_serving({member}, kStartTimeout)) {
    throw std::runtime_error("etcd member " + m.name + " did not serve again:\n" + log(member));
  }
}

void EtcdCluster::start_all() {
  std::vector<int> started;
  for (int i = 0; i < size(); ++i) {
    if (running(i)) continue;
    spawn(members_[static_cast<std::size_t>(i)]);
    started.push_back(i);
  }
  if (!wait_serving(started, kStartTimeout)) throw std::runtime_error("etcd did not serve again:\n" + logs());
}

bool EtcdCluster::serves(int member) {
  HttpClient http;
  http.set_timeout(1s);
  const HttpResponse response = http.get(client_url(member) + "/health");
  const nlohmann::json body = response.json();
  return response.status == 200 && body.is_object() && body.value("health", "") == "true";
}

bool EtcdCluster::wait_serving(const std::vector<int>& members, std::chrono::milliseconds timeout) {
  const Steady::time_point give_up = Steady::now() + timeout;
  std::vector<int> waiting = members;
  while (!waiting.empty()) {
    for (int member : waiting) {
      if (!running(member)) return false;
    }
    std::erase_if(waiting, [this](int member) { return serves(member); });
    if (waiting.empty()) return true;
    if (Steady::now() >= give_up) return false;
    std::this_thread::sleep_for(kPoll);
  }
  return true;
}

int EtcdCluster::leader() {
  const Steady::time_point give_up = Steady::now() + kStartTimeout;
  for (;;) {
    // Each running member's own id and the leader it follows; a leader all of them agree on.
    std::map<std::string, int> member_of_id;
    std::optional<std::string> agreed;
    bool agree = true;
    for (int i = 0; i < size() && agree; ++i) {
      if (!running(i)) continue;
      const nlohmann::json status = post(i, "/v3/maintenance/status", nlohmann::json::object());
      if (!status.is_object() || !status.contains("header") || !status.contains("leader")) {
        agree = false;
        break;
      }
      member_of_id[status["header"].value("member_id", "")] = i;
      const std::string leader = status.value("leader", "");
      if (leader.empty() || leader == "0" || (agreed && *agreed != leader)) agree = false;
      agreed = leader;
    }
    if (agree && agreed) {
      if (const auto it = member_of_id.find(*agreed); it != member_of_id.end()) return it->second;
    }
    if (Steady::now() >= give_up) throw std::runtime_error("etcd elected no leader:\n" + logs());
    std::this_thread::sleep_for(kPoll);
  }
}

int EtcdCluster::kill_leader() {
  const int member = leader();
  kill(member);
  return member;
}

nlohmann::json EtcdCluster::post(int member, std::string_view path, const nlohmann::json& body) {
  HttpClient http;
  http.set_timeout(5s);
  const HttpResponse response = http.post(client_url(member) + std::string(path), body.dump());
  return response.json();
}

std::string EtcdCluster::log(int member) const {
  return read_file(members_.at(static_cast<std::size_t>(member)).log_path);
}

std::string EtcdCluster::logs() const {
  std::string all;
  for (int i = 0; i < size(); ++i) {
    all += "--- etcd " + members_[static_cast<std::size_t>(i)].name + " ---\n" + log(i);
  }
  return all;
}

}  // namespace relay::test
