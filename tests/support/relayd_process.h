#pragma once
// RelaydProcess: the real relayd binary as a child process, for black-box integration tests.
// It binds a free loopback port, gets a fresh data directory and one key per scope, and the
// test learns the port from relayd's "listening" log line instead of guessing or sleeping.
// Everything relayd writes on stderr is kept, so a failing test can show what relayd said.

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "tests/support/temp_dir.h"

namespace relay::test {

// The keys RelaydProcess configures by default (`--api-key admin:...`, `--api-key ingest:...`).
inline constexpr std::string_view kAdminKey = "itest-admin-key-5f0c2b7e9a";
inline constexpr std::string_view kIngestKey = "itest-ingest-key-81d3a64c0f";

struct RelaydOptions {
  std::vector<std::string> args;              // extra flags, after the defaults below
  std::map<std::string, std::string> env;     // extra environment, e.g. {"RELAY_MAX_BODY", "1024"}
  std::string data_dir;                       // empty: a fresh TempDir owned by the process object
  bool default_listen = true;                 // add `--listen 127.0.0.1:0`
  bool default_api_keys = true;               // add `--api-key admin:kAdminKey --api-key ingest:kIngestKey`
  std::chrono::milliseconds startup_timeout{60'000};
  // RLIMIT_NOFILE (soft and hard) of relayd, set right after it is spawned; nullopt: inherited.
  std::optional<unsigned> max_open_files;

  // Builders: GCC 12 flags designated initializers that skip members (-Wmissing-field-initializers).
  static RelaydOptions with_args(std::vector<std::string> extra_args) {
    RelaydOptions options;
    options.args = std::move(extra_args);
    return options;
  }
  RelaydOptions& set_env(std::string name, std::string value) {
    env[std::move(name)] = std::move(value);
    return *this;
  }
  RelaydOptions& limit_open_files(unsigned n) {
    max_open_files = n;
    return *this;
  }
  RelaydOptions& without_api_keys() {
    default_api_keys = false;
    return *this;
  }
};

// One relayd child process. The constructor returns once relayd logged "listening" and throws
// std::runtime_error (with the captured log) if it exits or stays silent past the timeout.
class RelaydProcess {
 public:
  explicit RelaydProcess(RelaydOptions options = {});
  // Kills relayd (SIGKILL) if it still runs.
  ~RelaydProcess();
  RelaydProcess(const RelaydProcess&) = delete;
  RelaydProcess& operator=(const RelaydProcess&) = delete;

  int port() const;
  std::string base_url() const;                  // "http://127.0.0.1:PORT"
  std::string url(std::string_view path) const;  // base_url() + path
  const std::string& data_dir() const { return data_dir_; }
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }

  // Every stderr line of every run of this object (restarts included), in order.
  std::vector<std::string> log_lines() const;
  std::string log_text() const;
  // Waits until a stderr line of the current run satisfies `match`; false on exit or timeout.
  bool wait_for_log(const std::function<bool(const std::string&)>& match,
                    std::chrono::milliseconds timeout = std::chrono::seconds(30));

  // SIGKILL and reap: the crash the durability contract is about.
  void kill9();
  // Sends `signal` (SIGTERM by default) without waiting; follow with wait_exit().
  void terminate(int signal_number = 15);
  // The exit code, 128 + signal when killed by a signal, or -1 when relayd did not exit within
  // `timeout` (it is then killed so the test does not hang).
  int wait_exit(std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // Starts relayd again with the same arguments and data dir (kills the current run first if
  // it still runs). Waits for "listening" like the constructor; the port usually changes.
  void restart();

 private:
  void spawn();
  void reader_loop(int fd);
  void wait_until_listening();
  void join_reader();

  RelaydOptions options_;
  std::optional<TempDir> owned_dir_;
  std::string data_dir_;
  std::vector<std::string> argv_;

  pid_t pid_ = -1;
  std::thread reader_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> lines_;
  std::size_t run_first_line_ = 0;  // index into lines_ where the current run starts
  bool eof_ = false;                // stderr of the current run is closed
  int port_ = 0;
};

// What a relayd run that ends by itself produced (config error tests).
struct RelaydExit {
  int exit_code = -1;                      // as RelaydProcess::wait_exit
  bool started = false;                    // it logged "listening" (and was then killed)
  std::vector<std::string> stderr_lines;   // without trailing newlines
  std::string stdout_text;
};

// Runs relayd with exactly `args` (nothing added) and `env` (on top of the inherited
// environment minus any RELAY_* variable) until it exits. Killed after `timeout`, or as soon as
// it logs "listening", so that a configuration it wrongly accepts fails the test quickly.
RelaydExit run_relayd_to_exit(const std::vector<std::string>& args,
                              const std::map<std::string, std::string>& env = {},
                              std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace relay::test
