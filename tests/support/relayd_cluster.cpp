#include "tests/support/relayd_cluster.h"

#include <fstream>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "storage/keys.h"

namespace relay::test {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

constexpr int kStartTries = 5;

int free_loopback_port() {
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address_v4("127.0.0.1"), 0});
  return acceptor.local_endpoint().port();
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ",") + item;
  return out;
}

}  // namespace

RelaydCluster::RelaydCluster(RelaydClusterOptions options)
    : options_(std::move(options)),
      etcd_(std::make_unique<EtcdCluster>(EtcdClusterOptions{
          .members = options_.etcd_members, .tls = options_.etcd_tls, .args = options_.etcd_args})) {
  if (options_.shards < 1) throw std::invalid_argument("RelaydCluster: at least one shard");
  if (options_.etcd_tls) {
    const EtcdTlsFiles& tls = etcd_->tls_files();
    options_.args.insert(options_.args.end(), {"--cluster-etcd-ca", tls.ca, "--cluster-etcd-cert", tls.client_cert,
                                               "--cluster-etcd-key", tls.client_key});
  }
  if (!options_.etcd_user.empty()) {
    // Only the cluster's prefix: what docs/cluster.md tells operators to grant.
    etcd_->enable_auth(options_.etcd_user, options_.etcd_password, "/relay/");
    const std::string path = files_.str() + "/etcd-password";
    std::ofstream(path) << (options_.shard_password.empty() ? options_.etcd_password : options_.shard_password) << "\n";
    options_.args.insert(options_.args.end(),
                         {"--cluster-etcd-user", options_.etcd_user, "--cluster-etcd-password-file", path});
  }
  shards_.resize(static_cast<std::size_t>(options_.shards));
  for (int i = 0; i < size(); ++i) {
    start_shard(i);
    read_number(i);
  }
  if (!await_live(size(), 30s)) {
    throw std::runtime_error("the shards did not all count " + std::to_string(size()) + " live shards:\n" + logs());
  }
}

RelaydCluster::~RelaydCluster() {
  // Shards first: their logs would otherwise fill with etcd's absence.
  for (Shard& shard : shards_) shard.process.reset();
  etcd_.reset();
}

void RelaydCluster::start_shard(int i) {
  Shard& shard = shards_.at(static_cast<std::size_t>(i));
  for (int attempt = 1;; ++attempt) {
    shard.port = free_loopback_port();
    const std::string address = "127.0.0.1:" + std::to_string(shard.port);
    RelaydOptions relayd;
    relayd.default_listen = false;
    relayd.args = {"--listen",        address,
                   "--cluster-etcd",  join(etcd_->client_urls()),
                   "--shard",         name(i),
                   "--advertise",     "http://" + address,
                   "--cluster-timeout", options_.cluster_timeout,
                   "--allow-cidr",    "127.0.0.0/8"};
    relayd.args.insert(relayd.args.end(), options_.args.begin(), options_.args.end());
    try {
      shard.process = std::make_unique<RelaydProcess>(std::move(relayd));
      return;
    } catch (const std::runtime_error& e) {
      // The port went to another process between choosing and binding it: another port. The
      // failed start may have registered the name in etcd; the next one reuses its number.
      const std::string what = e.what();
      if (what.find("in use") == std::string::npos || attempt == kStartTries) throw;
    }
  }
}

void RelaydCluster::read_number(int i) {
  Shard& shard = shards_.at(static_cast<std::size_t>(i));
  for (const std::string& line : shard.process->log_lines()) {
    const nlohmann::json log = nlohmann::json::parse(line, nullptr, false);
    if (log.is_object() && log.value("msg", "") == "shard number from etcd" && log.contains("number")) {
      shard.number = log["number"].get<std::uint32_t>();
      return;
    }
  }
  throw std::runtime_error(name(i) + " logged no shard number:\n" + shard.process->log_text());
}

int RelaydCluster::shard_of(std::string_view id) const {
  const auto underscore = id.find('_');
  if (underscore == std::string_view::npos) return -1;
  const auto number = keys::id_instance(id, id.substr(0, underscore + 1));
  if (!number) return -1;
  for (int i = 0; i < size(); ++i) {
    if (shards_[static_cast<std::size_t>(i)].number == *number) return i;
  }
  return -1;
}

std::string RelaydCluster::url(int i, std::string_view path) const {
  return "http://127.0.0.1:" + std::to_string(shards_.at(static_cast<std::size_t>(i)).port) + std::string(path);
}

HttpResponse RelaydCluster::call(int i, std::string_view method, std::string_view path, const std::string& body) {
  return call(i, method, path, body, {bearer(kAdminKey)});
}

HttpResponse RelaydCluster::call(int i, std::string_view method, std::string_view path, const std::string& body,
                                 const Headers& headers) {
  return http_.request(method, url(i, path), body, headers);
}

void RelaydCluster::kill9(int i) { shard(i).kill9(); }

void RelaydCluster::restart(int i) { shard(i).restart(); }

std::optional<double> RelaydCluster::metric(int i, std::string_view series) {
  if (!running(i)) return std::nullopt;
  const HttpResponse r = http_.get(url(i, "/metrics"));
  if (r.status != 200) return std::nullopt;
  std::istringstream lines(r.body);
  for (std::string line; std::getline(lines, line);) {
    if (line.size() > series.size() && line.starts_with(series) && line[series.size()] == ' ') {
      try {
        return std::stod(line.substr(series.size() + 1));
      } catch (const std::exception&) {
        return std::nullopt;
      }
    }
  }
  return std::nullopt;
}

bool RelaydCluster::await_live(int live, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    bool all = true;
    for (int i = 0; i < size() && all; ++i) {
      if (running(i)) all = metric(i, "relay_cluster_shards{state=\"live\"}") == static_cast<double>(live);
    }
    if (all) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
}

std::string RelaydCluster::logs() const {
  std::string out;
  for (int i = 0; i < size(); ++i) {
    out += "---- " + name(i) + " ----\n";
    out += shards_[static_cast<std::size_t>(i)].process ? shards_[static_cast<std::size_t>(i)].process->log_text()
                                                       : "(not started)\n";
  }
  return out;
}

}  // namespace relay::test
