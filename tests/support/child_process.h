#pragma once
// ChildProcess: a helper program run by a test (nghttpd as a subscriber, strace watching relayd),
// with its standard input from /dev/null and its standard output and error in one log file.
// The destructor stops it (SIGTERM, then SIGKILL after a grace) and reaps it, so a failing test
// leaves no process behind. relayd itself has RelaydProcess, which reads its log as it comes.

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace relay::test {

class ChildProcess {
 public:
  // Starts argv[0] (looked up in PATH) with argv. Throws std::runtime_error naming the program
  // when it cannot be started.
  ChildProcess(std::vector<std::string> argv, std::string log_path);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // The exit code (128 + signal when killed) once it has exited, without waiting.
  std::optional<int> poll_exit();
  // Sends `signal_number` and waits up to `timeout` for the exit; SIGKILL after that.
  int stop(int signal_number, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Everything it wrote so far.
  std::string log() const;

 private:
  std::string log_path_;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
};

}  // namespace relay::test
