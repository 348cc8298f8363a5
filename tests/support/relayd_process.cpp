#include "tests/support/relayd_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <stdexcept>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

extern char** environ;

namespace relay::test {

namespace {

using Clock = std::chrono::steady_clock;

// The inherited environment without RELAY_* (a developer's shell must not change a test),
// plus `extra`.
std::vector<std::string> child_environment(const std::map<std::string, std::string>& extra) {
  std::vector<std::string> env;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    if (text.starts_with("RELAY_")) continue;
    env.emplace_back(text);
  }
  for (const auto& [name, value] : extra) env.push_back(name + "=" + value);
  return env;
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

struct Pipe {
  int read_end = -1;
  int write_end = -1;
};

Pipe make_pipe() {
  // O_CLOEXEC: a relayd spawned by another test thread must not inherit this pipe, or our
  // reader would not see EOF when our relayd exits.
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
  return Pipe{fds[0], fds[1]};
}

// Starts `argv` with stdin from /dev/null, stderr into `err`, stdout into `out` (or /dev/null
// when out.write_end < 0). Closes the write ends in this process.
pid_t spawn_child(std::vector<std::string> argv, const std::map<std::string, std::string>& env,
                  Pipe& err, Pipe& out) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  if (out.write_end >= 0) {
    posix_spawn_file_actions_adddup2(&actions, out.write_end, 1);
  } else {
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  }
  posix_spawn_file_actions_adddup2(&actions, err.write_end, 2);

  std::vector<std::string> env_strings = child_environment(env);
  std::vector<char*> c_argv = c_strings(argv);
  std::vector<char*> c_env = c_strings(env_strings);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, c_argv[0], &actions, nullptr, c_argv.data(), c_env.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(err.write_end);
  err.write_end = -1;
  if (out.write_end >= 0) {
    ::close(out.write_end);
    out.write_end = -1;
  }
  if (rc != 0) {
    ::close(err.read_end);
    if (out.read_end >= 0) ::close(out.read_end);
    throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
  }
  return pid;
}

int decode_wait_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

int reap(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return decode_wait_status(status);
}

// Splits `chunk` into complete lines appended to `out`; the unfinished tail stays in `partial`.
void split_lines(std::string& partial, std::string_view chunk, std::vector<std::string>& out) {
  partial.append(chunk);
  std::size_t start = 0;
  for (std::size_t nl = partial.find('\n'); nl != std::string::npos; nl = partial.find('\n', start)) {
    out.push_back(partial.substr(start, nl - start));
    start = nl + 1;
  }
  partial.erase(0, start);
}

std::optional<int> listening_port(const std::string& line) {
  const nlohmann::json log = nlohmann::json::parse(line, nullptr, false);
  if (!log.is_object() || log.value("msg", "") != "listening") return std::nullopt;
  const auto port = log.find("port");
  if (port == log.end() || !port->is_number_integer()) return std::nullopt;
  return port->get<int>();
}

std::string join_lines(const std::vector<std::string>& lines, std::size_t first = 0) {
  std::string text;
  for (std::size_t i = first; i < lines.size(); ++i) {
    text += lines[i];
    text += '\n';
  }
  return text;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// RelaydProcess

RelaydProcess::RelaydProcess(RelaydOptions options) : options_(std::move(options)) {
  if (options_.data_dir.empty()) {
    owned_dir_.emplace();
    data_dir_ = (owned_dir_->path() / "data").string();
  } else {
    data_dir_ = options_.data_dir;
  }
  argv_ = {RELAYD_PATH, "--data-dir", data_dir_};
  if (options_.default_listen) argv_.insert(argv_.end(), {"--listen", "127.0.0.1:0"});
  if (options_.default_api_keys) {
    argv_.insert(argv_.end(), {"--api-key", "admin:" + std::string(kAdminKey), "--api-key",
                               "ingest:" + std::string(kIngestKey)});
  }
  argv_.insert(argv_.end(), options_.args.begin(), options_.args.end());
  spawn();
  wait_until_listening();
}

RelaydProcess::~RelaydProcess() {
  // A relayd that died during the test (a crash shows up as "no response" in the test) is
  // named here, as the log alone does not show a signal.
  std::string fate;
  if (running()) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      fate = WIFSIGNALED(status) ? "relayd had died of signal " + std::to_string(WTERMSIG(status)) + " (" +
                                       ::strsignal(WTERMSIG(status)) + ")"
                                 : "relayd had exited with code " + std::to_string(decode_wait_status(status));
      pid_ = -1;
    } else {
      kill9();
    }
  }
  join_reader();
  if (::testing::Test::HasFailure()) {
    // The relayd side of a failed test; the tail is enough and keeps burst tests readable.
    const std::vector<std::string> lines = log_lines();
    const std::size_t first = lines.size() > 200 ? lines.size() - 200 : 0;
    std::cerr << "---- relayd stderr (" << (lines.size() - first) << " of " << lines.size()
              << " lines) ----\n"
              << join_lines(lines, first) << "---- end of relayd stderr ----\n";
    if (!fate.empty()) std::cerr << "---- " << fate << " ----\n";
  }
}

void RelaydProcess::spawn() {
  Pipe err = make_pipe();
  Pipe no_stdout;
  {
    std::lock_guard lock(mutex_);
    run_first_line_ = lines_.size();
    eof_ = false;
    port_ = 0;
  }
  pid_ = spawn_child(argv_, options_.env, err, no_stdout);
  reader_ = std::thread([this, fd = err.read_end] { reader_loop(fd); });
  if (options_.max_open_files) {
    // posix_spawn cannot set limits; relayd opens few descriptors before it listens, and the
    // limit holds for every one it opens after this.
    const rlimit limit{*options_.max_open_files, *options_.max_open_files};
    if (::prlimit(pid_, RLIMIT_NOFILE, &limit, nullptr) != 0) {
      kill9();
      throw std::runtime_error(std::string("prlimit(RLIMIT_NOFILE): ") + std::strerror(errno));
    }
  }
}

