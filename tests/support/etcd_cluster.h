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

class EtcdCluster {
 public:
  // Throws std::runtime_error (with the members' logs) when the cluster does not come up.
  explicit EtcdCluster(int members = 1);
  // Kills every member.
  ~EtcdCluster();
  EtcdCluster(const EtcdCluster&) = delete;
  EtcdCluster& operator=(const EtcdCluster&) = delete;

  int size() const { return static_cast<int>(members_.size()); }
  // "http://127.0.0.1:PORT" of every member, in member order (running or not).
  std::vector<std::string> client_urls() const;
  std::string client_url(int member) const;
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

  // POSTs `body` to the member's gateway; the answer as JSON, or a discarded value when there
  // was no (JSON) answer. For what the store under test does not do (compaction, status).
  nlohmann::json post(int member, std::string_view path, const nlohmann::json& body);

  // What the member wrote on stdout and stderr in its current run, for failure messages.
  std::string log(int member) const;
  std::string logs() const;

 private:
  struct Member {
    std::string name;
    int client_port = 0;
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

  TempDir dir_;
  std::string token_;
  std::vector<Member> members_;
};

}  // namespace relay::test
