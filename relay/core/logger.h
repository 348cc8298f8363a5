#pragma once
// JSON lines on stderr: {"ts": RFC 3339, "level", "msg", ...fields}. Thread-safe. Callers never
// pass secrets or API keys as fields.

#include <mutex>
#include <nlohmann/json.hpp>
#include <string_view>

namespace relay {

enum class LogLevel { debug, info, warn, error };

class Logger {
 public:
  explicit Logger(LogLevel level) : level_(level) {}

  void debug(std::string_view msg, nlohmann::json fields = nlohmann::json::object()) {
    log(LogLevel::debug, msg, std::move(fields));
  }
  void info(std::string_view msg, nlohmann::json fields = nlohmann::json::object()) {
    log(LogLevel::info, msg, std::move(fields));
  }
  void warn(std::string_view msg, nlohmann::json fields = nlohmann::json::object()) {
    log(LogLevel::warn, msg, std::move(fields));
  }
  void error(std::string_view msg, nlohmann::json fields = nlohmann::json::object()) {
    log(LogLevel::error, msg, std::move(fields));
  }
  bool enabled(LogLevel level) const { return level >= level_; }

 private:
  void log(LogLevel level, std::string_view msg, nlohmann::json fields);

  LogLevel level_;
  std::mutex mutex_;
};

}  // namespace relay
