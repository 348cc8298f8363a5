#include "tests/support/etcd_cluster.h"

#include <signal.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "relay/core/base64.h"
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

EtcdCluster::EtcdCluster(EtcdClusterOptions options)
    : options_(std::move(options)), token_(dir_.path().filename().string()) {
  if (options_.members < 1) throw std::invalid_argument("EtcdCluster: at least one member");
  if (options_.tls) make_certificates();
  members_.resize(static_cast<std::size_t>(options_.members));
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
  const std::vector<int> ports = free_loopback_ports(3 * members_.size());
  for (std::size_t i = 0; i < members_.size(); ++i) {
    Member& m = members_[i];
    m.name = "m" + std::to_string(i);
    m.client_port = ports[3 * i];
    m.peer_port = ports[3 * i + 1];
    m.tls_port = ports[3 * i + 2];
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
  std::string client = loopback_url(m.client_port);
  std::string listen = client;
  if (options_.tls) {
    client = "https://127.0.0.1:" + std::to_string(m.tls_port);
    listen += "," + client;
  }
  const std::string peer = loopback_url(m.peer_port);
  // Heartbeats every 50 ms and elections after 500 ms: a new leader well within a second of a
  // kill, without spurious elections when the tests load both cores.
  std::vector<std::string> args = {"etcd",
          "--name", m.name,
          "--data-dir", m.data_dir,
          "--listen-client-urls", listen,
          "--advertise-client-urls", client,
          "--listen-peer-urls", peer,
          "--initial-advertise-peer-urls", peer,
          "--initial-cluster", initial_cluster,
          "--initial-cluster-state", "new",
          "--initial-cluster-token", token_,
          "--heartbeat-interval", "50",
          "--election-timeout", "500"};
  if (options_.tls) {
    const std::string dir = dir_.str() + "/tls/";
    for (const char* arg : {"--cert-file", "server.crt", "--key-file", "server.key", "--client-cert-auth", "",
                            "--trusted-ca-file", "ca.crt"}) {
      if (arg[0] == '-') args.push_back(arg);
      else if (arg[0] != '\0') args.push_back(dir + arg);
    }
  }
  args.insert(args.end(), options_.args.begin(), options_.args.end());
  return args;
}

void EtcdCluster::make_certificates() {
  const std::string dir = dir_.str() + "/tls";
  std::filesystem::create_directories(dir);
  // EC keys: made in milliseconds. The server certificate names 127.0.0.1, where members serve.
  // The client certificate has no Common Name: with authentication on, etcd 3.4's gateway
  // refuses a client certificate that has one (it would not be used as the user name).
  const std::string script = "set -e; cd '" + dir + R"(';
ca() { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=$1"   -keyout $1.key -out $1.crt 2>/dev/null; }
leaf() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$3" -keyout $1.key -out $1.csr 2>/dev/null
  printf '%s\n' "$2" > $1.ext
  openssl x509 -req -in $1.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile $1.ext -out $1.crt 2>/dev/null; }
ca ca; ca other-ca
leaf server 'subjectAltName=IP:127.0.0.1
extendedKeyUsage=serverAuth,clientAuth' /CN=server
leaf client 'extendedKeyUsage=clientAuth' /O=relay
)";
  std::ofstream(dir + "/make.sh") << script;
  const std::string command = "/bin/sh '" + dir + "/make.sh'";
  const int status = std::system(command.c_str());
  if (status != 0) throw std::runtime_error("EtcdCluster: openssl could not make the test certificates");
  tls_files_ = {dir + "/ca.crt", dir + "/client.crt", dir + "/client.key", dir + "/other-ca.crt"};
}

std::vector<std::string> EtcdCluster::root_headers() {
  if (root_password_.empty()) return {};
  // A fresh token each time: a test may run etcd with tokens that expire within a second.
  HttpClient http;
  http.set_timeout(5s);
  const nlohmann::json body = {{"name", "root"}, {"password", root_password_}};
  const HttpResponse response = http.post(client_url_http(0) + "/v3/auth/authenticate", body.dump());
  return {"Authorization: " + response.json().value("token", "")};
}

nlohmann::json EtcdCluster::admin(std::string_view path, const nlohmann::json& body) {
  HttpClient http;
  http.set_timeout(5s);
  const Headers headers = root_headers();
  const HttpResponse response = http.post(client_url_http(0) + std::string(path), body.dump(), headers);
  if (response.status != 200) throw std::runtime_error("etcd " + std::string(path) + ": " + response.describe());
  return response.json();
}

void EtcdCluster::enable_auth(const std::string& user, const std::string& password, const std::string& prefix) {
  const std::string root_password = "root-" + token_;
  admin("/v3/auth/user/add", {{"name", "root"}, {"password", root_password}});
  admin("/v3/auth/role/add", {{"name", "root"}});
  admin("/v3/auth/user/grant", {{"user", "root"}, {"role", "root"}});
  admin("/v3/auth/user/add", {{"name", user}, {"password", password}});
  admin("/v3/auth/role/add", {{"name", user}});
  // "\0" to "\0" is the whole key space; a prefix P is P to P with its last byte incremented.
  std::string key(1, '\0');
  std::string end(1, '\0');
  if (!prefix.empty()) {
    key = prefix;
    end = prefix;
    ++end.back();
  }
  admin("/v3/auth/role/grant", {{"name", user},
                                {"perm", {{"permType", "READWRITE"}, {"key", base64_encode(key)},
                                          {"range_end", base64_encode(end)}}}});
  admin("/v3/auth/user/grant", {{"user", user}, {"role", user}});
  admin("/v3/auth/enable", nlohmann::json::object());
  root_password_ = root_password;
}

void EtcdCluster::change_password(const std::string& user, const std::string& password) {
  admin("/v3/auth/user/changepw", {{"name", user}, {"password", password}});
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
  const Member& m = members_.at(static_cast<std::size_t>(member));
  return options_.tls ? "https://127.0.0.1:" + std::to_string(m.tls_port) : loopback_url(m.client_port);
}

std::string EtcdCluster::client_url_http(int member) const {
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
  const HttpResponse response = http.get(client_url_http(member) + "/health");
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
  const Headers headers = root_headers();
  const HttpResponse response = http.post(client_url_http(member) + std::string(path), body.dump(), headers);
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
