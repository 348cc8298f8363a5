// Durability as the contract defines it (section 4): under --durability=fsync a 202 is sent only
// after the event's write-ahead log record is fsync'd. kill -9 cannot tell this apart from a
// write that only reached the page cache (the kernel keeps it), so the durability tests pass
// the same with --durability=buffered; power loss can. This test watches relayd's system calls
// with strace and checks the order: between reading each request and writing its 202, a sync
// of a WAL file (NNNNNN.log in the data dir) completed. The buffered run is the control that
// shows the check can fail.

#include <gtest/gtest.h>
#include <sys/types.h>

#include <cctype>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/child_process.h"
#include "tests/support/http_client.h"
#include "tests/support/relayd_process.h"
#include "tests/support/temp_dir.h"

namespace relay::test {
namespace fsync_before_ack_test {

using nlohmann::json;

// What the trace says about each acknowledged ingest request.
struct SyncOrder {
  int acknowledged = 0;        // 202 answers written
  int synced_before = 0;       // of which a WAL sync completed after the request was read
  int wal_syncs = 0;           // completed syncs of WAL files, in all
};

// strace -y shows a file descriptor with its path: "12</data/000004.log>".
bool is_wal_path(const std::string& text) {
  for (auto end = text.find(".log>"); end != std::string::npos; end = text.find(".log>", end + 1)) {
    auto begin = end;
    while (begin > 0 && std::isdigit(static_cast<unsigned char>(text[begin - 1]))) --begin;
    if (begin < end && begin > 0 && text[begin - 1] == '/') return true;
  }
  return false;
}

// Reads `strace -f -y` output. Each line starts with the thread id. A call that blocks is split
// into "call(args <unfinished ...>" and later "<... call resumed>) = result" on the same thread;
// a sync counts once it has returned 0.
SyncOrder read_trace(const std::string& path) {
  SyncOrder order;
  std::map<std::string, bool> wal_sync_unfinished;  // by thread id
  bool request_open = false;
  bool synced_since_request = false;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    const std::string thread = line.substr(0, line.find(' '));
    const bool sync_call = line.find("fdatasync(") != std::string::npos || line.find(" fsync(") != std::string::npos;
    bool sync_done = false;
    if (sync_call && is_wal_path(line)) {
      if (line.find("<unfinished ...>") != std::string::npos) {
        wal_sync_unfinished[thread] = true;
      } else {
        sync_done = line.find(") = 0") != std::string::npos;
      }
    } else if ((line.find("<... fdatasync resumed>") != std::string::npos ||
                line.find("<... fsync resumed>") != std::string::npos) &&
               wal_sync_unfinished[thread]) {
      wal_sync_unfinished[thread] = false;
      sync_done = line.find(") = 0") != std::string::npos;
    }
    if (sync_done) {
      ++order.wal_syncs;
      if (request_open) synced_since_request = true;
    }
    if (line.find("\"POST /v1/events ") != std::string::npos) {
      request_open = true;
      synced_since_request = false;
    } else if (line.find("\"HTTP/1.1 202 ") != std::string::npos) {
      ++order.acknowledged;
      if (request_open && synced_since_request) ++order.synced_before;
      request_open = false;
    }
  }
  return order;
}

// Every thread of `pid` has a tracer: strace is attached and no call can slip past it.
bool traced(pid_t pid) {
  const std::filesystem::path tasks = "/proc/" + std::to_string(pid) + "/task";
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator(tasks, ec)) {
    std::ifstream status(task.path() / "status");
    std::string line;
    bool has_tracer = false;
    while (std::getline(status, line)) {
      if (line.starts_with("TracerPid:")) has_tracer = std::stoi(line.substr(10)) != 0;
    }
    if (!has_tracer) return false;
  }
  return !ec;
}

// Publishes `count` events one after the other (no group commit hides a missing sync) to a
// relayd with `durability`, under strace, and reads the trace.
std::optional<SyncOrder> trace_ingest(const std::string& durability, int count, std::string& why_not) {
  RelaydProcess relayd(RelaydOptions::with_args({"--durability", durability}));
  TempDir dir;
  const std::string trace_path = dir.str() + "/trace";
  ChildProcess strace({"strace", "-f", "-qq", "-y", "-s", "40", "-o", trace_path, "-e",
                       "trace=fdatasync,fsync,read,readv,recvfrom,recvmsg,write,writev,sendto,sendmsg", "-p",
                       std::to_string(relayd.pid())},
                      dir.str() + "/strace.log");
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!traced(relayd.pid())) {
    if (strace.poll_exit() || std::chrono::steady_clock::now() > give_up) {
      why_not = "strace cannot attach to relayd (ptrace not permitted here?): " + strace.log();
      return std::nullopt;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }

  HttpClient http;
  for (int i = 0; i < count; ++i) {
    const json body{{"type", "meeting.completed"}, {"payload", {{"bot_id", "b-" + std::to_string(i)}}}};
    const HttpResponse r = http.post(relayd.url("/v1/events"), body.dump(), {bearer(kIngestKey)});
    EXPECT_EQ(r.status, 202) << r.describe();
  }
  strace.stop(SIGINT);  // detaches and flushes the trace; relayd runs on
  return read_trace(trace_path);
}

constexpr int kEvents = 20;

TEST(FsyncBeforeAck, EveryAcknowledgedEventWasSyncedFirst) {
  std::string why_not;
  const auto order = trace_ingest("fsync", kEvents, why_not);
  if (!order) GTEST_SKIP() << why_not;
  ASSERT_EQ(order->acknowledged, kEvents) << "the trace must show every 202 (strace -s, -e trace=...)";
  EXPECT_EQ(order->synced_before, kEvents) << "202 answers sent before their WAL record was synced";
}

TEST(FsyncBeforeAck, BufferedDurabilityIsCaughtByTheCheck) {
  std::string why_not;
  const auto order = trace_ingest("buffered", kEvents, why_not);
  if (!order) GTEST_SKIP() << why_not;
  ASSERT_EQ(order->acknowledged, kEvents);
  EXPECT_EQ(order->wal_syncs, 0);
  EXPECT_EQ(order->synced_before, 0) << "the check must fail for writes that were not synced";
}

}  // namespace fsync_before_ack_test
}  // namespace relay::test
