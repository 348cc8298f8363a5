#pragma once
// EtcdCluster: a real etcd v3 cluster (Debian's etcd-server, /usr/bin/etcd) of 1 or 3 members
// on loopback, each a child process with its data directory in a TempDir, for the tests of
// EtcdClusterStore and of cluster mode.
//
// The constructor returns once every member serves (/health says true, polled with a
// deadline). etcd takes port numbers, not bound sockets, so ports are chosen free and a member
// that then loses its port to another process ("address already in use" in its log) makes the
// whole cluster start again on fresh ports. Heartbeat and election timeouts are small, so a
// leader is elected again within a fraction of a second after a kill.
//
//   relay::test::EtcdCluster etcd(3);
//   store = EtcdClusterStore(io, {.endpoints = etcd.client_urls()}, logger);
//   etcd.kill(etcd.leader());   // kill -9
//   etcd.start(member);         // again, on its data directory and ports
//
// A secured etcd (EtcdClusterOptions::tls): a test CA, a server certificate for 127.0.0.1 and a
// client certificate are made with the openssl CLI in the cluster's TempDir; members serve
// https:// with --client-cert-auth (client_urls()), and plain http on another loopback port for
// the test's own setup calls (post(), health). enable_auth() turns etcd's RBAC on through the
// gateway, as an operator would with etcdctl.

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tests/support/child_process.h"
#include "tests/support/temp_dir.h"

namespace relay::test {

struct EtcdClusterOptions {
  int members = 1;
  bool tls = false;               // https:// client URLs with --client-cert-auth
  std::vector<std::string> args;  // extra flags of every member, e.g. {"--auth-token-ttl", "1"}
};

// The files EtcdCluster made for TLS (paths in its TempDir).
struct EtcdTlsFiles {
  std::string ca;           // the CA that issued the server and client certificates
  std::string client_cert;  // a client certificate etcd accepts, and its key
  std::string client_key;
  std::string other_ca;     // a CA that issued nothing etcd uses
};

class EtcdCluster {
 public:
  // Throws std::runtime_error (with the members' logs) when the cluster does not come up.
  explicit EtcdCluster(int members = 1) : EtcdCluster(EtcdClusterOptions{.members = members, .tls = false, .args = {}}) {}
  explicit EtcdCluster(EtcdClusterOptions options);
  // Kills every member.
  ~EtcdCluster();
  EtcdCluster(const EtcdCluster&) = delete;
  EtcdCluster& operator=(const EtcdCluster&) = delete;

  int size() const { return static_cast<int>(members_.size()); }
  // "http://127.0.0.1:PORT" (with TLS: "https://...") of every member, in member order
  // (running or not).
  std::vector<std::string> client_urls() const;
  std::string client_url(int member) const;
  // The plain http URL the test's own calls use (the same as client_url without TLS).
  std::string client_url_http(int member) const;
  const EtcdTlsFiles& tls_files() const { return tls_files_; }

  // Creates the root user and `user` with `password`, allowed to read and write the keys under
  // `prefix` (every key when empty), then enables authentication. Throws std::runtime_error
  // when etcd refuses a step.
  void enable_auth(const std::string& user, const std::string& password, const std::string& prefix = {});
  // Sets `user`'s password (as root): etcd invalidates the user's tokens.
  void change_password(const std::string& user, const std::string& password);
  bool running(int member);

  // kill -9, reaped.
  void kill(int member);
  void kill_all();
  // Starts a stopped member on its data directory and ports and waits until it serves (with
  // 3 members: until it is back in a cluster with a leader, so a majority must be running).
  void start(int member);
  // Starts every stopped member, then waits until all serve.
  void start_all();

  // The member the running members agree is the leader; waits for an election. Throws when
  // there is none within the deadline.
  int leader();
  // Kills the leader; returns which member it was.
  int kill_leader();

  // POSTs `body` to the member's gateway (as root once enable_auth() ran); the answer as JSON, or a discarded value when there
  // was no (JSON) answer. For what the store under test does not do (compaction, status).
  nlohmann::json post(int member, std::string_view path, const nlohmann::json& body);

  // What the member wrote on stdout and stderr in its current run, for failure messages.
  std::string log(int member) const;
  std::string logs() const;

 private:
  struct Member {
    std::string name;
    int client_port = 0;  // plain http (the test's)
    int tls_port = 0;     // https, with TLS on
    int peer_port = 0;
    std::string data_dir;
    std::string log_path;
    std::unique_ptr<ChildProcess> process;
  };

  bool try_start_all();  // false when a member lost its port at start
  void spawn(Member& member);
  bool serves(int member);
  // Waits until every running member serves; false when one of them exited.
  bool wait_serving(const std::vector<int>& members, std::chrono::milliseconds timeout);
  std::vector<std::string> arguments(const Member& member) const;

  void make_certificates();
  // The Authorization header of root once enable_auth() ran; none before.
  std::vector<std::string> root_headers();  // Headers lines
  // POSTs to member 0 as root once auth is on; throws on anything but 200.
  nlohmann::json admin(std::string_view path, const nlohmann::json& body);

  EtcdClusterOptions options_;
  TempDir dir_;
  EtcdTlsFiles tls_files_;
  std::string root_password_;  // once enable_auth() ran
  std::string token_;
  std::vector<Member> members_;
};

}  // namespace relay::test