void RelaydProcess::reader_loop(int fd) {
  std::string partial;
  std::array<char, 8192> buffer;
  for (;;) {
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    std::vector<std::string> complete;
    split_lines(partial, std::string_view(buffer.data(), static_cast<std::size_t>(n)), complete);
    if (complete.empty()) continue;
    std::lock_guard lock(mutex_);
    for (std::string& line : complete) {
      if (port_ == 0) {
        if (const std::optional<int> port = listening_port(line)) port_ = *port;
      }
      lines_.push_back(std::move(line));
    }
    changed_.notify_all();
  }
  ::close(fd);
  std::lock_guard lock(mutex_);
  if (!partial.empty()) lines_.push_back(std::move(partial));
  eof_ = true;
  changed_.notify_all();
}

void RelaydProcess::wait_until_listening() {
  std::unique_lock lock(mutex_);
  const bool settled =
      changed_.wait_for(lock, options_.startup_timeout, [this] { return port_ != 0 || eof_; });
  if (port_ != 0) return;
  const std::string log = join_lines(lines_, run_first_line_);
  lock.unlock();
  std::string what;
  if (settled) {
    const int code = reap(pid_);
    pid_ = -1;
    what = "relayd exited (code " + std::to_string(code) + ") before it logged \"listening\"";
  } else {
    kill9();
    what = "relayd did not log \"listening\" in time";
  }
  join_reader();
  throw std::runtime_error(what + "; command: " + join_lines(argv_) + "stderr:\n" + log);
}

void RelaydProcess::join_reader() {
  if (reader_.joinable()) reader_.join();
}

int RelaydProcess::port() const {
  std::lock_guard lock(mutex_);
  return port_;
}

std::string RelaydProcess::base_url() const { return "http://127.0.0.1:" + std::to_string(port()); }

std::string RelaydProcess::url(std::string_view path) const { return base_url() + std::string(path); }

std::vector<std::string> RelaydProcess::log_lines() const {
  std::lock_guard lock(mutex_);
  return lines_;
}

std::string RelaydProcess::log_text() const {
  std::lock_guard lock(mutex_);
  return join_lines(lines_);
}

bool RelaydProcess::wait_for_log(const std::function<bool(const std::string&)>& match,
                                 std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  std::size_t checked = run_first_line_;
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    for (; checked < lines_.size(); ++checked) {
      if (match(lines_[checked])) return true;
    }
    if (eof_) return false;
    if (changed_.wait_until(lock, deadline) == std::cv_status::timeout && checked == lines_.size()) {
      return false;
    }
  }
}

void RelaydProcess::kill9() {
  if (!running()) return;
  ::kill(pid_, SIGKILL);
  reap(pid_);
  pid_ = -1;
  join_reader();
}

void RelaydProcess::terminate(int signal_number) {
  if (running()) ::kill(pid_, signal_number);
}

int RelaydProcess::wait_exit(std::chrono::milliseconds timeout) {
  if (!running()) return -1;
  // relayd closes stderr only by exiting, so EOF is the exit event we can wait on with a
  // deadline; waitpid itself has none.
  bool closed = false;
  {
    std::unique_lock lock(mutex_);
    closed = changed_.wait_for(lock, timeout, [this] { return eof_; });
  }
  if (!closed) {
    kill9();
    return -1;
  }
  const int code = reap(pid_);
  pid_ = -1;
  join_reader();
  return code;
}

void RelaydProcess::restart() {
  if (running()) kill9();
  join_reader();
  spawn();
  wait_until_listening();
}

// ---------------------------------------------------------------------------------------------
// run_relayd_to_exit

RelaydExit run_relayd_to_exit(const std::vector<std::string>& args,
                              const std::map<std::string, std::string>& env,
                              std::chrono::milliseconds timeout) {
  std::vector<std::string> argv{RELAYD_PATH};
  argv.insert(argv.end(), args.begin(), args.end());
  Pipe err = make_pipe();
  Pipe out = make_pipe();
  const pid_t pid = spawn_child(argv, env, err, out);

  std::string err_text;
  std::string out_text;
  std::array<pollfd, 2> fds{pollfd{err.read_end, POLLIN, 0}, pollfd{out.read_end, POLLIN, 0}};
  std::array<std::string*, 2> sinks{&err_text, &out_text};
  const auto deadline = Clock::now() + timeout;
  bool timed_out = false;
  bool started = false;
  int open_fds = 2;
  std::array<char, 8192> buffer;
  while (open_fds > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    const int ready = ::poll(fds.data(), fds.size(), static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) break;
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      const ssize_t n = ::read(fds[i].fd, buffer.data(), buffer.size());
      if (n > 0) {
        sinks[i]->append(buffer.data(), static_cast<std::size_t>(n));
        if (i == 0 && !started && err_text.find("\"listening\"") != std::string::npos) {
          started = true;
          ::kill(pid, SIGKILL);
        }
      } else if (n == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (pollfd& fd : fds) {
    if (fd.fd >= 0) ::close(fd.fd);
  }
  if (timed_out) ::kill(pid, SIGKILL);
  RelaydExit result;
  const int code = reap(pid);
  result.exit_code = timed_out ? -1 : code;
  result.started = started;
  std::string partial;
  split_lines(partial, err_text, result.stderr_lines);
  if (!partial.empty()) result.stderr_lines.push_back(partial);
  result.stdout_text = std::move(out_text);
  return result;
}

}  // namespace relay::test
